//! What the route loop decides: one route per node's pod CIDR, to that node, and no route
//! in the cluster CIDR that no node needs.

use std::collections::BTreeSet;

use rkube_proto::cloudprovider as cp;

/// A node as the route loop sees it: its name, pod CIDR and addresses.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeRoute {
    pub node: String,
    pub cidr: String,
    pub addresses: Vec<cp::NodeAddress>,
}

/// The calls to make.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RoutePlan {
    pub create: Vec<cp::Route>,
    pub delete: Vec<cp::Route>,
}

/// A stable name for the route of `node` to `cidr`.
pub fn name_hint(node: &str, cidr: &str) -> String {
    format!("{node}-{}", cidr.replace(['.', '/'], "-"))
}

fn parse(cidr: &str) -> Option<(u32, u8)> {
    crate::node_lifecycle::parse_cidr(cidr).map(|(ip, bits)| (u32::from(ip), bits))
}

/// Whether `inner` lies inside `outer` (both IPv4 CIDRs).
pub fn within(inner: &str, outer: &str) -> bool {
    let (Some((i, ib)), Some((o, ob))) = (parse(inner), parse(outer)) else {
        return false;
    };
    let mask = |b: u8| if b == 0 { 0 } else { u32::MAX << (32 - b) };
    ib >= ob && (i & mask(ob)) == (o & mask(ob))
}

/// Decides, as Kubernetes' route controller does: a node with a pod CIDR and no route to
/// it gets one; a route in the cluster CIDR whose node is gone, or whose node now has
/// another CIDR, is deleted. Routes outside the cluster CIDR are not this loop's.
pub fn plan(nodes: &[NodeRoute], existing: &[cp::Route], cluster_cidr: &str) -> RoutePlan {
    let have: BTreeSet<(&str, &str)> = existing
        .iter()
        .map(|r| (r.target_node.as_str(), r.destination_cidr.as_str()))
        .collect();
    let want: BTreeSet<(&str, &str)> = nodes
        .iter()
        .filter(|n| !n.cidr.is_empty())
        .map(|n| (n.node.as_str(), n.cidr.as_str()))
        .collect();
    let create = nodes
        .iter()
        .filter(|n| !n.cidr.is_empty() && !have.contains(&(n.node.as_str(), n.cidr.as_str())))
        .map(|n| cp::Route {
            name: name_hint(&n.node, &n.cidr),
            target_node: n.node.clone(),
            target_node_addresses: n.addresses.clone(),
            destination_cidr: n.cidr.clone(),
            blackhole: false,
        })
        .collect();
    let delete = existing
        .iter()
        .filter(|r| within(&r.destination_cidr, cluster_cidr))
        .filter(|r| !want.contains(&(r.target_node.as_str(), r.destination_cidr.as_str())))
        .cloned()
        .collect();
    RoutePlan { create, delete }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, cidr: &str) -> NodeRoute {
        NodeRoute {
            node: name.into(),
            cidr: cidr.into(),
            addresses: vec![],
        }
    }

    fn route(node: &str, cidr: &str) -> cp::Route {
        cp::Route {
            name: name_hint(node, cidr),
            target_node: node.into(),
            destination_cidr: cidr.into(),
            ..Default::default()
        }
    }

    fn names(rs: &[cp::Route]) -> Vec<String> {
        rs.iter()
            .map(|r| format!("{}={}", r.target_node, r.destination_cidr))
            .collect()
    }

    /// What, the nodes, the routes there are, the routes to create, the routes to delete.
    type Row = (
        &'static str,
        Vec<NodeRoute>,
        Vec<cp::Route>,
        Vec<&'static str>,
        Vec<&'static str>,
    );

    #[test]
    fn route_table() {
        let c = "10.244.0.0/16";
        let rows: Vec<Row> = vec![
            (
                "a new node gets a route",
                vec![node("n1", "10.244.1.0/24")],
                vec![],
                vec!["n1=10.244.1.0/24"],
                vec![],
            ),
            (
                "a node without a pod CIDR waits",
                vec![node("n1", "")],
                vec![],
                vec![],
                vec![],
            ),
            (
                "a route in place stays",
                vec![node("n1", "10.244.1.0/24")],
                vec![route("n1", "10.244.1.0/24")],
                vec![],
                vec![],
            ),
            (
                "a gone node's route goes",
                vec![],
                vec![route("n2", "10.244.2.0/24")],
                vec![],
                vec!["n2=10.244.2.0/24"],
            ),
            (
                "a node's new CIDR: new route, old one goes",
                vec![node("n1", "10.244.3.0/24")],
                vec![route("n1", "10.244.1.0/24")],
                vec!["n1=10.244.3.0/24"],
                vec!["n1=10.244.1.0/24"],
            ),
            (
                "routes outside the cluster CIDR are not ours",
                vec![],
                vec![route("gw", "192.168.0.0/24")],
                vec![],
                vec![],
            ),
        ];
        for (what, nodes, existing, create, delete) in rows {
            let p = plan(&nodes, &existing, c);
            assert_eq!(names(&p.create), create, "{what}: create");
            assert_eq!(names(&p.delete), delete, "{what}: delete");
        }
    }

    #[test]
    fn cidr_containment() {
        assert!(within("10.244.1.0/24", "10.244.0.0/16"));
        assert!(within("10.244.0.0/16", "10.244.0.0/16"));
        assert!(!within("10.245.1.0/24", "10.244.0.0/16"));
        assert!(!within("10.0.0.0/8", "10.244.0.0/16"));
        assert!(within("1.2.3.0/24", "0.0.0.0/0"));
        assert!(!within("nonsense", "10.244.0.0/16"));
    }

    #[test]
    fn names_are_stable_and_distinct() {
        assert_eq!(name_hint("n1", "10.244.1.0/24"), "n1-10-244-1-0-24");
        assert_ne!(
            name_hint("n1", "10.244.1.0/24"),
            name_hint("n1", "10.244.2.0/24")
        );
    }
}
