//! The stable identity a StatefulSet gives each ordinal: the pod `<set>-<ordinal>` with
//! its hostname, subdomain and identity labels, and one PersistentVolumeClaim
//! `<template>-<set>-<ordinal>` per volumeClaimTemplate, mounted in the pod in place of a
//! template volume of the same name.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimVolumeSource, Pod, PodTemplateSpec, Volume,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use crate::pods::{self, controller_ref};
use crate::replicaset::{owner_ref, pod_from_template};
use client::selectors::selector_matches;

/// The pod label naming the pod, which a headless Service's per-pod selector uses.
pub(crate) const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
/// The pod label holding the pod's ordinal.
pub(crate) const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";
/// The pod label naming the ControllerRevision the pod was made from.
pub(crate) const REVISION_LABEL: &str = "controller-revision-hash";

pub(crate) fn set_name(set: &StatefulSet) -> &str {
    set.metadata.name.as_deref().unwrap_or_default()
}

/// The first ordinal (`spec.ordinals.start`, 0 by default).
pub(crate) fn start_ordinal(set: &StatefulSet) -> i32 {
    set.spec
        .ordinals
        .as_ref()
        .and_then(|o| o.start)
        .unwrap_or(0)
        .max(0)
}

/// The ordinals the set wants: `[start, start + replicas)`.
pub(crate) fn ordinal_range(set: &StatefulSet) -> std::ops::Range<i32> {
    let start = start_ordinal(set);
    start..start + set.spec.replicas.unwrap_or(1).max(0)
}

pub(crate) fn pod_name(set: &str, ordinal: i32) -> String {
    format!("{set}-{ordinal}")
}

pub(crate) fn claim_name(template: &str, set: &str, ordinal: i32) -> String {
    format!("{template}-{set}-{ordinal}")
}

/// The ordinal of `name` when it is `<prefix>-<ordinal>`: decimal digits without a
/// leading zero, as the controller writes them.
pub(crate) fn ordinal_of(name: &str, prefix: &str) -> Option<i32> {
    let digits = name.strip_prefix(prefix)?.strip_prefix('-')?;
    let canonical = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'));
    canonical.then(|| digits.parse().ok()).flatten()
}

/// The ordinal of one of the set's pods, by its name.
pub(crate) fn pod_ordinal(set: &StatefulSet, p: &Pod) -> Option<i32> {
    ordinal_of(p.metadata.name.as_deref()?, set_name(set))
}

/// The ordinal of a claim made from one of the set's volumeClaimTemplates.
pub(crate) fn claim_ordinal(set: &StatefulSet, claim: &PersistentVolumeClaim) -> Option<i32> {
    let name = claim.metadata.name.as_deref()?;
    claim_templates(set).iter().find_map(|t| {
        let template = t.metadata.name.as_deref()?;
        ordinal_of(name, &format!("{template}-{}", set_name(set)))
    })
}

pub(crate) fn claim_templates(set: &StatefulSet) -> &[PersistentVolumeClaim] {
    set.spec
        .volume_claim_templates
        .as_deref()
        .unwrap_or_default()
}

/// The controller reference the set puts on its pods and revisions.
pub(crate) fn set_owner(set: &StatefulSet) -> OwnerReference {
    owner_ref("apps/v1", "StatefulSet", &set.metadata)
}

/// The plain (not controlling) reference a claim gets when it is to go with the set.
pub(crate) fn claim_owner(set: &StatefulSet) -> OwnerReference {
    OwnerReference {
        controller: None,
        block_owner_deletion: None,
        ..set_owner(set)
    }
}

/// The pod of `ordinal`, made from `template` (the set's, or that of an earlier
/// revision) and labelled with `revision`.
pub(crate) fn new_pod(
    set: &StatefulSet,
    template: &PodTemplateSpec,
    revision: &str,
    ordinal: i32,
) -> Pod {
    let ns = set.metadata.namespace.as_deref().unwrap_or_default();
    let name = pod_name(set_name(set), ordinal);
    let mut pod = pod_from_template(template, &set_owner(set), ns);
    pod.metadata.generate_name = None;
    pod.metadata.name = Some(name.clone());
    let labels = pod.metadata.labels.get_or_insert_with(BTreeMap::new);
    labels.extend(identity_labels(&name, ordinal));
    labels.insert(REVISION_LABEL.into(), revision.into());
    let spec = pod.spec.get_or_insert_with(Default::default);
    spec.hostname = Some(name);
    spec.subdomain = set.spec.service_name.clone().filter(|s| !s.is_empty());
    let claims: Vec<Volume> = claim_templates(set)
        .iter()
        .filter_map(|t| t.metadata.name.as_deref())
        .map(|t| Volume {
            name: t.to_string(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: claim_name(t, set_name(set), ordinal),
                read_only: None,
            }),
            ..Default::default()
        })
        .collect();
    if !claims.is_empty() {
        let others = spec
            .volumes
            .take()
            .unwrap_or_default()
            .into_iter()
            .filter(|v| !claims.iter().any(|c| c.name == v.name));
        spec.volumes = Some(claims.iter().cloned().chain(others).collect());
    }
    pod
}

/// The labels that tie a pod to its ordinal.
pub(crate) fn identity_labels(name: &str, ordinal: i32) -> [(String, String); 2] {
    [
        (POD_NAME_LABEL.into(), name.into()),
        (POD_INDEX_LABEL.into(), ordinal.to_string()),
    ]
}

/// Whether `p` carries the identity labels of its name and ordinal.
pub(crate) fn identity_matches(p: &Pod, ordinal: i32) -> bool {
    let name = p.metadata.name.as_deref().unwrap_or_default();
    let labels = p.metadata.labels.clone().unwrap_or_default();
    identity_labels(name, ordinal)
        .iter()
        .all(|(k, v)| labels.get(k) == Some(v))
}

/// The claims of `ordinal`, one per volumeClaimTemplate: the template with the set's
/// selector labels added, in the set's namespace, owned as `owners` says.
pub(crate) fn new_claims(
    set: &StatefulSet,
    ordinal: i32,
    owners: Option<Vec<OwnerReference>>,
) -> Vec<PersistentVolumeClaim> {
    let selector = set.spec.selector.match_labels.clone().unwrap_or_default();
    claim_templates(set)
        .iter()
        .filter_map(|t| {
            let template = t.metadata.name.as_deref()?;
            let mut labels = t.metadata.labels.clone().unwrap_or_default();
            labels.extend(selector.clone());
            Some(PersistentVolumeClaim {
                metadata: ObjectMeta {
                    name: Some(claim_name(template, set_name(set), ordinal)),
                    namespace: set.metadata.namespace.clone(),
                    labels: Some(labels),
                    annotations: t.metadata.annotations.clone(),
                    owner_references: owners.clone(),
                    ..Default::default()
                },
                spec: t.spec.clone(),
                status: None,
            })
        })
        .collect()
}

/// The pods of a namespace as one set sees them.
#[derive(Debug, Default)]
pub(crate) struct Claims {
    /// Pods it controls and still selects.
    pub owned: Vec<Arc<Pod>>,
    /// Orphans it selects whose name is one of its ordinals, to adopt.
    pub adopt: Vec<Arc<Pod>>,
    /// Pods it controls but no longer selects, to release.
    pub release: Vec<Arc<Pod>>,
}

/// Sorts the pods of the set's namespace into what it owns, adopts and releases. A set
/// being deleted adopts nothing, and no pod being deleted is adopted.
pub(crate) fn claim_pods(set: &StatefulSet, pods: &[Arc<Pod>]) -> Claims {
    let uid = set.metadata.uid.as_deref().unwrap_or_default();
    let deleting = set.metadata.deletion_timestamp.is_some();
    let mut c = Claims::default();
    for p in pods {
        let labels = p.metadata.labels.clone().unwrap_or_default();
        let selected = selector_matches(&set.spec.selector, &labels);
        match controller_ref(&p.metadata) {
            Some(r) if r.uid == uid && selected => c.owned.push(p.clone()),
            Some(r) if r.uid == uid => c.release.push(p.clone()),
            Some(_) => {}
            None if selected
                && !deleting
                && !pods::is_deleting(p)
                && pod_ordinal(set, p).is_some() =>
            {
                c.adopt.push(p.clone())
            }
            None => {}
        }
    }
    c
}
