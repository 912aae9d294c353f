//! The rules of the `system:aggregate-to-{view,edit,admin}` roles: namespaced workload
//! resources to read, then to write, then their Roles and RoleBindings.

use serde_json::Value;

use super::{rule, READ, WRITE};

/// Every verb on a resource, for the roles that may change it.
const READ_WRITE: &[&str] = &[
    "get",
    "list",
    "watch",
    "create",
    "update",
    "patch",
    "delete",
    "deletecollection",
];

/// Namespaced workload resources, as the view/edit/admin roles list them.
pub(super) fn workloads() -> Vec<Value> {
    vec![
        rule(
            &[""],
            &[
                "pods",
                "pods/log",
                "pods/status",
                "services",
                "services/status",
                "endpoints",
                "configmaps",
                "persistentvolumeclaims",
                "persistentvolumeclaims/status",
                "replicationcontrollers",
                "replicationcontrollers/scale",
                "replicationcontrollers/status",
                "serviceaccounts",
                "events",
                "limitranges",
                "resourcequotas",
                "resourcequotas/status",
                "namespaces",
                "namespaces/status",
            ],
            READ,
        ),
        rule(
            &["apps"],
            &[
                "deployments",
                "deployments/scale",
                "deployments/status",
                "replicasets",
                "replicasets/scale",
                "replicasets/status",
                "statefulsets",
                "statefulsets/scale",
                "statefulsets/status",
                "daemonsets",
                "daemonsets/status",
                "controllerrevisions",
            ],
            READ,
        ),
        rule(
            &["batch"],
            &["jobs", "jobs/status", "cronjobs", "cronjobs/status"],
            READ,
        ),
        rule(
            &["autoscaling"],
            &[
                "horizontalpodautoscalers",
                "horizontalpodautoscalers/status",
            ],
            READ,
        ),
        rule(
            &["policy"],
            &["poddisruptionbudgets", "poddisruptionbudgets/status"],
            READ,
        ),
        rule(&["discovery.k8s.io"], &["endpointslices"], READ),
        rule(&["metrics.k8s.io"], &["pods"], READ),
    ]
}

pub(super) fn edit_rules() -> Vec<Value> {
    let mut r = workloads();
    r.push(rule(&[""], &["secrets"], READ_WRITE));
    r.push(rule(
        &[""],
        &[
            "pods",
            "pods/exec",
            "pods/eviction",
            "services",
            "configmaps",
            "persistentvolumeclaims",
            "replicationcontrollers",
            "replicationcontrollers/scale",
            "serviceaccounts",
            "serviceaccounts/token",
            "events",
        ],
        WRITE,
    ));
    r.push(rule(
        &["apps"],
        &[
            "deployments",
            "deployments/scale",
            "deployments/rollback",
            "replicasets",
            "replicasets/scale",
            "statefulsets",
            "statefulsets/scale",
            "daemonsets",
        ],
        WRITE,
    ));
    r.push(rule(&["batch"], &["jobs", "cronjobs"], WRITE));
    r.push(rule(&["autoscaling"], &["horizontalpodautoscalers"], WRITE));
    r.push(rule(&["policy"], &["poddisruptionbudgets"], WRITE));
    // No writes to Endpoints or EndpointSlices (as Kubernetes since 1.22): whoever may
    // write them can send a Service's traffic anywhere, the `kubernetes` Service's too.
    r
}

pub(super) fn admin_rules() -> Vec<Value> {
    let mut r = edit_rules();
    r.push(rule(
        &["rbac.authorization.k8s.io"],
        &["roles", "rolebindings"],
        READ_WRITE,
    ));
    r.push(rule(
        &["authorization.k8s.io"],
        &["localsubjectaccessreviews"],
        &["create"],
    ));
    r
}
