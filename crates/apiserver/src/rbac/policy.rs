//! The bootstrap roles and bindings every cluster has, reconciled at start: created when
//! missing, and brought back to their defaults unless annotated
//! `rbac.authorization.kubernetes.io/autoupdate: "false"` (as kube-apiserver does).

mod aggregated;

use std::sync::Arc;
use std::time::Duration;

use rkube_proto::api::{Object, TypeRef};
use serde_json::{json, Value};

use self::aggregated::{admin_rules, edit_rules, workloads};
use crate::auth::UserInfo;
use crate::error::Error;
use crate::handler::Api;

const AUTOUPDATE: &str = "rbac.authorization.kubernetes.io/autoupdate";
pub(super) const READ: &[&str] = &["get", "list", "watch"];
const WRITE: &[&str] = &["create", "update", "patch", "delete", "deletecollection"];

pub(super) fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> Value {
    json!({"apiGroups": groups, "resources": resources, "verbs": verbs})
}

fn urls(paths: &[&str], verbs: &[&str]) -> Value {
    json!({"nonResourceURLs": paths, "verbs": verbs})
}

/// The ClusterRoles: name and rules.
pub fn cluster_roles() -> Vec<(&'static str, Vec<Value>)> {
    let mut roles = user_roles();
    roles.extend(component_roles());
    roles
}

/// The roles people and every authenticated client are bound to.
fn user_roles() -> Vec<(&'static str, Vec<Value>)> {
    vec![
        (
            "cluster-admin",
            vec![rule(&["*"], &["*"], &["*"]), urls(&["*"], &["*"])],
        ),
        ("system:aggregate-to-admin", admin_rules()),
        ("system:aggregate-to-edit", edit_rules()),
        ("system:aggregate-to-view", workloads()),
        (
            "system:basic-user",
            vec![
                rule(
                    &["authorization.k8s.io"],
                    &["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                    &["create"],
                ),
                rule(
                    &["authentication.k8s.io"],
                    &["selfsubjectreviews"],
                    &["create"],
                ),
            ],
        ),
        (
            "system:discovery",
            vec![urls(
                &[
                    "/api",
                    "/api/*",
                    "/apis",
                    "/apis/*",
                    "/healthz",
                    "/livez",
                    "/readyz",
                    "/version",
                    "/version/",
                    "/openapi",
                    "/openapi/*",
                ],
                &["get"],
            )],
        ),
        (
            "system:public-info-viewer",
            vec![urls(
                &["/healthz", "/livez", "/readyz", "/version", "/version/"],
                &["get"],
            )],
        ),
        // Scrapers: the members' and the components' metrics and health.
        (
            "system:monitoring",
            vec![urls(
                &[
                    "/healthz",
                    "/healthz/*",
                    "/livez",
                    "/livez/*",
                    "/metrics",
                    "/metrics/slis",
                    "/readyz",
                    "/readyz/*",
                ],
                &["get"],
            )],
        ),
    ]
}

/// Events, as every component writes them.
fn events() -> Value {
    rule(
        &["", "events.k8s.io"],
        &["events"],
        &["create", "update", "patch"],
    )
}

/// Leases, as every leader-elected component keeps one.
fn leases() -> Value {
    rule(
        &["coordination.k8s.io"],
        &["leases"],
        &["get", "list", "watch", "create", "update", "patch"],
    )
}

/// The roles of the control plane's own components.
fn component_roles() -> Vec<(&'static str, Vec<Value>)> {
    let mut roles = vec![(
        "system:kube-scheduler",
        vec![
            rule(
                &[""],
                &[
                    "pods",
                    "nodes",
                    "namespaces",
                    "services",
                    "replicationcontrollers",
                    "persistentvolumeclaims",
                    "persistentvolumes",
                ],
                READ,
            ),
            rule(&["apps"], &["replicasets", "statefulsets"], READ),
            rule(&["policy"], &["poddisruptionbudgets"], READ),
            rule(&["scheduling.k8s.io"], &["priorityclasses"], READ),
            rule(&["storage.k8s.io"], &["storageclasses"], READ),
            // The selected-node annotation on a WaitForFirstConsumer claim.
            rule(&[""], &["persistentvolumeclaims"], &["update", "patch"]),
            rule(&[""], &["pods/binding", "bindings"], &["create"]),
            rule(&[""], &["pods/status"], &["update", "patch"]),
            rule(&[""], &["pods"], &["delete"]),
            events(),
            leases(),
        ],
    )];
    roles.extend(manager_roles());
    roles.extend(node_roles());
    roles
}

/// The controller-manager's and the cloud-controller-manager's roles.
fn manager_roles() -> Vec<(&'static str, Vec<Value>)> {
    vec![
        // The controller-manager itself only reads (its shared informers), keeps its
        // Lease, and makes its controllers' ServiceAccounts and tokens: each controller
        // writes under its own account (`controller_policy`).
        (
            "system:kube-controller-manager",
            vec![
                rule(&["*"], &["*"], READ),
                rule(&[""], &["serviceaccounts"], &["get", "create"]),
                rule(&[""], &["serviceaccounts/token"], &["create"]),
                // Whether a caller of its secure port may read what it asks for.
                rule(
                    &["authorization.k8s.io"],
                    &["subjectaccessreviews"],
                    &["create"],
                ),
                events(),
                leases(),
            ],
        ),
        // Initializes nodes from the cloud provider, and deletes those whose machine is
        // gone; keeps Services' load balancers and provisions and attaches volumes.
        (
            "system:cloud-controller-manager",
            vec![
                rule(&["*"], &["*"], READ),
                rule(&[""], &["nodes"], &["update", "patch", "delete"]),
                rule(&[""], &["nodes/status"], &["update", "patch"]),
                rule(
                    &[""],
                    &["services", "services/status"],
                    &["update", "patch"],
                ),
                // The volume loop: the volumes it provisions (with their finalizer) and
                // their attachments to nodes.
                rule(
                    &[""],
                    &["persistentvolumes"],
                    &["create", "update", "patch", "delete"],
                ),
                rule(
                    &["storage.k8s.io"],
                    &["volumeattachments"],
                    &["create", "update", "patch", "delete"],
                ),
                rule(
                    &["storage.k8s.io"],
                    &["volumeattachments/status"],
                    &["update", "patch"],
                ),
                // Whether a caller of its secure port may read what it asks for.
                rule(
                    &["authorization.k8s.io"],
                    &["subjectaccessreviews"],
                    &["create"],
                ),
                events(),
                leases(),
            ],
        ),
    ]
}

/// The roles of what runs on nodes: the proxy, and the bootstrappers that join them.
fn node_roles() -> Vec<(&'static str, Vec<Value>)> {
    vec![
        (
            "system:node-proxier",
            vec![
                rule(
                    &["", "discovery.k8s.io"],
                    &["services", "endpoints", "endpointslices", "nodes"],
                    READ,
                ),
                events(),
            ],
        ),
        (
            "system:node-bootstrapper",
            vec![rule(
                &["certificates.k8s.io"],
                &["certificatesigningrequests"],
                &["create", "get", "list", "watch"],
            )],
        ),
    ]
}

/// A bootstrap ClusterRoleBinding: its name, its ClusterRole and its subjects `(kind, name)`.
pub type BootstrapBinding = (
    &'static str,
    &'static str,
    Vec<(&'static str, &'static str)>,
);

/// The ClusterRoleBindings.
pub fn cluster_role_bindings() -> Vec<BootstrapBinding> {
    vec![
        (
            "cluster-admin",
            "cluster-admin",
            vec![("Group", "system:masters")],
        ),
        (
            "system:basic-user",
            "system:basic-user",
            vec![("Group", "system:authenticated")],
        ),
        (
            "system:discovery",
            "system:discovery",
            vec![("Group", "system:authenticated")],
        ),
        (
            "system:public-info-viewer",
            "system:public-info-viewer",
            vec![
                ("Group", "system:authenticated"),
                ("Group", "system:unauthenticated"),
            ],
        ),
        (
            "system:kube-scheduler",
            "system:kube-scheduler",
            vec![("User", "system:kube-scheduler")],
        ),
        (
            "system:kube-controller-manager",
            "system:kube-controller-manager",
            vec![("User", "system:kube-controller-manager")],
        ),
        (
            "system:cloud-controller-manager",
            "system:cloud-controller-manager",
            vec![("User", "system:cloud-controller-manager")],
        ),
        (
            "system:node-proxier",
            "system:node-proxier",
            vec![("User", "system:kube-proxy")],
        ),
        (
            "system:node-bootstrapper",
            "system:node-bootstrapper",
            vec![("Group", "system:bootstrappers")],
        ),
        (
            "system:monitoring",
            "system:monitoring",
            vec![("Group", "system:monitoring")],
        ),
    ]
}

pub(super) fn meta(name: &str) -> Value {
    json!({"name": name, "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
           "annotations": {AUTOUPDATE: "true"}})
}

/// The roles made of others, as Kubernetes' admin, edit and view are: each holds the rules
/// of every ClusterRole labelled `rbac.authorization.k8s.io/aggregate-to-<name>: "true"`
/// (the `system:aggregate-to-<name>` defaults, and whatever an operator adds), kept so by
/// the clusterrole-aggregation controller. They start out with the defaults' rules;
/// reconciling restores only their aggregation rule.
const AGGREGATED: &[&str] = &["admin", "edit", "view"];

fn aggregate_label(name: &str) -> String {
    format!("rbac.authorization.k8s.io/aggregate-to-{name}")
}

/// Every bootstrap object, as (kind, object).
fn objects() -> Vec<(&'static str, Value)> {
    let mut out = Vec::new();
    for (name, rules) in cluster_roles() {
        let mut metadata = meta(name);
        if let Some(target) = name.strip_prefix("system:aggregate-to-") {
            metadata["labels"][aggregate_label(target)] = json!("true");
        }
        out.push(("ClusterRole", json!({"metadata": metadata, "rules": rules})));
    }
    for name in AGGREGATED {
        let from = format!("system:aggregate-to-{name}");
        let rules = cluster_roles()
            .into_iter()
            .find(|(n, _)| *n == from)
            .map(|(_, r)| r)
            .unwrap_or_default();
        let selector = json!({"matchLabels": {aggregate_label(name): "true"}});
        out.push((
            "ClusterRole",
            json!({"metadata": meta(name), "rules": rules,
            "aggregationRule": {"clusterRoleSelectors": [selector]}}),
        ));
    }
    out.extend(super::controller_policy::objects());
    for (name, role, subjects) in cluster_role_bindings() {
        let subjects: Vec<Value> = subjects
            .into_iter()
            .map(|(kind, n)| json!({"kind": kind, "name": n, "apiGroup": "rbac.authorization.k8s.io"}))
            .collect();
        out.push(("ClusterRoleBinding", json!({"metadata": meta(name),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": subjects})));
    }
    out
}

fn key_of(kind: &str, name: &str) -> String {
    let plural = if kind == "ClusterRole" {
        "clusterroles"
    } else {
        "clusterrolebindings"
    };
    format!("{}{plural}/{name}", super::index::PREFIX)
}

/// The first bootstrap role or binding this member's cache does not hold yet: until there
/// is none, the member is not ready (kube-apiserver's `rbac/bootstrap-roles` check).
pub fn first_missing(cache: &crate::cache::WatchCache) -> Option<String> {
    objects().into_iter().find_map(|(kind, obj)| {
        let name = obj["metadata"]["name"].as_str().unwrap_or_default();
        cache
            .get(&key_of(kind, name))
            .is_none()
            .then(|| format!("{kind} {name}"))
    })
}

/// Creates or restores every bootstrap role and binding, retrying until the store answers.
pub async fn reconcile(api: Arc<Api>) {
    let user = UserInfo {
        name: "system:apiserver".into(),
        uid: String::new(),
        groups: vec!["system:masters".into()],
    };
    for (kind, obj) in objects() {
        let name = obj["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        loop {
            match ensure(&api, &user, kind, &obj).await {
                Ok(()) => break,
                Err(e) => {
                    tracing::debug!(kind, name, error = %e, "bootstrap RBAC object not reconciled yet");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }
    tracing::info!("bootstrap roles and bindings reconciled");
}

fn envelope(kind: &str, obj: &Value) -> Object {
    Object {
        r#type: Some(TypeRef {
            api_version: "rbac.authorization.k8s.io/v1".into(),
            kind: kind.into(),
        }),
        name: obj["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        json: serde_json::to_vec(obj).unwrap_or_default().into(),
        ..Default::default()
    }
}

async fn ensure(api: &Api, user: &UserInfo, kind: &str, want: &Value) -> crate::error::Result<()> {
    let name = want["metadata"]["name"].as_str().unwrap_or_default();
    let key = key_of(kind, name);
    let cur = match api.cache.get(&key) {
        Some(c) => c.value()?,
        None => {
            return match api.create(user, &envelope(kind, want)).await {
                Ok(_) | Err(Error::AlreadyExists { .. }) => Ok(()),
                Err(e) => Err(e),
            }
        }
    };
    let field = match kind {
        _ if !want["aggregationRule"].is_null() => "aggregationRule",
        "ClusterRole" => "rules",
        _ => "subjects",
    };
    let auto = cur["metadata"]["annotations"][AUTOUPDATE] != "false";
    if !auto || (cur[field] == want[field] && cur["roleRef"] == want["roleRef"]) {
        return Ok(());
    }
    let mut next = cur.clone();
    next[field] = want[field].clone();
    if kind == "ClusterRoleBinding" {
        next["roleRef"] = want["roleRef"].clone();
    }
    api.update(user, &envelope(kind, &next), "")
        .await
        .map(|_| ())
}
