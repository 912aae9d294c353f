//! Table tests of parsing, validating and matching audit policies.

use super::*;

fn user(name: &str, groups: &[&str]) -> UserInfo {
    UserInfo {
        name: name.into(),
        uid: String::new(),
        groups: groups.iter().map(|g| g.to_string()).collect(),
    }
}

/// A resource request by `alice` (group `devs`).
fn req<'a>(u: &'a UserInfo, verb: &'a str, group: &'a str, res: &'a str) -> Attributes<'a> {
    Attributes {
        user: Some(u),
        verb,
        api_group: group,
        resource: res,
        subresource: "",
        namespace: "default",
        name: "x",
        path: None,
    }
}

fn policy(rules: &str) -> Policy {
    let text = format!("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n{rules}");
    Policy::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn level(p: &Policy, a: &Attributes<'_>) -> Level {
    p.decide(a).level
}

#[test]
fn parses_the_kubernetes_documentation_example() {
    let p = Policy::parse(
        r#"
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages:
  - "RequestReceived"
rules:
  - level: RequestResponse
    resources:
    - group: ""
      resources: ["pods"]
  - level: Metadata
    resources:
    - group: ""
      resources: ["pods/log", "pods/status"]
  - level: None
    resources:
    - group: ""
      resources: ["configmaps"]
      resourceNames: ["controller-leader"]
  - level: None
    users: ["system:kube-proxy"]
    verbs: ["watch"]
    resources:
    - group: ""
      resources: ["endpoints", "services"]
  - level: None
    userGroups: ["system:authenticated"]
    nonResourceURLs:
    - "/api*"
    - "/version"
  - level: Request
    resources:
    - group: ""
      resources: ["configmaps"]
    namespaces: ["kube-system"]
  - level: Metadata
    resources:
    - group: ""
      resources: ["secrets", "configmaps"]
  - level: Request
    resources:
    - group: ""
    - group: "extensions"
  - level: Metadata
    omitStages:
      - "RequestReceived"
"#,
    )
    .unwrap();
    assert_eq!(p.rules.len(), 9);
    assert_eq!(p.rules[0].level, Level::RequestResponse);
    assert_eq!(p.omit_stages, vec![Stage::RequestReceived]);
    assert_eq!(p.rules[8].omit_stages, vec![Stage::RequestReceived]);
}

#[test]
fn parses_json() {
    let p = Policy::parse(
        r#"{"apiVersion":"audit.k8s.io/v1","kind":"Policy",
            "rules":[{"level":"Metadata","nonResourceURLs":["/healthz*"]}]}"#,
    )
    .unwrap();
    assert_eq!(p.rules[0].non_resource_urls, vec!["/healthz*"]);
}

#[test]
fn first_matching_rule_wins_and_no_match_is_none() {
    let p =
        policy("- level: Request\n  verbs: [create]\n- level: Metadata\n  verbs: [create, get]\n");
    let u = user("alice", &[]);
    assert_eq!(level(&p, &req(&u, "create", "", "pods")), Level::Request);
    assert_eq!(level(&p, &req(&u, "get", "", "pods")), Level::Metadata);
    assert_eq!(level(&p, &req(&u, "delete", "", "pods")), Level::None);
}

#[test]
fn users_and_groups() {
    let p = policy(
        "- level: Request\n  users: [alice]\n- level: Metadata\n  userGroups: [devs, ops]\n",
    );
    let alice = user("alice", &[]);
    let bob = user("bob", &["ops"]);
    let carol = user("carol", &["other"]);
    assert_eq!(level(&p, &req(&alice, "get", "", "pods")), Level::Request);
    assert_eq!(level(&p, &req(&bob, "get", "", "pods")), Level::Metadata);
    assert_eq!(level(&p, &req(&carol, "get", "", "pods")), Level::None);
    // A request that failed authentication has no user: only rules without users match.
    let mut anon = req(&alice, "get", "", "pods");
    anon.user = None;
    assert_eq!(level(&p, &anon), Level::None);
}

#[test]
fn resources_groups_subresources_and_names() {
    let p = policy(concat!(
        "- level: RequestResponse\n  resources:\n  - group: apps\n    resources: [deployments/scale]\n",
        "- level: Request\n  resources:\n  - group: \"\"\n    resources: [\"*/status\"]\n",
        "- level: Metadata\n  resources:\n  - group: \"\"\n    resources: [\"pods/*\"]\n",
        "- level: Request\n  resources:\n  - group: \"\"\n    resources: [configmaps]\n    resourceNames: [cfg]\n",
        "- level: Metadata\n  resources:\n  - group: batch\n",
        "- level: Request\n  resources:\n  - group: rbac.authorization.k8s.io\n    resources: [\"*\"]\n",
    ));
    let u = user("alice", &[]);
    let sub = |group: &'static str, res: &'static str, sub: &'static str| {
        let mut a = req(&u, "update", group, res);
        a.subresource = sub;
        a
    };
    assert_eq!(
        level(&p, &sub("apps", "deployments", "scale")),
        Level::RequestResponse
    );
    assert_eq!(level(&p, &sub("apps", "deployments", "")), Level::None);
    assert_eq!(level(&p, &sub("", "nodes", "status")), Level::Request);
    assert_eq!(level(&p, &sub("", "pods", "log")), Level::Metadata);
    // `pods/*` names every subresource and the resource itself.
    assert_eq!(level(&p, &sub("", "pods", "")), Level::Metadata);
    assert_eq!(level(&p, &sub("", "configmaps", "")), Level::None, "name x");
    let mut named = sub("", "configmaps", "");
    named.name = "cfg";
    assert_eq!(level(&p, &named), Level::Request);
    assert_eq!(level(&p, &sub("batch", "jobs", "status")), Level::Metadata);
    assert_eq!(
        level(&p, &sub("rbac.authorization.k8s.io", "roles", "")),
        Level::Request
    );
    // The group must match exactly: a core resource is not in `apps`.
    assert_eq!(level(&p, &sub("", "deployments", "status")), Level::Request);
    assert_eq!(
        level(&p, &sub("extensions", "deployments", "scale")),
        Level::None
    );
}

#[test]
fn namespaces_and_cluster_scope() {
    let p = policy(
        "- level: Request\n  namespaces: [kube-system]\n- level: Metadata\n  namespaces: [\"\"]\n",
    );
    let u = user("alice", &[]);
    let mut a = req(&u, "get", "", "pods");
    assert_eq!(level(&p, &a), Level::None);
    a.namespace = "kube-system";
    assert_eq!(level(&p, &a), Level::Request);
    a.namespace = "";
    assert_eq!(level(&p, &a), Level::Metadata);
    // A rule with namespaces never matches a non-resource request.
    a.path = Some("/healthz");
    assert_eq!(level(&p, &a), Level::None);
}

#[test]
fn non_resource_urls() {
    let p = policy(
        "- level: Request\n  nonResourceURLs: [/version, \"/healthz*\"]\n- level: Metadata\n  nonResourceURLs: [\"*\"]\n",
    );
    let u = user("alice", &[]);
    let mut a = req(&u, "get", "", "");
    a.path = Some("/version");
    assert_eq!(level(&p, &a), Level::Request);
    a.path = Some("/healthz/etcd");
    assert_eq!(level(&p, &a), Level::Request);
    a.path = Some("/metrics");
    assert_eq!(level(&p, &a), Level::Metadata);
    // Resource requests are not matched by non-resource rules.
    assert_eq!(level(&p, &req(&u, "get", "", "pods")), Level::None);
}

#[test]
fn omit_stages_are_the_union_of_policy_and_rule() {
    let p = Policy::parse(concat!(
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\nrules:\n",
        "- level: Metadata\n  verbs: [get]\n  omitStages: [ResponseStarted, RequestReceived]\n",
        "- level: Request\n  verbs: [list]\n",
    ))
    .unwrap();
    let u = user("alice", &[]);
    let get = p.decide(&req(&u, "get", "", "pods"));
    assert_eq!(
        get.omit_stages,
        vec![Stage::ResponseStarted, Stage::RequestReceived]
    );
    let list = p.decide(&req(&u, "list", "", "pods"));
    assert_eq!(list.omit_stages, vec![Stage::RequestReceived]);
    let none = p.decide(&req(&u, "delete", "", "pods"));
    assert_eq!(
        (none.level, none.omit_stages),
        (Level::None, vec![Stage::RequestReceived])
    );
}

#[test]
fn bad_policies_name_the_field() {
    let head = "apiVersion: audit.k8s.io/v1\nkind: Policy\n";
    for (text, want) in [
        ("kind: Policy\nrules: [{level: None}]".to_string(), "apiVersion: Required value"),
        (
            "apiVersion: audit.k8s.io/v1beta1\nkind: Policy\nrules: [{level: None}]".into(),
            "apiVersion: Unsupported value: \"audit.k8s.io/v1beta1\"",
        ),
        (
            "apiVersion: audit.k8s.io/v1\nkind: Event\nrules: [{level: None}]".into(),
            "kind: Unsupported value",
        ),
        (format!("{head}rules: []"), "rules: Required value"),
        (format!("{head}rules: [{{verbs: [get]}}]"), "rules[0].level: Required value"),
        (
            format!("{head}rules: [{{level: None}}, {{level: All}}]"),
            "rules[1].level: Unsupported value: \"All\"",
        ),
        (format!("{head}rules: [{{level: None, verb: [get]}}]"), "rules[0]: unknown field `verb`"),
        (
            format!("{head}omitStages: [Started]\nrules: [{{level: None}}]"),
            "omitStages[0]: Invalid value: \"Started\": allowed stages are",
        ),
        (
            format!("{head}rules: [{{level: None, omitStages: [RequestReceived, Done]}}]"),
            "rules[0].omitStages[1]",
        ),
        (
            format!("{head}rules: [{{level: None, resources: [{{resourceNames: [a]}}]}}]"),
            "rules[0].resources[0].resourceNames: Invalid value: \"[a]\": using resourceNames requires at least one resource",
        ),
        (
            format!("{head}rules: [{{level: None, resources: [{{group: apps/v1}}]}}]"),
            "rules[0].resources[0].group: Invalid value",
        ),
        (
            format!("{head}rules: [{{level: None, namespaces: [a], nonResourceURLs: [/x]}}]"),
            "rules cannot apply to both regular resources and non-resource URLs",
        ),
        (
            format!("{head}rules: [{{level: None, nonResourceURLs: [healthz]}}]"),
            "rules[0].nonResourceURLs[0]: Invalid value: \"healthz\": non-resource URL rules must begin with a '/' character",
        ),
        (
            format!("{head}rules: [{{level: None, nonResourceURLs: [\"/a*/b\"]}}]"),
            "must be the final character",
        ),
        (format!("{head}rules: {{level: None}}"), "rules: invalid type"),
    ] {
        let err = Policy::parse(&text).expect_err(&text).to_string();
        assert!(err.contains(want), "{text}\n  gave {err}\n  wanted {want}");
    }
}

#[test]
fn load_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.yaml");
    std::fs::write(&path, "apiVersion: audit.k8s.io/v1\nkind: Policy\n").unwrap();
    let err = Policy::load(&path).unwrap_err().to_string();
    assert!(
        err.contains("policy.yaml") && err.contains("rules: Required value"),
        "{err}"
    );
    let missing = dir.path().join("missing.yaml");
    let err = Policy::load(&missing).unwrap_err().to_string();
    assert!(err.contains("missing.yaml"), "{err}");
}
