//! Table tests of RBAC decisions, the Node authorizer and escalation checks.

use std::sync::Arc;

use bytes::Bytes;
use k8s_openapi::api::rbac::v1::PolicyRule;
use serde_json::{json, Value};

use super::graph::NodeGraph;
use super::index::Index;
use super::node::NodeAuthorizer;
use super::rules::{self, Request};
use crate::auth::{Attributes, Authorizer, Decision, UserInfo};
use crate::cache::Cached;

fn user(name: &str, groups: &[&str]) -> UserInfo {
    UserInfo {
        name: name.into(),
        uid: String::new(),
        groups: groups.iter().map(|g| g.to_string()).collect(),
    }
}

fn attrs<'a>(
    u: &'a UserInfo,
    verb: &'a str,
    group: &'a str,
    res: &'a str,
    sub: &'a str,
    ns: &'a str,
    name: &'a str,
) -> Attributes<'a> {
    Attributes {
        user: u,
        verb,
        group,
        resource: res,
        subresource: sub,
        namespace: ns,
        name,
    }
}

fn rule(v: Value) -> PolicyRule {
    serde_json::from_value(v).unwrap()
}

fn cached(key: &str, ns: &str, name: &str, v: Value) -> Arc<Cached> {
    Arc::new(Cached {
        key: key.into(),
        rv: 1,
        json: Bytes::from(serde_json::to_vec(&v).unwrap()),
        namespace: ns.into(),
        name: name.into(),
        labels: Default::default(),
        fields: vec![],
    })
}

#[test]
fn every_rule_shape_allows_what_it_names_and_nothing_else() {
    let u = user("alice", &[]);
    let cases: Vec<(Value, Attributes<'_>, bool)> = vec![
        (
            json!({"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}),
            attrs(&u, "get", "", "pods", "", "ns", "p"),
            true,
        ),
        (
            json!({"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}),
            attrs(&u, "list", "", "pods", "", "ns", ""),
            false,
        ),
        (
            json!({"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}),
            attrs(&u, "get", "apps", "pods", "", "ns", "p"),
            false,
        ),
        (
            json!({"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}),
            attrs(&u, "get", "", "pods", "log", "ns", "p"),
            false,
        ),
        (
            json!({"verbs": ["get"], "apiGroups": [""], "resources": ["pods/log"]}),
            attrs(&u, "get", "", "pods", "log", "ns", "p"),
            true,
        ),
        (
            json!({"verbs": ["get"], "apiGroups": [""], "resources": ["*/status"]}),
            attrs(&u, "get", "", "pods", "status", "ns", "p"),
            true,
        ),
        (
            json!({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}),
            attrs(&u, "delete", "apps", "deployments", "scale", "ns", "d"),
            true,
        ),
        (
            json!({"verbs": ["get"], "apiGroups": [""], "resources": ["secrets"], "resourceNames": ["s1"]}),
            attrs(&u, "get", "", "secrets", "", "ns", "s1"),
            true,
        ),
        (
            json!({"verbs": ["get"], "apiGroups": [""], "resources": ["secrets"], "resourceNames": ["s1"]}),
            attrs(&u, "get", "", "secrets", "", "ns", "s2"),
            false,
        ),
        (
            json!({"verbs": ["list"], "apiGroups": [""], "resources": ["secrets"], "resourceNames": ["s1"]}),
            attrs(&u, "list", "", "secrets", "", "ns", ""),
            false,
        ),
    ];
    for (i, (r, a, want)) in cases.iter().enumerate() {
        assert_eq!(
            rules::allows(&rule(r.clone()), &Request::Resource(a)),
            *want,
            "case {i}: {r} {a:?}"
        );
    }
    let metrics = rule(json!({"verbs": ["get"], "nonResourceURLs": ["/metrics", "/api/*"]}));
    assert!(rules::allows(
        &metrics,
        &Request::NonResource {
            path: "/metrics",
            verb: "get"
        }
    ));
    assert!(rules::allows(
        &metrics,
        &Request::NonResource {
            path: "/api/v1",
            verb: "get"
        }
    ));
    assert!(!rules::allows(
        &metrics,
        &Request::NonResource {
            path: "/healthz",
            verb: "get"
        }
    ));
    assert!(!rules::allows(
        &metrics,
        &Request::NonResource {
            path: "/metrics",
            verb: "post"
        }
    ));
}

fn index() -> Index {
    let p = super::index::PREFIX;
    Index::build(&[
        cached(
            &format!("{p}clusterroles/reader"),
            "",
            "reader",
            json!({"rules": [
            {"verbs": ["get", "list"], "apiGroups": [""], "resources": ["secrets"]}]}),
        ),
        cached(
            &format!("{p}roles/dev/pods"),
            "dev",
            "pods",
            json!({"rules": [
            {"verbs": ["*"], "apiGroups": [""], "resources": ["pods"]}]}),
        ),
        cached(
            &format!("{p}rolebindings/dev/a"),
            "dev",
            "a",
            json!({
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "reader"},
            "subjects": [{"kind": "ServiceAccount", "name": "app"}]}),
        ),
        cached(
            &format!("{p}rolebindings/dev/b"),
            "dev",
            "b",
            json!({
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pods"},
            "subjects": [{"kind": "Group", "name": "devs"}]}),
        ),
        cached(
            &format!("{p}clusterrolebindings/c"),
            "",
            "c",
            json!({
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "reader"},
            "subjects": [{"kind": "User", "name": "auditor"}]}),
        ),
    ])
}

#[test]
fn bindings_grant_their_role_to_their_subjects_where_they_apply() {
    let ix = index();
    let sa = user("system:serviceaccount:dev:app", &["system:serviceaccounts"]);
    let dev = user("bob", &["devs"]);
    let auditor = user("auditor", &[]);
    let cases = [
        (&sa, "get", "secrets", "dev", true),
        (&sa, "get", "secrets", "prod", false),
        (&sa, "delete", "secrets", "dev", false),
        (&dev, "delete", "pods", "dev", true),
        (&dev, "get", "pods", "prod", false),
        (&dev, "get", "secrets", "dev", false),
        (&auditor, "list", "secrets", "prod", true),
        (&auditor, "list", "secrets", "", true),
    ];
    for (u, verb, res, ns, want) in cases {
        let a = attrs(u, verb, "", res, "", ns, "x");
        assert_eq!(
            ix.allows(u, ns, &Request::Resource(&a)),
            want,
            "{} {verb} {res} in {ns:?}",
            u.name
        );
    }
}

#[test]
fn escalation_needs_every_wanted_rule_held() {
    let held = [rule(
        json!({"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods", "secrets"]}),
    )];
    let held: Vec<&PolicyRule> = held.iter().collect();
    let ok = rule(json!({"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}));
    let more_verbs =
        rule(json!({"verbs": ["get", "delete"], "apiGroups": [""], "resources": ["pods"]}));
    let wildcard = rule(json!({"verbs": ["get"], "apiGroups": [""], "resources": ["*"]}));
    let named = rule(
        json!({"verbs": ["get"], "apiGroups": [""], "resources": ["secrets"], "resourceNames": ["s"]}),
    );
    assert!(rules::covers(&held, &ok));
    assert!(!rules::covers(&held, &more_verbs));
    assert!(
        !rules::covers(&held, &wildcard),
        "a wildcard is held only as a wildcard"
    );
    assert!(rules::covers(&held, &named));
    let admin = [rule(
        json!({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}),
    )];
    let admin: Vec<&PolicyRule> = admin.iter().collect();
    assert!(rules::covers(&admin, &wildcard));
    assert!(rules::covers(&admin, &more_verbs));
}

#[test]
fn a_node_reaches_only_what_its_pods_use_and_writes_only_its_own() {
    let graph = Arc::new(NodeGraph::default());
    graph.observe(&cached(
        "/registry/core/pods/ns/p1",
        "ns",
        "p1",
        json!({"spec": {"nodeName": "w1",
        "serviceAccountName": "sa1", "volumes": [{"secret": {"secretName": "s1"}}]}}),
    ));
    graph.observe(&cached(
        "/registry/core/pods/ns/p2",
        "ns",
        "p2",
        json!({"spec": {"nodeName": "w2",
        "volumes": [{"secret": {"secretName": "s2"}}, {"configMap": {"name": "c2"}}]}}),
    ));
    let authz = NodeAuthorizer { graph };
    let w1 = user("system:node:w1", &["system:nodes", "system:authenticated"]);
    let imposter = user("system:node:w1", &["system:authenticated"]);
    let cases = [
        (&w1, "get", "", "secrets", "", "ns", "s1", true),
        (&w1, "get", "", "secrets", "", "ns", "s2", false),
        (&w1, "list", "", "secrets", "", "ns", "", false),
        (&w1, "get", "", "configmaps", "", "ns", "c2", false),
        (
            &w1,
            "create",
            "",
            "serviceaccounts",
            "token",
            "ns",
            "sa1",
            true,
        ),
        (
            &w1,
            "create",
            "",
            "serviceaccounts",
            "token",
            "ns",
            "default",
            false,
        ),
        (&w1, "update", "", "nodes", "status", "", "w1", true),
        (&w1, "update", "", "nodes", "status", "", "w2", false),
        (&w1, "patch", "", "nodes", "", "", "w2", false),
        (&w1, "list", "", "nodes", "", "", "", true),
        (&w1, "update", "", "pods", "status", "ns", "p1", true),
        (&w1, "update", "", "pods", "status", "ns", "p2", false),
        (&w1, "delete", "", "pods", "", "ns", "p2", false),
        (
            &w1,
            "update",
            "coordination.k8s.io",
            "leases",
            "",
            "kube-node-lease",
            "w1",
            true,
        ),
        (
            &w1,
            "update",
            "coordination.k8s.io",
            "leases",
            "",
            "kube-node-lease",
            "w2",
            false,
        ),
        (
            &w1,
            "list",
            "discovery.k8s.io",
            "endpointslices",
            "",
            "",
            "",
            true,
        ),
        (&w1, "create", "apps", "deployments", "", "ns", "d", false),
        (&imposter, "get", "", "secrets", "", "ns", "s1", false),
    ];
    for (u, verb, group, res, sub, ns, name, want) in cases {
        let got = authz.authorize(&attrs(u, verb, group, res, sub, ns, name)) == Decision::Allow;
        assert_eq!(got, want, "{} {verb} {res}/{sub} {ns}/{name}", u.name);
    }
}

#[test]
fn a_node_reads_the_volumes_bound_to_the_claims_its_pods_use() {
    let graph = Arc::new(NodeGraph::default());
    let claim = |name: &str, volume: &str, rv: i64| {
        let mut c = cached(
            &format!("/registry/core/persistentvolumeclaims/ns/{name}"),
            "ns",
            name,
            json!({"spec": {"volumeName": volume}}),
        );
        Arc::get_mut(&mut c).unwrap().rv = rv;
        c
    };
    graph.observe(&cached(
        "/registry/core/pods/ns/p1",
        "ns",
        "p1",
        json!({"spec": {"nodeName": "w1",
        "volumes": [{"persistentVolumeClaim": {"claimName": "data"}}]}}),
    ));
    graph.observe(&claim("data", "pv-1", 5));
    graph.observe(&claim("other", "pv-2", 5));
    // An older revision of the claim, replayed after it was listed, changes nothing.
    graph.observe(&claim("data", "", 3));
    let authz = NodeAuthorizer { graph };
    let w1 = user("system:node:w1", &["system:nodes"]);
    let w2 = user("system:node:w2", &["system:nodes"]);
    let cases = [
        (&w1, "get", "pv-1", true),
        (&w1, "get", "pv-2", false),
        (&w1, "list", "", false),
        (&w1, "delete", "pv-1", false),
        (&w2, "get", "pv-1", false),
    ];
    for (u, verb, name, want) in cases {
        let got = authz.authorize(&attrs(u, verb, "", "persistentvolumes", "", "", name))
            == Decision::Allow;
        assert_eq!(got, want, "{} {verb} persistentvolumes/{name}", u.name);
    }
}
