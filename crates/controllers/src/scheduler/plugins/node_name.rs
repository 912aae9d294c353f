//! NodeName: a pod that names its node (`spec.nodeName`) fits only that node.

use crate::scheduler::framework::{CycleState, FilterPlugin, Plugin, Status};
use crate::scheduler::node_info::NodeInfo;
use crate::scheduler::pod_info::PodInfo;

pub(crate) const NAME: &str = "NodeName";
pub(crate) const REASON: &str = "node(s) didn't match the requested node name";

pub(crate) struct NodeName;

impl Plugin for NodeName {
    fn name(&self) -> &'static str {
        NAME
    }
}

impl FilterPlugin for NodeName {
    fn filter(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        match pod.spec().node_name.as_deref() {
            Some(n) if !n.is_empty() && n != node.name => Status::unresolvable(REASON),
            _ => Status::success(),
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
    fn only_the_named_node_fits() {
        let n = NodeInfo::of(node("n1", "1", "1Gi", json!({})).into());
        for (name, want) in [
            (json!(null), Code::Success),
            (json!("n1"), Code::Success),
            (json!("n2"), Code::UnschedulableAndUnresolvable),
        ] {
            let p = pod("p", json!({}), json!({"containers": [], "nodeName": name}));
            assert_eq!(
                NodeName.filter(&CycleState::default(), &p, &n).code,
                want,
                "{name}"
            );
        }
    }
}
