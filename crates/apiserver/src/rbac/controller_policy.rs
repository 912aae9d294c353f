//! The roles of the controller-manager's controllers, one per controller as Kubernetes'
//! `system:controller:<name>` roles: each controller writes under its own ServiceAccount
//! `kube-system/<name>` and may touch only the kinds it manages. The controller-manager's
//! own identity only reads (its shared informers), keeps its Lease and makes the
//! controllers' accounts and tokens.

use serde_json::{json, Value};

use super::policy::{meta, rule, READ};

const NAMESPACE: &str = "kube-system";
const UPDATE: &[&str] = &["update", "patch"];

fn events() -> Value {
    rule(
        &["", "events.k8s.io"],
        &["events"],
        &["create", "update", "patch"],
    )
}

/// Reads, writes and status of the kind a controller owns, plus events.
fn owner(group: &str, kind: &str) -> Vec<Value> {
    vec![
        rule(
            &[group],
            &[kind],
            &["get", "list", "watch", "update", "patch"],
        ),
        rule(
            &[group],
            &[&format!("{kind}/status"), &format!("{kind}/finalizers")],
            UPDATE,
        ),
        events(),
    ]
}

/// Pods made and removed for an owner.
fn pods() -> Value {
    rule(
        &[""],
        &["pods"],
        &["get", "list", "watch", "create", "delete", "patch"],
    )
}

/// A role's name and rules.
type Roles = Vec<(&'static str, Vec<Value>)>;

/// Each controller's name and rules.
pub fn controller_roles() -> Vec<(&'static str, Vec<Value>)> {
    [
        rollout_roles(),
        account_roles(),
        endpoint_node_and_gc_roles(),
        batch_and_daemon_roles(),
        stateful_set_roles(),
        volume_roles(),
        namespace_and_scaling_roles(),
        certificate_quota_and_rbac_roles(),
    ]
    .into_iter()
    .flatten()
    .map(|(n, mut rules)| {
        // Every controller may find out which kinds exist.
        rules.push(
            json!({"nonResourceURLs": ["/api", "/api/*", "/apis", "/apis/*"], "verbs": ["get"]}),
        );
        (n, rules)
    })
    .collect()
}

/// The controllers that roll pods out through ReplicaSets and ReplicationControllers.
fn rollout_roles() -> Roles {
    vec![
        (
            "replicaset-controller",
            [owner("apps", "replicasets"), vec![pods()]].concat(),
        ),
        (
            "replication-controller",
            [owner("", "replicationcontrollers"), vec![pods()]].concat(),
        ),
        (
            "deployment-controller",
            [
                owner("apps", "deployments"),
                vec![
                    rule(
                        &["apps"],
                        &["replicasets"],
                        &[
                            "get", "list", "watch", "create", "update", "patch", "delete",
                        ],
                    ),
                    rule(&[""], &["pods"], &["get", "list", "watch", "update"]),
                ],
            ]
            .concat(),
        ),
    ]
}

/// ServiceAccounts and their tokens.
fn account_roles() -> Roles {
    vec![
        (
            "service-account-controller",
            vec![rule(&[""], &["serviceaccounts"], &["create"]), events()],
        ),
        (
            "root-ca-cert-publisher",
            vec![
                rule(&[""], &["configmaps"], &["create", "update"]),
                events(),
            ],
        ),
        (
            "token-controller",
            vec![
                rule(&[""], &["serviceaccounts"], READ),
                rule(&[""], &["serviceaccounts/token"], &["create"]),
                rule(
                    &[""],
                    &["secrets"],
                    &[
                        "get", "list", "watch", "create", "update", "patch", "delete",
                    ],
                ),
                events(),
            ],
        ),
    ]
}

/// Endpoints, Node lifecycle and garbage collection.
fn endpoint_node_and_gc_roles() -> Roles {
    vec![
        (
            "endpoint-controller",
            vec![
                rule(&[""], &["services", "pods"], READ),
                rule(
                    &[""],
                    &["endpoints"],
                    &[
                        "get", "list", "watch", "create", "update", "patch", "delete",
                    ],
                ),
                rule(
                    &["discovery.k8s.io"],
                    &["endpointslices"],
                    &[
                        "get", "list", "watch", "create", "update", "patch", "delete",
                    ],
                ),
                events(),
            ],
        ),
        (
            "node-lifecycle-controller",
            vec![
                rule(
                    &[""],
                    &["nodes"],
                    &["get", "list", "watch", "update", "patch", "delete"],
                ),
                rule(&[""], &["nodes/status", "pods/status"], UPDATE),
                rule(
                    &[""],
                    &["pods"],
                    &["get", "list", "watch", "delete", "patch"],
                ),
                rule(&[""], &["pods/eviction"], &["create"]),
                rule(&["coordination.k8s.io"], &["leases"], READ),
                events(),
            ],
        ),
        (
            "generic-garbage-collector",
            vec![rule(
                &["*"],
                &["*"],
                &["get", "list", "watch", "update", "patch", "delete"],
            )],
        ),
        (
            "pod-garbage-collector",
            vec![
                rule(&[""], &["pods"], &["list", "watch", "delete"]),
                rule(&[""], &["nodes"], &["get", "list", "watch"]),
            ],
        ),
    ]
}

/// Jobs, CronJobs and DaemonSets.
fn batch_and_daemon_roles() -> Roles {
    vec![
        (
            "job-controller",
            [owner("batch", "jobs"), vec![pods()]].concat(),
        ),
        (
            "cronjob-controller",
            [
                owner("batch", "cronjobs"),
                vec![
                    rule(
                        &["batch"],
                        &["jobs"],
                        &[
                            "get", "list", "watch", "create", "update", "patch", "delete",
                        ],
                    ),
                    rule(&[""], &["pods"], &["get", "list", "watch", "delete"]),
                ],
            ]
            .concat(),
        ),
        (
            "daemon-set-controller",
            [
                owner("apps", "daemonsets"),
                vec![
                    pods(),
                    rule(&[""], &["pods/binding"], &["create"]),
                    rule(&[""], &["nodes"], READ),
                    rule(
                        &["apps"],
                        &["controllerrevisions"],
                        &[
                            "get", "list", "watch", "create", "update", "patch", "delete",
                        ],
                    ),
                ],
            ]
            .concat(),
        ),
    ]
}

/// StatefulSets: their pods, the claims made from their templates, and their revision
/// history.
fn stateful_set_roles() -> Roles {
    const ALL: &[&str] = &[
        "get", "list", "watch", "create", "update", "patch", "delete",
    ];
    vec![(
        "statefulset-controller",
        vec![
            rule(&["apps"], &["statefulsets"], READ),
            rule(
                &["apps"],
                &["statefulsets/status", "statefulsets/finalizers"],
                UPDATE,
            ),
            rule(&[""], &["pods"], ALL),
            rule(&[""], &["persistentvolumeclaims"], ALL),
            rule(&["apps"], &["controllerrevisions"], ALL),
            events(),
        ],
    )]
}

/// The PersistentVolume binder (binds claims to volumes, releases and deletes volumes whose
/// claims are gone) and the `rkube.io/local-path` provisioner (makes volumes for claims).
fn volume_roles() -> Roles {
    const BIND: &[&str] = &["get", "list", "watch", "update", "patch", "delete"];
    vec![
        (
            "persistent-volume-binder",
            vec![
                rule(
                    &[""],
                    &["persistentvolumes", "persistentvolumeclaims"],
                    BIND,
                ),
                rule(
                    &[""],
                    &["persistentvolumes/status", "persistentvolumeclaims/status"],
                    UPDATE,
                ),
                rule(&["storage.k8s.io"], &["storageclasses"], READ),
                rule(&[""], &["pods", "nodes"], READ),
                events(),
            ],
        ),
        (
            "local-path-provisioner",
            vec![
                rule(
                    &[""],
                    &["persistentvolumes"],
                    &["get", "list", "watch", "create", "delete"],
                ),
                rule(&[""], &["persistentvolumeclaims"], READ),
                rule(&["storage.k8s.io"], &["storageclasses"], READ),
                rule(&[""], &["nodes"], READ),
                events(),
            ],
        ),
    ]
}

/// Namespace deletion and horizontal pod autoscaling.
fn namespace_and_scaling_roles() -> Roles {
    vec![
        (
            "namespace-controller",
            vec![
                rule(
                    &["*"],
                    &["*"],
                    &["get", "list", "watch", "delete", "deletecollection"],
                ),
                rule(
                    &[""],
                    &["namespaces", "namespaces/finalize", "namespaces/status"],
                    UPDATE,
                ),
            ],
        ),
        (
            "horizontal-pod-autoscaler",
            [
                owner("autoscaling", "horizontalpodautoscalers"),
                vec![
                    rule(
                        &["apps"],
                        &[
                            "deployments",
                            "replicasets",
                            "deployments/scale",
                            "replicasets/scale",
                        ],
                        &["get", "list", "watch", "update", "patch"],
                    ),
                    rule(
                        &[""],
                        &["replicationcontrollers", "replicationcontrollers/scale"],
                        &["get", "list", "watch", "update", "patch"],
                    ),
                    rule(&["metrics.k8s.io"], &["pods"], READ),
                    rule(&[""], &["pods"], READ),
                ],
            ]
            .concat(),
        ),
    ]
}

/// CertificateSigningRequests, ResourceQuota usage and ClusterRole aggregation.
fn certificate_quota_and_rbac_roles() -> Roles {
    vec![
        (
            "certificate-controller",
            vec![
                rule(
                    &["certificates.k8s.io"],
                    &["certificatesigningrequests"],
                    READ,
                ),
                rule(
                    &["certificates.k8s.io"],
                    &[
                        "certificatesigningrequests/approval",
                        "certificatesigningrequests/status",
                    ],
                    UPDATE,
                ),
                events(),
            ],
        ),
        (
            "resourcequota-controller",
            vec![
                rule(&["*"], &["*"], READ),
                rule(&[""], &["resourcequotas/status"], UPDATE),
                events(),
            ],
        ),
        (
            "clusterrole-aggregation-controller",
            vec![rule(
                &["rbac.authorization.k8s.io"],
                &["clusterroles"],
                &["escalate", "get", "list", "watch", "update", "patch"],
            )],
        ),
    ]
}

/// The roles and their bindings to the controllers' ServiceAccounts, as (kind, object).
pub fn objects() -> Vec<(&'static str, Value)> {
    let mut out = Vec::new();
    for (name, rules) in controller_roles() {
        let role = format!("system:controller:{name}");
        out.push((
            "ClusterRole",
            json!({"metadata": meta(&role), "rules": rules}),
        ));
        out.push(("ClusterRoleBinding", json!({"metadata": meta(&role),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": NAMESPACE}]})));
    }
    out
}
