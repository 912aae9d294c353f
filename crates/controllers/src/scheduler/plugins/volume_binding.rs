//! VolumeBinding (data locality): a pod's PersistentVolumeClaims must exist and be bound,
//! and a bound PersistentVolume with node affinity (a local volume) pins the pod to the
//! nodes that volume is reachable from. An unbound claim of a WaitForFirstConsumer class
//! waits for the pod instead: the pod goes to a node some Available volume that fits the
//! claim is reachable from (or any node when the class has a provisioner), and at bind
//! time the claim is annotated with that node ([`delayed_claims`]) for the binder and the
//! provisioner to finish.

use std::sync::Arc;

use client::reflector::ObjectKey;
use client::selectors::term_matches;
use k8s_openapi::api::core::v1::{NodeSelector, PersistentVolume, PersistentVolumeClaim};

use crate::scheduler::cache::Cache;
use crate::scheduler::framework::{CycleState, FilterPlugin, Plugin, PreFilterPlugin, Status};
use crate::scheduler::node_info::NodeInfo;
use crate::scheduler::pod_info::PodInfo;
use crate::volume::plan::{self as volumes, WAIT_FOR_FIRST_CONSUMER};

pub(crate) const NAME: &str = "VolumeBinding";
pub(crate) const CONFLICT_REASON: &str = "node(s) had volume node affinity conflict";
pub(crate) const UNBOUND_REASON: &str = "pod has unbound immediate PersistentVolumeClaims";
pub(crate) const NO_VOLUME_REASON: &str =
    "node(s) didn't find available persistent volumes to bind";
/// A class whose volumes are made by hand only.
const NO_PROVISIONER: &str = "kubernetes.io/no-provisioner";

pub(crate) struct VolumeBinding;

/// An unbound claim that waits for its first pod: the volumes that could take it, and
/// whether its class can provision one on any node instead.
struct Delayed {
    candidates: Vec<Arc<PersistentVolume>>,
    provisions: bool,
}

/// The node affinity of every bound volume the pod uses, and its delayed claims.
struct Volumes(Vec<NodeSelector>, Vec<Delayed>);

impl Plugin for VolumeBinding {
    fn name(&self) -> &'static str {
        NAME
    }
}

fn claim_names(pod: &PodInfo) -> Vec<&str> {
    pod.spec()
        .volumes
        .iter()
        .flatten()
        .filter_map(|v| v.persistent_volume_claim.as_ref())
        .map(|c| c.claim_name.as_str())
        .collect()
}

fn is_unbound(pvc: &PersistentVolumeClaim) -> bool {
    pvc.spec
        .as_ref()
        .and_then(|s| s.volume_name.as_deref())
        .unwrap_or("")
        .is_empty()
}

/// The provisioner of the claim's class when that class is WaitForFirstConsumer.
fn delayed_provisioner<'a>(pvc: &PersistentVolumeClaim, cache: &'a Cache) -> Option<&'a str> {
    let class = cache.storage_classes.get(volumes::claim_class(pvc))?;
    (class.volume_binding_mode.as_deref() == Some(WAIT_FOR_FIRST_CONSUMER))
        .then_some(class.provisioner.as_str())
}

/// The pod's unbound WaitForFirstConsumer claims without a selected node yet: the ones the
/// binder annotates with `volume.kubernetes.io/selected-node` before it binds the pod.
pub(crate) fn delayed_claims(pod: &PodInfo, cache: &Cache) -> Vec<ObjectKey> {
    claim_names(pod)
        .into_iter()
        .map(|name| ObjectKey {
            namespace: pod.namespace.clone(),
            name: name.to_string(),
        })
        .filter(|key| {
            cache
                .pvcs
                .get(key)
                .is_some_and(|pvc| is_unbound(pvc) && delayed_provisioner(pvc, cache).is_some())
        })
        .collect()
}

impl PreFilterPlugin for VolumeBinding {
    fn pre_filter(&self, state: &mut CycleState, pod: &PodInfo, cache: &Cache) -> Status {
        let claims = claim_names(pod);
        if claims.is_empty() {
            return Status::skip();
        }
        let (mut affinities, mut delayed) = (Vec::new(), Vec::new());
        for claim in claims {
            let key = ObjectKey {
                namespace: pod.namespace.clone(),
                name: claim.to_string(),
            };
            let Some(pvc) = cache.pvcs.get(&key) else {
                return Status::unresolvable(format!(
                    "persistentvolumeclaim \"{claim}\" not found"
                ));
            };
            if is_unbound(pvc) {
                let Some(provisioner) = delayed_provisioner(pvc, cache) else {
                    return Status::unresolvable(UNBOUND_REASON);
                };
                let candidates = cache
                    .pvs
                    .values()
                    .filter(|v| v.spec.as_ref().is_some_and(|s| s.claim_ref.is_none()))
                    .filter(|v| volumes::fits(v, pvc))
                    .cloned()
                    .collect();
                delayed.push(Delayed {
                    candidates,
                    provisions: !provisioner.is_empty() && provisioner != NO_PROVISIONER,
                });
                continue;
            }
            let volume = pvc
                .spec
                .as_ref()
                .and_then(|s| s.volume_name.as_deref())
                .unwrap_or("");
            let Some(pv) = cache.pvs.get(volume) else {
                return Status::unresolvable(format!("persistentvolume \"{volume}\" not found"));
            };
            if let Some(required) = pv
                .spec
                .as_ref()
                .and_then(|s| s.node_affinity.as_ref())
                .and_then(|a| a.required.clone())
            {
                affinities.push(required);
            }
        }
        state.write(NAME, Volumes(affinities, delayed));
        Status::success()
    }
}

impl FilterPlugin for VolumeBinding {
    fn filter(&self, state: &CycleState, _: &PodInfo, node: &NodeInfo) -> Status {
        let Some(Volumes(affinities, delayed)) = state.read::<Volumes>(NAME) else {
            return Status::success();
        };
        let reachable = affinities.iter().all(|sel| {
            sel.node_selector_terms
                .iter()
                .any(|t| term_matches(t, &node.name, &node.labels))
        });
        if !reachable {
            return Status::unresolvable(CONFLICT_REASON);
        }
        let bindable = delayed.iter().all(|d| {
            d.provisions
                || d.candidates
                    .iter()
                    .any(|v| volumes::reachable_from(v, &node.name, &node.labels))
        });
        if bindable {
            Status::success()
        } else {
            Status::unschedulable(NO_VOLUME_REASON)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use crate::scheduler::framework::{Code, Profile};
    use crate::scheduler::testing::{cache, filter_all, node, pod};

    #[test]
    fn local_volumes_pin_pods_to_their_node() {
        let mut c = cache(
            vec![
                node("n1", "1", "1Gi", json!({})),
                node("n2", "1", "1Gi", json!({})),
            ],
            vec![],
        );
        c.pvs.insert("local-pv".into(), Arc::new(serde_json::from_value(json!({
            "metadata": {"name": "local-pv"},
            "spec": {"capacity": {"storage": "1Gi"}, "local": {"path": "/data"},
                "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                    {"key": "kubernetes.io/hostname", "operator": "In", "values": ["n2"]}]}]}}}
        })).unwrap()));
        for (name, volume) in [("bound", "local-pv"), ("unbound", "")] {
            c.pvcs.insert(
                ObjectKey {
                    namespace: "default".into(),
                    name: name.into(),
                },
                Arc::new(
                    serde_json::from_value(json!({
                    "metadata": {"name": name, "namespace": "default"},
                    "spec": {"volumeName": volume}}))
                    .unwrap(),
                ),
            );
        }
        let with_claim = |claim: &str| {
            pod(
                "p",
                json!({}),
                json!({"containers": [],
            "volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": claim}}]}),
            )
        };
        let profile = Profile {
            pre_filter: vec![Box::new(VolumeBinding)],
            filter: vec![Box::new(VolumeBinding)],
            ..Default::default()
        };
        let got = filter_all(&profile, &c, &with_claim("bound"));
        assert_eq!(got[0].1.reasons, vec![CONFLICT_REASON]);
        assert!(got[1].1.is_success());
        for (claim, reason) in [
            ("unbound", UNBOUND_REASON.to_string()),
            (
                "missing",
                "persistentvolumeclaim \"missing\" not found".to_string(),
            ),
        ] {
            let got = filter_all(&profile, &c, &with_claim(claim));
            assert!(
                got.iter()
                    .all(|(_, s)| s.code == Code::UnschedulableAndUnresolvable
                        && s.reasons == vec![reason.clone()]),
                "{claim}: {got:?}"
            );
        }
    }

    #[test]
    fn wait_for_first_consumer_claims_go_where_a_volume_can_be() {
        let mut c = cache(
            vec![
                node("n1", "1", "1Gi", json!({})),
                node("n2", "1", "1Gi", json!({})),
            ],
            vec![],
        );
        for (class, provisioner) in [
            ("static", NO_PROVISIONER),
            ("dynamic", "rkube.io/local-path"),
        ] {
            c.storage_classes.insert(
                class.into(),
                Arc::new(
                    serde_json::from_value(json!({
                "metadata": {"name": class}, "provisioner": provisioner,
                "volumeBindingMode": WAIT_FOR_FIRST_CONSUMER}))
                    .unwrap(),
                ),
            );
            let key = ObjectKey {
                namespace: "default".into(),
                name: class.into(),
            };
            c.pvcs.insert(
                key,
                Arc::new(
                    serde_json::from_value(json!({
                "metadata": {"name": class, "namespace": "default"},
                "spec": {"storageClassName": class, "accessModes": ["ReadWriteOnce"],
                    "resources": {"requests": {"storage": "1Gi"}}}}))
                    .unwrap(),
                ),
            );
        }
        c.pvs.insert("on-n2".into(), Arc::new(serde_json::from_value(json!({
            "metadata": {"name": "on-n2"},
            "spec": {"storageClassName": "static", "capacity": {"storage": "1Gi"},
                "accessModes": ["ReadWriteOnce"], "local": {"path": "/data"},
                "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                    {"key": "kubernetes.io/hostname", "operator": "In", "values": ["n2"]}]}]}}}
        })).unwrap()));
        let profile = Profile {
            pre_filter: vec![Box::new(VolumeBinding)],
            filter: vec![Box::new(VolumeBinding)],
            ..Default::default()
        };
        let with_claim = |claim: &str| {
            pod(
                "p",
                json!({}),
                json!({"containers": [],
                "volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": claim}}]}),
            )
        };
        let got = filter_all(&profile, &c, &with_claim("static"));
        assert_eq!(got[0].1.reasons, vec![NO_VOLUME_REASON], "{got:?}");
        assert!(got[1].1.is_success(), "{got:?}");
        let got = filter_all(&profile, &c, &with_claim("dynamic"));
        assert!(got.iter().all(|(_, s)| s.is_success()), "{got:?}");
        let delayed = delayed_claims(&with_claim("dynamic"), &c);
        assert_eq!(delayed.len(), 1);
        assert_eq!(delayed[0].name, "dynamic");
    }
}
