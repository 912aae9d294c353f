//! What the volume loops decide, without calls.
//!
//! - [`provision`]: whether a claim gets a volume from the provider now, and the
//!   CreateVolume request for it. A StorageClass is the provider's when its `provisioner`
//!   is the provider's Identity name (`local` for `rkube cloud-provider local`).
//! - [`volume_for`]: the PersistentVolume of a created volume: a `csi` source (driver =
//!   the provider, volumeHandle = the volume id), pre-bound to the claim, pinned by
//!   nodeAffinity to where the provider says it is reachable, and, when its reclaim policy
//!   is Delete, carrying [`FINALIZER`] so that the provider's volume goes before it does.
//! - [`reclaim`]: what a deleted volume of the provider's still needs.
//! - [`attachments`]: which VolumeAttachments must exist (a pod bound to a node uses a
//!   claim of the provider's volume there), which to attach, and which to detach.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{
    CSIPersistentVolumeSource, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm,
    ObjectReference, PersistentVolume, PersistentVolumeClaim, PersistentVolumeSpec, Pod,
    VolumeNodeAffinity,
};
use k8s_openapi::api::storage::v1::{
    StorageClass, VolumeAttachment, VolumeAttachmentSource, VolumeAttachmentSpec,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use rkube_proto::cloudprovider as cp;

use crate::volume::plan::{self as binder, ClaimPlan, ClaimWorld};

/// Held on a provisioned volume with reclaim policy Delete until the provider deleted it
/// (external-provisioner's name for it).
pub(crate) const FINALIZER: &str = "external-provisioner.volume.kubernetes.io/finalizer";
/// Names the provisioner of a volume, as Kubernetes' provisioners do.
pub(crate) const PROVISIONED_BY: &str = "pv.kubernetes.io/provisioned-by";
/// The topology key of a node.
pub(crate) const HOSTNAME: &str = "kubernetes.io/hostname";

/// The name of the volume provisioned for a claim (and of its CreateVolume call, so a
/// repeated call after a crash finds the same volume).
pub(crate) fn volume_name(claim: &PersistentVolumeClaim) -> Option<String> {
    claim
        .metadata
        .uid
        .as_deref()
        .map(|uid| format!("pvc-{uid}"))
}

/// A node as a topology: its hostname label, or its name.
pub(crate) fn topology(name: &str, labels: &BTreeMap<String, String>) -> cp::Topology {
    let host = labels.get(HOSTNAME).map_or(name, String::as_str);
    cp::Topology {
        segments: [(HOSTNAME.to_string(), host.to_string())].into(),
    }
}

/// The CreateVolume request for `claim`, if the provider `provider` should make its
/// volume now: the class is the provider's, nothing that exists fits the claim, no volume
/// was made for it yet, and a WaitForFirstConsumer claim has its node. `selected`: that
/// node's topology; `ready`: every Ready node's, for an Immediate class.
pub(crate) fn provision(
    claim: &PersistentVolumeClaim,
    class: &StorageClass,
    provider: &str,
    volumes: &[&PersistentVolume],
    selected: Option<cp::Topology>,
    ready: &[cp::Topology],
) -> Option<cp::CreateVolumeRequest> {
    if class.provisioner != provider || claim.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let spec = claim.spec.as_ref()?;
    if spec.volume_name.as_deref().is_some_and(|n| !n.is_empty()) {
        return None;
    }
    let name = volume_name(claim)?;
    if volumes
        .iter()
        .any(|v| v.metadata.name.as_deref() == Some(&name))
    {
        return None;
    }
    // Binding wins over provisioning.
    let world = ClaimWorld {
        volumes,
        class: Some(class),
        selected_node: None,
    };
    if binder::waits_for_consumer(claim, Some(class))
        || binder::plan_claim(claim, &world) != ClaimPlan::Wait
    {
        return None;
    }
    let limit = spec
        .resources
        .as_ref()
        .and_then(|r| r.limits.as_ref())
        .and_then(|l| l.get("storage"));
    let requirement = match selected {
        Some(t) => cp::TopologyRequirement {
            requisite: vec![t.clone()],
            preferred: vec![t],
        },
        None if ready.is_empty() => return None,
        None => cp::TopologyRequirement {
            requisite: ready.to_vec(),
            preferred: ready.to_vec(),
        },
    };
    Some(cp::CreateVolumeRequest {
        name,
        capacity_range: Some(cp::CapacityRange {
            required_bytes: clamp(binder::requested(claim).map_or(0, binder::bytes)),
            limit_bytes: clamp(limit.map_or(0, binder::bytes)),
        }),
        parameters: class
            .parameters
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect(),
        accessibility_requirements: Some(requirement),
        volume_mode: spec
            .volume_mode
            .clone()
            .unwrap_or_else(|| "Filesystem".into()),
    })
}

fn clamp(b: u128) -> i64 {
    i64::try_from(b).unwrap_or(i64::MAX)
}

/// Bytes as a quantity: in Gi or Mi when whole, else plain.
pub(crate) fn quantity(bytes: i64) -> Quantity {
    const MI: i64 = 1 << 20;
    const GI: i64 = 1 << 30;
    Quantity(match bytes {
        b if b > 0 && b % GI == 0 => format!("{}Gi", b / GI),
        b if b > 0 && b % MI == 0 => format!("{}Mi", b / MI),
        b => b.max(0).to_string(),
    })
}

fn affinity(topologies: &[cp::Topology]) -> Option<VolumeNodeAffinity> {
    let terms: Vec<NodeSelectorTerm> = topologies
        .iter()
        .filter(|t| !t.segments.is_empty())
        .map(|t| NodeSelectorTerm {
            match_expressions: Some(
                t.segments
                    .iter()
                    .map(|(k, v)| NodeSelectorRequirement {
                        key: k.clone(),
                        operator: "In".into(),
                        values: Some(vec![v.clone()]),
                    })
                    .collect(),
            ),
            match_fields: None,
        })
        .collect();
    (!terms.is_empty()).then_some(VolumeNodeAffinity {
        required: Some(NodeSelector {
            node_selector_terms: terms,
        }),
    })
}

/// The PersistentVolume of `volume`, which the provider made for `claim` of `class`.
pub(crate) fn volume_for(
    claim: &PersistentVolumeClaim,
    class: &StorageClass,
    provider: &str,
    volume: &cp::Volume,
) -> PersistentVolume {
    let spec = claim.spec.clone().unwrap_or_default();
    let policy = class
        .reclaim_policy
        .clone()
        .unwrap_or_else(|| "Delete".into());
    let finalizers = (policy == "Delete").then(|| vec![FINALIZER.to_string()]);
    PersistentVolume {
        metadata: ObjectMeta {
            name: volume_name(claim),
            annotations: Some([(PROVISIONED_BY.to_string(), provider.to_string())].into()),
            finalizers,
            ..Default::default()
        },
        spec: Some(PersistentVolumeSpec {
            capacity: Some([("storage".to_string(), quantity(volume.capacity_bytes))].into()),
            access_modes: spec.access_modes,
            storage_class_name: class.metadata.name.clone(),
            persistent_volume_reclaim_policy: Some(policy),
            volume_mode: Some(spec.volume_mode.unwrap_or_else(|| "Filesystem".into())),
            mount_options: class.mount_options.clone(),
            claim_ref: Some(ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("PersistentVolumeClaim".into()),
                namespace: claim.metadata.namespace.clone(),
                name: claim.metadata.name.clone(),
                uid: claim.metadata.uid.clone(),
                ..Default::default()
            }),
            csi: Some(CSIPersistentVolumeSource {
                driver: provider.to_string(),
                volume_handle: volume.volume_id.clone(),
                volume_attributes: Some(volume.volume_context.clone().into_iter().collect()),
                ..Default::default()
            }),
            node_affinity: affinity(&volume.accessible_topology),
            ..Default::default()
        }),
        status: None,
    }
}

/// The volume handle of `pv` when it is the provider's.
pub(crate) fn handle_of<'a>(pv: &'a PersistentVolume, provider: &str) -> Option<&'a str> {
    let csi = pv.spec.as_ref()?.csi.as_ref()?;
    (csi.driver == provider).then_some(csi.volume_handle.as_str())
}

/// What a volume of the provider's being deleted still needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Reclaim {
    Nothing,
    /// Attached somewhere: wait until it is detached.
    WaitForDetach,
    /// Delete the provider's volume, then drop the finalizer.
    DeleteVolume {
        id: String,
    },
}

/// What `pv`, being deleted, needs before it may go; `attached`: the volumes that have a
/// VolumeAttachment.
pub(crate) fn reclaim(pv: &PersistentVolume, provider: &str, attached: &BTreeSet<&str>) -> Reclaim {
    let ours = pv
        .metadata
        .finalizers
        .as_ref()
        .is_some_and(|f| f.iter().any(|f| f == FINALIZER));
    let (Some(_), true, Some(handle)) = (
        pv.metadata.deletion_timestamp.as_ref(),
        ours,
        handle_of(pv, provider),
    ) else {
        return Reclaim::Nothing;
    };
    match attached.contains(pv.metadata.name.as_deref().unwrap_or_default()) {
        true => Reclaim::WaitForDetach,
        false => Reclaim::DeleteVolume { id: handle.into() },
    }
}

/// A volume on a node: the PersistentVolume's name, its handle and the node's name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Placement {
    pub volume: String,
    pub handle: String,
    pub node: String,
}

/// The attach loop's work.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct AttachPlan {
    /// VolumeAttachments to create.
    pub create: Vec<VolumeAttachment>,
    /// Existing, not attached yet: call Attach and write the status.
    pub attach: Vec<(String, Placement)>,
    /// No pod on the node uses it: call Detach, then delete the VolumeAttachment.
    pub detach: Vec<(String, Placement)>,
}

/// The placements pods need: a pod bound to a node, using (by claim name) the claim a
/// volume of the provider's is bound to, needs the volume there. By the claim's name, not
/// the claim: a running pod keeps its volume while its claim is being deleted.
pub(crate) fn wanted(
    pods: &[&Pod],
    volumes: &[&PersistentVolume],
    provider: &str,
) -> BTreeSet<Placement> {
    let mut by_claim: BTreeMap<(&str, &str), Vec<(&str, &str)>> = BTreeMap::new();
    for pv in volumes {
        let (Some(handle), Some(r)) = (
            handle_of(pv, provider),
            pv.spec.as_ref().and_then(|s| s.claim_ref.as_ref()),
        ) else {
            continue;
        };
        let key = (
            r.namespace.as_deref().unwrap_or_default(),
            r.name.as_deref().unwrap_or_default(),
        );
        let name = pv.metadata.name.as_deref().unwrap_or_default();
        by_claim.entry(key).or_default().push((name, handle));
    }
    let mut out = BTreeSet::new();
    for pod in pods {
        let spec = pod.spec.as_ref();
        let Some(node) = spec
            .and_then(|s| s.node_name.as_deref())
            .filter(|n| !n.is_empty())
        else {
            continue;
        };
        let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
        let claims = spec
            .and_then(|s| s.volumes.as_ref())
            .into_iter()
            .flatten()
            .filter_map(|v| v.persistent_volume_claim.as_ref());
        for c in claims {
            for (volume, handle) in by_claim
                .get(&(ns, c.claim_name.as_str()))
                .into_iter()
                .flatten()
            {
                out.insert(Placement {
                    volume: volume.to_string(),
                    handle: handle.to_string(),
                    node: node.to_string(),
                });
            }
        }
    }
    out
}

fn placement_of(
    va: &VolumeAttachment,
    volumes: &[&PersistentVolume],
    provider: &str,
) -> Option<Placement> {
    let volume = va.spec.source.persistent_volume_name.clone()?;
    let handle = volumes
        .iter()
        .find(|v| v.metadata.name.as_deref() == Some(&volume))
        .and_then(|v| handle_of(v, provider))
        .unwrap_or_default()
        .to_string();
    Some(Placement {
        volume,
        handle,
        node: va.spec.node_name.clone(),
    })
}

/// The VolumeAttachment of a placement.
pub(crate) fn attachment(p: &Placement, provider: &str) -> VolumeAttachment {
    VolumeAttachment {
        metadata: ObjectMeta {
            name: Some(client::storage::attachment_name(
                &p.handle, provider, &p.node,
            )),
            ..Default::default()
        },
        spec: VolumeAttachmentSpec {
            attacher: provider.to_string(),
            node_name: p.node.clone(),
            source: VolumeAttachmentSource {
                persistent_volume_name: Some(p.volume.clone()),
                ..Default::default()
            },
        },
        status: None,
    }
}

/// What the attach loop does, given the placements pods need and the provider's
/// VolumeAttachments. A VolumeAttachment whose volume is gone is detached too (its handle
/// is then unknown and Detach is skipped: the volume's deletion waited for it).
pub(crate) fn attachments(
    wanted: &BTreeSet<Placement>,
    existing: &[&VolumeAttachment],
    volumes: &[&PersistentVolume],
    provider: &str,
) -> AttachPlan {
    let mut plan = AttachPlan::default();
    let mut have = BTreeSet::new();
    for va in existing.iter().filter(|va| va.spec.attacher == provider) {
        let Some(p) = placement_of(va, volumes, provider) else {
            continue;
        };
        let name = va.metadata.name.clone().unwrap_or_default();
        let attached = va.status.as_ref().is_some_and(|s| s.attached);
        if wanted.contains(&p) {
            if !attached && va.metadata.deletion_timestamp.is_none() {
                plan.attach.push((name, p.clone()));
            }
        } else {
            plan.detach.push((name, p.clone()));
        }
        have.insert(p);
    }
    plan.create = wanted
        .difference(&have)
        .map(|p| attachment(p, provider))
        .collect();
    plan
}

#[cfg(test)]
#[path = "volume_plan_tests.rs"]
mod tests;
