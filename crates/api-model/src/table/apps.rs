//! The rows of the apps/v1 kinds: Deployment (`READY 2/3`, up to date, available),
//! ReplicaSet, DaemonSet, StatefulSet and ControllerRevision.

use serde_json::Value;

use super::format::{
    age, containers, controller_ref, format_selector, int, labels, name, selector, text,
};
use super::ColumnType::{Integer as I, String as S};
use super::{col, wide, Doc, Printer, AGE, CONTAINERS, IMAGES, NAME};

const RS_SPEC: &str = "io.k8s.api.apps.v1.ReplicaSetSpec";
const RS_STATUS: &str = "io.k8s.api.apps.v1.ReplicaSetStatus";
const DEPLOY_SPEC: &str = "io.k8s.api.apps.v1.DeploymentSpec";
const DEPLOY_STATUS: &str = "io.k8s.api.apps.v1.DeploymentStatus";
const DS_STATUS: &str = "io.k8s.api.apps.v1.DaemonSetStatus";

/// `spec.replicas`, which defaults to 1.
fn desired(obj: &Value) -> i64 {
    obj["spec"]["replicas"].as_i64().unwrap_or(1)
}

pub(super) static REPLICA_SET: Printer = Printer {
    columns: &[
        NAME,
        col("Desired", I, Doc::Field(RS_SPEC, "replicas")),
        col("Current", I, Doc::Field(RS_STATUS, "replicas")),
        col("Ready", I, Doc::Field(RS_STATUS, "readyReplicas")),
        AGE,
        CONTAINERS,
        IMAGES,
        wide("Selector", S, Doc::Field(RS_SPEC, "selector")),
    ],
    cells: |rs, now| {
        let (names, images) = containers(&rs["spec"]["template"]["spec"]);
        vec![
            name(rs),
            desired(rs).into(),
            int(&rs["status"]["replicas"]).into(),
            int(&rs["status"]["readyReplicas"]).into(),
            age(rs, now),
            names,
            images,
            format_selector(&rs["spec"]["selector"]).into(),
        ]
    },
    conditions: None,
};

pub(super) static DEPLOYMENT: Printer = Printer {
    columns: &[
        NAME,
        col("Ready", S, Doc::Text("Number of the pod with ready state")),
        col(
            "Up-to-date",
            S,
            Doc::Field(DEPLOY_STATUS, "updatedReplicas"),
        ),
        col(
            "Available",
            S,
            Doc::Field(DEPLOY_STATUS, "availableReplicas"),
        ),
        AGE,
        CONTAINERS,
        IMAGES,
        wide("Selector", S, Doc::Field(DEPLOY_SPEC, "selector")),
    ],
    cells: |d, now| {
        let status = &d["status"];
        let (names, images) = containers(&d["spec"]["template"]["spec"]);
        let sel = selector(&d["spec"]["selector"]).unwrap_or_else(|| "<invalid>".to_string());
        vec![
            name(d),
            format!("{}/{}", int(&status["readyReplicas"]), desired(d)).into(),
            int(&status["updatedReplicas"]).into(),
            int(&status["availableReplicas"]).into(),
            age(d, now),
            names,
            images,
            sel.into(),
        ]
    },
    conditions: None,
};

pub(super) static DAEMON_SET: Printer = Printer {
    columns: &[
        NAME,
        col(
            "Desired",
            I,
            Doc::Field(DS_STATUS, "desiredNumberScheduled"),
        ),
        col(
            "Current",
            I,
            Doc::Field(DS_STATUS, "currentNumberScheduled"),
        ),
        col("Ready", I, Doc::Field(DS_STATUS, "numberReady")),
        col(
            "Up-to-date",
            I,
            Doc::Field(DS_STATUS, "updatedNumberScheduled"),
        ),
        col("Available", I, Doc::Field(DS_STATUS, "numberAvailable")),
        col(
            "Node Selector",
            S,
            Doc::Field("io.k8s.api.core.v1.PodSpec", "nodeSelector"),
        ),
        AGE,
        CONTAINERS,
        IMAGES,
        wide(
            "Selector",
            S,
            Doc::Field("io.k8s.api.apps.v1.DaemonSetSpec", "selector"),
        ),
    ],
    cells: |ds, now| {
        let status = &ds["status"];
        let pod_spec = &ds["spec"]["template"]["spec"];
        let (names, images) = containers(pod_spec);
        vec![
            name(ds),
            int(&status["desiredNumberScheduled"]).into(),
            int(&status["currentNumberScheduled"]).into(),
            int(&status["numberReady"]).into(),
            int(&status["updatedNumberScheduled"]).into(),
            int(&status["numberAvailable"]).into(),
            labels(&pod_spec["nodeSelector"]).into(),
            age(ds, now),
            names,
            images,
            format_selector(&ds["spec"]["selector"]).into(),
        ]
    },
    conditions: None,
};

pub(super) static STATEFUL_SET: Printer = Printer {
    columns: &[
        NAME,
        col("Ready", S, Doc::Text("Number of the pod with ready state")),
        AGE,
        CONTAINERS,
        IMAGES,
    ],
    cells: |ss, now| {
        let (names, images) = containers(&ss["spec"]["template"]["spec"]);
        let ready = int(&ss["status"]["readyReplicas"]);
        vec![
            name(ss),
            format!("{ready}/{}", desired(ss)).into(),
            age(ss, now),
            names,
            images,
        ]
    },
    conditions: None,
};

pub(super) static CONTROLLER_REVISION: Printer = Printer {
    columns: &[
        NAME,
        col("Controller", S, Doc::Text("Controller of the object")),
        col(
            "Revision",
            S,
            Doc::Field("io.k8s.api.apps.v1.ControllerRevision", "revision"),
        ),
        AGE,
    ],
    cells: |cr, now| {
        vec![
            name(cr),
            controller_name(cr).into(),
            int(&cr["revision"]).into(),
            age(cr, now),
        ]
    },
    conditions: None,
};

/// The controlling owner as `kind.group/name` in lower case (`daemonset.apps/fluentd`).
fn controller_name(obj: &Value) -> String {
    let Some(owner) = controller_ref(obj) else {
        return "<none>".to_string();
    };
    let group = text(&owner["apiVersion"])
        .rsplit_once('/')
        .map_or("", |(g, _)| g);
    let kind = text(&owner["kind"]);
    let owner_name = text(&owner["name"]);
    match (kind, group) {
        ("", "") => owner_name.to_string(),
        (k, "") => format!("{}/{owner_name}", k.to_lowercase()),
        (k, g) => format!("{}.{}/{owner_name}", k.to_lowercase(), g.to_lowercase()),
    }
}
