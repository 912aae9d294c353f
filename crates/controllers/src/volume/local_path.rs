//! The built-in `rkube.io/local-path` provisioner: for a Pending claim of a StorageClass
//! with `provisioner: rkube.io/local-path` that no existing volume fits, makes a local
//! volume `pvc-<claim uid>` at `<parameters.path>/pvc-<uid>` on one node (the scheduler's
//! selected node for WaitForFirstConsumer classes, any Ready node otherwise), pinned to it
//! by nodeAffinity and pre-bound to the claim; the binder then binds them. The kubelet of
//! that node makes the directory when a pod mounts it, and removes it once the volume is
//! gone.

use std::collections::BTreeMap;
use std::sync::Arc;

use client::reflector::ObjectKey;
use client::runtime::{backoff, Action};
use client::Api;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::StorageClass;
use serde_json::json;

use super::plan::{self, ClaimPlan, ClaimWorld};
use super::{class_of, Error};
use crate::context::api_error;
use crate::context::Ctx;

pub(crate) const PROVISIONER: &str = "rkube.io/local-path";
/// Where volumes go when the class has no `parameters.path`.
pub(crate) const DEFAULT_BASE: &str = "/var/lib/rkube/local-path";
pub(crate) const PROVISIONED_BY: &str = "pv.kubernetes.io/provisioned-by";

pub(crate) async fn run(ctx: Arc<Ctx>) {
    let for_classes = ctx.clone();
    ctx.controller("local-path-provisioner", &ctx.pvcs)
        .watches(ctx.storage_classes.clone(), move |_| {
            for_classes
                .pvcs
                .list()
                .iter()
                .map(|c| ObjectKey::of(c.as_ref()))
                .collect()
        })
        .run(
            |key, ctx| async move { reconcile(&ctx, key).await },
            backoff,
            ctx.clone(),
        )
        .await
}

async fn reconcile(ctx: &Ctx, key: ObjectKey) -> Result<Action, Error> {
    let Some(claim) = ctx.pvcs.get(&key) else {
        return Ok(Action::AwaitChange);
    };
    let Some(class) = class_of(ctx, &claim) else {
        return Ok(Action::AwaitChange);
    };
    let volumes = ctx.pvs.list();
    let refs: Vec<&PersistentVolume> = volumes.iter().map(|v| v.as_ref()).collect();
    let ready = ctx.ready_node_names();
    let Some(pv) = plan(&claim, &class, &refs, &ready) else {
        return Ok(Action::AwaitChange);
    };
    let name = pv.metadata.name.clone().unwrap_or_default();
    match Api::<PersistentVolume>::all(ctx.client.clone())
        .create(&pv)
        .await
    {
        Ok(_) => Ok(Action::AwaitChange),
        Err(e) if e.is_already_exists() => Ok(Action::AwaitChange),
        Err(e) => Err(api_error::<PersistentVolume>("create", &name)(e).into()),
    }
}

/// The volume to make for `claim`, if it is this provisioner's to make now. `ready`: the
/// Ready nodes, sorted (an Immediate class takes the first).
pub(crate) fn plan(
    claim: &PersistentVolumeClaim,
    class: &StorageClass,
    volumes: &[&PersistentVolume],
    ready: &[String],
) -> Option<PersistentVolume> {
    if class.provisioner != PROVISIONER || claim.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let spec = claim.spec.as_ref()?;
    if spec.volume_name.as_deref().is_some_and(|n| !n.is_empty()) {
        return None;
    }
    // Only when nothing that exists fits: binding wins over provisioning.
    let world = ClaimWorld {
        volumes,
        class: Some(class),
        selected_node: None,
    };
    if plan::waits_for_consumer(claim, Some(class))
        || plan::plan_claim(claim, &world) != ClaimPlan::Wait
    {
        return None;
    }
    let selected = claim
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(plan::SELECTED_NODE));
    let node = selected.or_else(|| ready.first())?;
    let uid = claim.metadata.uid.as_deref()?;
    let base = class
        .parameters
        .as_ref()
        .and_then(|p| p.get("path"))
        .map_or(DEFAULT_BASE, |s| s.as_str());
    Some(volume(claim, class, uid, node, base))
}

fn volume(
    claim: &PersistentVolumeClaim,
    class: &StorageClass,
    uid: &str,
    node: &str,
    base: &str,
) -> PersistentVolume {
    let spec = claim.spec.clone().unwrap_or_default();
    let request = plan::requested(claim).cloned();
    let capacity: BTreeMap<_, _> = request.into_iter().map(|q| ("storage", q)).collect();
    let name = format!("pvc-{uid}");
    let v = json!({
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": name, "annotations": {PROVISIONED_BY: PROVISIONER}},
        "spec": {
            "capacity": capacity,
            "accessModes": spec.access_modes.unwrap_or_else(|| vec!["ReadWriteOnce".into()]),
            "volumeMode": spec.volume_mode.unwrap_or_else(|| "Filesystem".into()),
            "persistentVolumeReclaimPolicy": class.reclaim_policy.clone().unwrap_or_else(|| "Delete".into()),
            "storageClassName": class.metadata.name,
            "local": {"path": format!("{}/{name}", base.trim_end_matches('/'))},
            "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}
            ]}]}},
            "claimRef": {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "namespace": claim.metadata.namespace,
                "name": claim.metadata.name,
                "uid": uid,
            },
        },
    });
    serde_json::from_value(v).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn class(mode: &str) -> StorageClass {
        serde_json::from_value(
            json!({"metadata": {"name": "local"}, "provisioner": PROVISIONER,
            "volumeBindingMode": mode, "parameters": {"path": "/tmp/lp"}}),
        )
        .unwrap()
    }

    fn claim(selected: Option<&str>) -> PersistentVolumeClaim {
        let mut ann = serde_json::Map::new();
        if let Some(n) = selected {
            ann.insert(plan::SELECTED_NODE.into(), json!(n));
        }
        serde_json::from_value(
            json!({"metadata": {"name": "data", "namespace": "ns", "uid": "u1",
            "annotations": ann},
            "spec": {"storageClassName": "local", "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Gi"}}}}),
        )
        .unwrap()
    }

    #[test]
    fn wait_for_first_consumer_provisions_on_the_selected_node_only() {
        let ready = vec!["a".to_string(), "b".to_string()];
        assert!(plan(&claim(None), &class("WaitForFirstConsumer"), &[], &ready).is_none());
        let pv = plan(
            &claim(Some("b")),
            &class("WaitForFirstConsumer"),
            &[],
            &ready,
        )
        .unwrap();
        let v = serde_json::to_value(&pv).unwrap();
        assert_eq!(v["metadata"]["name"], "pvc-u1");
        assert_eq!(v["spec"]["local"]["path"], "/tmp/lp/pvc-u1");
        assert_eq!(v["spec"]["capacity"]["storage"], "1Gi");
        assert_eq!(v["spec"]["persistentVolumeReclaimPolicy"], "Delete");
        assert_eq!(v["spec"]["claimRef"]["uid"], "u1");
        let values = &v["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"][0]
            ["matchExpressions"][0]["values"];
        assert_eq!(values, &json!(["b"]));
        assert_eq!(v["metadata"]["annotations"][PROVISIONED_BY], PROVISIONER);
    }

    #[test]
    fn immediate_takes_the_first_ready_node_and_none_without_nodes() {
        let pv = plan(&claim(None), &class("Immediate"), &[], &["a".into()]).unwrap();
        let v = serde_json::to_value(&pv).unwrap();
        assert_eq!(
            v["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"][0]["matchExpressions"][0]
                ["values"],
            json!(["a"])
        );
        assert!(plan(&claim(None), &class("Immediate"), &[], &[]).is_none());
    }

    #[test]
    fn an_existing_fitting_volume_or_other_provisioner_means_no_provisioning() {
        let pv: PersistentVolume = serde_json::from_value(json!({"metadata": {"name": "static"},
            "spec": {"storageClassName": "local", "accessModes": ["ReadWriteOnce"],
                "capacity": {"storage": "2Gi"}}}))
        .unwrap();
        assert!(plan(&claim(None), &class("Immediate"), &[&pv], &["a".into()]).is_none());
        let mut other = class("Immediate");
        other.provisioner = "example.com/nfs".into();
        assert!(plan(&claim(None), &other, &[], &["a".into()]).is_none());
    }
}
