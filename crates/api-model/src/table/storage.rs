//! The rows of PersistentVolume and PersistentVolumeClaim: capacity, access modes
//! (`RWO`), phase (`Terminating` once deleted), claim, storage class.

use serde_json::Value;

use super::format::{access_modes, age, name, storage, text};
use super::ColumnType::String as S;
use super::{col, wide, Doc, Printer, AGE, NAME};

const PV_SPEC: &str = "io.k8s.api.core.v1.PersistentVolumeSpec";
const PV_STATUS: &str = "io.k8s.api.core.v1.PersistentVolumeStatus";
const PVC_SPEC: &str = "io.k8s.api.core.v1.PersistentVolumeClaimSpec";
const PVC_STATUS: &str = "io.k8s.api.core.v1.PersistentVolumeClaimStatus";

/// The annotation that named a storage class before `storageClassName`, and still wins.
const BETA_STORAGE_CLASS: &str = "volume.beta.kubernetes.io/storage-class";

pub(super) static PERSISTENT_VOLUME: Printer = Printer {
    columns: &[
        NAME,
        col("Capacity", S, Doc::Field(PV_SPEC, "capacity")),
        col("Access Modes", S, Doc::Field(PV_SPEC, "accessModes")),
        col(
            "Reclaim Policy",
            S,
            Doc::Field(PV_SPEC, "persistentVolumeReclaimPolicy"),
        ),
        col("Status", S, Doc::Field(PV_STATUS, "phase")),
        col("Claim", S, Doc::Field(PV_SPEC, "claimRef")),
        col("StorageClass", S, Doc::Text("StorageClass of the pv")),
        col(
            "VolumeAttributesClass",
            S,
            Doc::Text("VolumeAttributesClass of the pv"),
        ),
        col("Reason", S, Doc::Field(PV_STATUS, "reason")),
        AGE,
        wide("VolumeMode", S, Doc::Field(PV_SPEC, "volumeMode")),
    ],
    cells: pv_cells,
    conditions: None,
};

fn pv_cells(pv: &Value, now: i64) -> Vec<Value> {
    let spec = &pv["spec"];
    let claim = &spec["claimRef"];
    let claim = if claim.is_object() {
        format!("{}/{}", text(&claim["namespace"]), text(&claim["name"]))
    } else {
        String::new()
    };
    vec![
        name(pv),
        storage(&spec["capacity"]).into(),
        access_modes(&spec["accessModes"]).into(),
        text(&spec["persistentVolumeReclaimPolicy"]).into(),
        phase(pv).into(),
        claim.into(),
        storage_class(pv).into(),
        or_unset(&spec["volumeAttributesClassName"]),
        text(&pv["status"]["reason"]).into(),
        age(pv, now),
        or_unset(&spec["volumeMode"]),
    ]
}

pub(super) static PERSISTENT_VOLUME_CLAIM: Printer = Printer {
    columns: &[
        NAME,
        col("Status", S, Doc::Field(PVC_STATUS, "phase")),
        col("Volume", S, Doc::Field(PVC_SPEC, "volumeName")),
        col("Capacity", S, Doc::Field(PVC_STATUS, "capacity")),
        col("Access Modes", S, Doc::Field(PVC_STATUS, "accessModes")),
        col("StorageClass", S, Doc::Text("StorageClass of the pvc")),
        col(
            "VolumeAttributesClass",
            S,
            Doc::Text("VolumeAttributesClass of the pvc"),
        ),
        AGE,
        wide("VolumeMode", S, Doc::Field(PVC_SPEC, "volumeMode")),
    ],
    cells: pvc_cells,
    conditions: None,
};

fn pvc_cells(pvc: &Value, now: i64) -> Vec<Value> {
    let spec = &pvc["spec"];
    let status = &pvc["status"];
    let volume = text(&spec["volumeName"]);
    // Capacity and access modes are the bound volume's, so only a bound claim has them.
    let (capacity, modes) = if volume.is_empty() {
        (String::new(), String::new())
    } else {
        (
            storage(&status["capacity"]),
            access_modes(&status["accessModes"]),
        )
    };
    vec![
        name(pvc),
        phase(pvc).into(),
        volume.into(),
        capacity.into(),
        modes.into(),
        storage_class(pvc).into(),
        or_unset(&spec["volumeAttributesClassName"]),
        age(pvc, now),
        or_unset(&spec["volumeMode"]),
    ]
}

/// The phase, or `Terminating` once the object is being deleted.
fn phase(obj: &Value) -> &str {
    if obj["metadata"]["deletionTimestamp"].is_null() {
        text(&obj["status"]["phase"])
    } else {
        "Terminating"
    }
}

fn storage_class(obj: &Value) -> &str {
    obj["metadata"]["annotations"][BETA_STORAGE_CLASS]
        .as_str()
        .unwrap_or_else(|| text(&obj["spec"]["storageClassName"]))
}

fn or_unset(v: &Value) -> Value {
    v.as_str().unwrap_or("<unset>").into()
}
