//! NodeUnschedulable: a cordoned node (`spec.unschedulable`) takes only pods that tolerate
//! the `node.kubernetes.io/unschedulable:NoSchedule` taint.

use k8s_openapi::api::core::v1::Taint;

use crate::scheduler::framework::{CycleState, FilterPlugin, Plugin, Status};
use crate::scheduler::node_info::NodeInfo;
use crate::scheduler::pod_info::PodInfo;
use client::selectors::tolerated;

pub(crate) const NAME: &str = "NodeUnschedulable";
pub(crate) const REASON: &str = "node(s) were unschedulable";
pub(crate) const TAINT_KEY: &str = "node.kubernetes.io/unschedulable";

pub(crate) struct NodeUnschedulable;

impl Plugin for NodeUnschedulable {
    fn name(&self) -> &'static str {
        NAME
    }
}

impl FilterPlugin for NodeUnschedulable {
    fn filter(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        if !node.unschedulable {
            return Status::success();
        }
        let taint = Taint {
            key: TAINT_KEY.into(),
            effect: "NoSchedule".into(),
            ..Default::default()
        };
        if tolerated(
            pod.spec().tolerations.as_deref().unwrap_or_default(),
            &taint,
        ) {
            Status::success()
        } else {
            Status::unresolvable(REASON)
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::scheduler::framework::Code;
    use crate::scheduler::testing::{node, pod};

    #[test]
    fn cordoned_nodes_take_only_tolerating_pods() {
        for (unschedulable, tolerations, want) in [
            (false, json!([]), Code::Success),
            (true, json!([]), Code::UnschedulableAndUnresolvable),
            (
                true,
                json!([{"key": TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}]),
                Code::Success,
            ),
        ] {
            let n = NodeInfo::of(
                node(
                    "n",
                    "1",
                    "1Gi",
                    json!({"spec": {"unschedulable": unschedulable}}),
                )
                .into(),
            );
            let p = pod(
                "p",
                json!({}),
                json!({"containers": [], "tolerations": tolerations}),
            );
            assert_eq!(
                NodeUnschedulable
                    .filter(&CycleState::default(), &p, &n)
                    .code,
                want
            );
        }
    }
}
