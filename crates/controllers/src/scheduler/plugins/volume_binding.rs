//! VolumeBinding (data locality): a pod's PersistentVolumeClaims must exist and be bound,
//! and a bound PersistentVolume with node affinity (a local volume) pins the pod to the
//! nodes that volume is reachable from.

use client::reflector::ObjectKey;
use k8s_openapi::api::core::v1::NodeSelector;

use crate::scheduler::cache::Cache;
use crate::scheduler::framework::{CycleState, FilterPlugin, Plugin, PreFilterPlugin, Status};
use crate::scheduler::node_info::NodeInfo;
use crate::scheduler::pod_info::PodInfo;
use client::selectors::term_matches;

pub(crate) const NAME: &str = "VolumeBinding";
pub(crate) const CONFLICT_REASON: &str = "node(s) had volume node affinity conflict";
pub(crate) const UNBOUND_REASON: &str = "pod has unbound immediate PersistentVolumeClaims";

pub(crate) struct VolumeBinding;

/// The node affinity of every bound volume the pod uses.
struct Volumes(Vec<NodeSelector>);

impl Plugin for VolumeBinding {
    fn name(&self) -> &'static str {
        NAME
    }
}

impl PreFilterPlugin for VolumeBinding {
    fn pre_filter(&self, state: &mut CycleState, pod: &PodInfo, cache: &Cache) -> Status {
        let claims: Vec<&str> = pod
            .spec()
            .volumes
            .iter()
            .flatten()
            .filter_map(|v| v.persistent_volume_claim.as_ref())
            .map(|c| c.claim_name.as_str())
            .collect();
        if claims.is_empty() {
            return Status::skip();
        }
        let mut affinities = Vec::new();
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
            let volume = pvc
                .spec
                .as_ref()
                .and_then(|s| s.volume_name.as_deref())
                .unwrap_or("");
            if volume.is_empty() {
                return Status::unresolvable(UNBOUND_REASON);
            }
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
        state.write(NAME, Volumes(affinities));
        Status::success()
    }
}

impl FilterPlugin for VolumeBinding {
    fn filter(&self, state: &CycleState, _: &PodInfo, node: &NodeInfo) -> Status {
        let Some(Volumes(affinities)) = state.read::<Volumes>(NAME) else {
            return Status::success();
        };
        let reachable = affinities.iter().all(|sel| {
            sel.node_selector_terms
                .iter()
                .any(|t| term_matches(t, &node.name, &node.labels))
        });
        if reachable {
            Status::success()
        } else {
            Status::unresolvable(CONFLICT_REASON)
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
}
