//! NodePorts: a pod's host ports must be free on the node (same protocol and port, and the
//! same or a wildcard host IP, conflict).

use crate::scheduler::framework::{CycleState, FilterPlugin, Plugin, Status};
use crate::scheduler::node_info::NodeInfo;
use crate::scheduler::pod_info::PodInfo;

pub(crate) const NAME: &str = "NodePorts";
pub(crate) const REASON: &str = "node(s) didn't have free ports for the requested pod ports";

pub(crate) struct NodePorts;

impl Plugin for NodePorts {
    fn name(&self) -> &'static str {
        NAME
    }
}

impl FilterPlugin for NodePorts {
    fn filter(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let conflict = pod
            .host_ports
            .iter()
            .any(|want| node.used_ports.iter().any(|used| used.conflicts(want)));
        if conflict {
            Status::unschedulable(REASON)
        } else {
            Status::success()
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::scheduler::framework::Code;
    use crate::scheduler::testing::{node, on, pod};

    fn with_port(name: &str, port: i32, protocol: &str, ip: Option<&str>) -> PodInfo {
        let mut p = json!({"containerPort": 80, "hostPort": port, "protocol": protocol});
        if let Some(ip) = ip {
            p["hostIP"] = ip.into();
        }
        pod(
            name,
            json!({}),
            json!({"containers": [{"name": "c", "image": "i", "ports": [p]}]}),
        )
    }

    #[test]
    fn host_ports_conflict_by_protocol_port_and_ip() {
        let used = with_port("used", 8080, "TCP", Some("10.0.0.1"));
        for (want_pod, want) in [
            (with_port("p", 8080, "TCP", None), Code::Unschedulable),
            (
                with_port("p", 8080, "TCP", Some("10.0.0.1")),
                Code::Unschedulable,
            ),
            (with_port("p", 8080, "TCP", Some("10.0.0.2")), Code::Success),
            (with_port("p", 8080, "UDP", None), Code::Success),
            (with_port("p", 9090, "TCP", None), Code::Success),
        ] {
            let mut n = NodeInfo::of(node("n", "1", "1Gi", json!({})).into());
            n.add_pod(on(used.clone(), "n"));
            assert_eq!(
                NodePorts.filter(&CycleState::default(), &want_pod, &n).code,
                want,
                "{:?}",
                want_pod.host_ports
            );
        }
    }
}
