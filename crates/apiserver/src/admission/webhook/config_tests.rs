//! Table tests of webhook matching: rules, scopes, subresources, and both selectors.

use serde_json::json;

use super::*;
use crate::auth::UserInfo;
use crate::registry::builtin_types;

fn rt(kind: &str) -> ResourceType {
    builtin_types()
        .into_iter()
        .find(|t| t.kind == kind)
        .unwrap_or_else(|| panic!("no built-in kind {kind}"))
}

fn hook(spec: Value) -> Hook {
    let cfg = json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": "cfg"},
        "webhooks": [spec],
    });
    let bytes = serde_json::to_vec(&cfg).unwrap();
    parse(Stage::Validating, &bytes).unwrap().remove(0)
}

fn with_rules(rules: Value) -> Hook {
    hook(json!({
        "name": "h.example.com",
        "clientConfig": {"url": "https://h.example.com/"},
        "admissionReviewVersions": ["v1"],
        "sideEffects": "None",
        "rules": rules,
    }))
}

struct Req<'a> {
    op: Operation,
    kind: &'a str,
    namespace: &'a str,
    subresource: &'a str,
}

fn matches(h: &Hook, r: Req<'_>, obj: Option<&Value>, old: Option<&Value>) -> bool {
    let t = rt(r.kind);
    let user = UserInfo::anonymous();
    let req = AdmissionRequest {
        op: r.op,
        rt: &t,
        user: &user,
        namespace: r.namespace,
        name: "x",
        old,
        subresource: r.subresource,
    };
    let ns_labels = |ns: &str| -> Labels {
        match ns {
            "prod" => [("env".to_string(), "prod".to_string())].into(),
            _ => Labels::new(),
        }
    };
    h.matches(&req, obj, &ns_labels).unwrap()
}

fn create<'a>(kind: &'a str, namespace: &'a str) -> Req<'a> {
    Req {
        op: Operation::Create,
        kind,
        namespace,
        subresource: "",
    }
}

#[test]
fn rules_match_operations_groups_versions_and_resources() {
    let cm = json!([{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["configmaps"]}]);
    let h = with_rules(cm);
    assert!(matches(&h, create("ConfigMap", "a"), None, None));
    assert!(!matches(&h, create("Secret", "a"), None, None));
    let upd = Req {
        op: Operation::Update,
        ..create("ConfigMap", "a")
    };
    assert!(!matches(&h, upd, None, None));

    let any = with_rules(
        json!([{"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*"]}]),
    );
    assert!(matches(&any, create("Deployment", "a"), None, None));
    let del = Req {
        op: Operation::Delete,
        ..create("Secret", "a")
    };
    assert!(matches(&any, del, None, None));

    let apps = with_rules(
        json!([{"operations": ["*"], "apiGroups": ["apps"], "apiVersions": ["v1"], "resources": ["*"]}]),
    );
    assert!(matches(&apps, create("Deployment", "a"), None, None));
    assert!(!matches(&apps, create("Pod", "a"), None, None));
    let no_rules = with_rules(json!([]));
    assert!(!matches(&no_rules, create("Pod", "a"), None, None));
}

#[test]
fn subresources_match_only_when_named() {
    let status = |resources: Value| {
        let h = with_rules(
            json!([{"operations": ["UPDATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": resources}]),
        );
        let obj = Req {
            op: Operation::Update,
            ..create("Pod", "a")
        };
        let sub = Req {
            op: Operation::Update,
            subresource: "status",
            ..create("Pod", "a")
        };
        (matches(&h, obj, None, None), matches(&h, sub, None, None))
    };
    assert_eq!(status(json!(["pods"])), (true, false));
    assert_eq!(status(json!(["pods/status"])), (false, true));
    assert_eq!(status(json!(["pods/*"])), (true, true));
    assert_eq!(status(json!(["*"])), (true, false));
    assert_eq!(status(json!(["*/status"])), (false, true));
    assert_eq!(status(json!(["*/*"])), (true, true));
    assert_eq!(status(json!(["services/status"])), (false, false));
}

#[test]
fn scopes_split_namespaced_from_cluster_objects() {
    let scoped = |scope: &str| {
        with_rules(
            json!([{"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*"], "scope": scope}]),
        )
    };
    let cases = [
        ("Namespaced", "ConfigMap", "a", true),
        ("Namespaced", "Node", "", false),
        ("Namespaced", "Namespace", "", false),
        ("Cluster", "ConfigMap", "a", false),
        ("Cluster", "Node", "", true),
        ("Cluster", "Namespace", "", true),
        ("*", "ConfigMap", "a", true),
        ("*", "Node", "", true),
    ];
    for (scope, kind, ns, want) in cases {
        let got = matches(&scoped(scope), create(kind, ns), None, None);
        assert_eq!(got, want, "scope {scope} for {kind}");
    }
}

fn selecting(field: &str, selector: Value) -> Hook {
    hook(json!({
        "name": "h.example.com",
        "clientConfig": {"url": "https://h.example.com/"},
        "admissionReviewVersions": ["v1"],
        "sideEffects": "None",
        "rules": [{"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*"]}],
        field: selector,
    }))
}

fn labelled(labels: Value) -> Value {
    json!({"metadata": {"name": "x", "labels": labels}})
}

#[test]
fn namespace_selector_reads_the_namespace_or_the_namespace_object() {
    let h = selecting("namespaceSelector", json!({"matchLabels": {"env": "prod"}}));
    assert!(matches(&h, create("ConfigMap", "prod"), None, None));
    assert!(!matches(&h, create("ConfigMap", "dev"), None, None));
    // A cluster-scoped object other than a namespace skips the namespace selector.
    assert!(matches(&h, create("Node", ""), None, None));
    // A namespace is matched by its own labels: the new ones, or the old ones on delete.
    let prod = labelled(json!({"env": "prod"}));
    assert!(matches(&h, create("Namespace", ""), Some(&prod), None));
    assert!(!matches(
        &h,
        create("Namespace", ""),
        Some(&labelled(json!({}))),
        None
    ));
    let del = Req {
        op: Operation::Delete,
        ..create("Namespace", "")
    };
    assert!(matches(&h, del, None, Some(&prod)));
}

#[test]
fn object_selector_matches_the_new_or_the_old_object() {
    let h = selecting("objectSelector", json!({"matchLabels": {"deny": "yes"}}));
    let yes = labelled(json!({"deny": "yes"}));
    let no = labelled(json!({"deny": "no"}));
    assert!(matches(&h, create("ConfigMap", "a"), Some(&yes), None));
    assert!(!matches(&h, create("ConfigMap", "a"), Some(&no), None));
    let upd = || Req {
        op: Operation::Update,
        ..create("ConfigMap", "a")
    };
    assert!(matches(&h, upd(), Some(&no), Some(&yes)));
    assert!(!matches(&h, upd(), Some(&no), Some(&no)));
    let empty = selecting("objectSelector", json!({}));
    assert!(matches(&empty, create("ConfigMap", "a"), Some(&no), None));
}

#[test]
fn match_expressions_follow_kubernetes_operators() {
    let labels: Labels = [("tier".to_string(), "web".to_string())].into();
    let expr = |op: &str, values: Value| -> LabelSelector {
        serde_json::from_value(
            json!({"matchExpressions": [{"key": "tier", "operator": op, "values": values}]}),
        )
        .unwrap()
    };
    let cases = [
        ("In", json!(["web", "db"]), true),
        ("In", json!(["db"]), false),
        ("NotIn", json!(["db"]), true),
        ("NotIn", json!(["web"]), false),
        ("Exists", json!(null), true),
        ("DoesNotExist", json!(null), false),
    ];
    for (op, values, want) in cases {
        let got = selector_matches(&expr(op, values.clone()), &labels).unwrap();
        assert_eq!(got, want, "{op} {values}");
    }
    let absent = Labels::new();
    assert!(selector_matches(&expr("NotIn", json!(["web"])), &absent).unwrap());
    assert!(selector_matches(&expr("DoesNotExist", json!(null)), &absent).unwrap());
    assert!(!selector_matches(&expr("In", json!(["web"])), &absent).unwrap());
    let err = selector_matches(&expr("Near", json!([])), &labels).unwrap_err();
    assert!(err.contains("\"Near\""), "{err}");
}

#[test]
fn configurations_are_never_sent_to_webhooks() {
    assert!(never_sent(&rt("ValidatingWebhookConfiguration")));
    assert!(never_sent(&rt("MutatingWebhookConfiguration")));
    assert!(!never_sent(&rt("ConfigMap")));
}

#[test]
fn defaults_and_limits_of_a_webhook() {
    let h = with_rules(json!([]));
    assert_eq!(h.failure_policy, FailurePolicy::Fail);
    assert_eq!(h.timeout, Duration::from_secs(10));
    let long = hook(json!({
        "name": "h", "clientConfig": {"url": "https://h/"}, "admissionReviewVersions": ["v1"],
        "sideEffects": "None", "timeoutSeconds": 300, "failurePolicy": "Ignore",
    }));
    assert_eq!(long.failure_policy, FailurePolicy::Ignore);
    assert_eq!(long.timeout, Duration::from_secs(30));
}
