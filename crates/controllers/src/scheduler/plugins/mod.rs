//! The default plugins, one per file, and the default profile that runs them.

pub(crate) mod balanced_allocation;
pub(crate) mod image_locality;
pub(crate) mod inter_pod_affinity;
pub(crate) mod node_affinity;
pub(crate) mod node_name;
pub(crate) mod node_ports;
pub(crate) mod node_resources_fit;
pub(crate) mod node_unschedulable;
pub(crate) mod pod_topology_spread;
pub(crate) mod taint_toleration;
pub(crate) mod volume_binding;

use super::framework::Profile;

/// The plugins and score weights of Kubernetes' default profile.
pub(crate) fn default_profile() -> Profile {
    use balanced_allocation::BalancedAllocation;
    use image_locality::ImageLocality;
    use inter_pod_affinity::InterPodAffinity;
    use node_affinity::NodeAffinity;
    use node_name::NodeName;
    use node_ports::NodePorts;
    use node_resources_fit::NodeResourcesFit;
    use node_unschedulable::NodeUnschedulable;
    use pod_topology_spread::PodTopologySpread;
    use taint_toleration::TaintToleration;
    use volume_binding::VolumeBinding;
    Profile {
        pre_filter: vec![
            Box::new(InterPodAffinity),
            Box::new(PodTopologySpread),
            Box::new(VolumeBinding),
        ],
        filter: vec![
            Box::new(NodeUnschedulable),
            Box::new(NodeName),
            Box::new(TaintToleration),
            Box::new(NodeAffinity),
            Box::new(NodePorts),
            Box::new(NodeResourcesFit),
            Box::new(VolumeBinding),
            Box::new(PodTopologySpread),
            Box::new(InterPodAffinity),
        ],
        pre_score: vec![
            Box::new(InterPodAffinity),
            Box::new(PodTopologySpread),
            Box::new(ImageLocality),
        ],
        score: vec![
            (Box::new(TaintToleration), 3),
            (Box::new(NodeAffinity), 2),
            (Box::new(NodeResourcesFit), 1),
            (Box::new(BalancedAllocation), 1),
            (Box::new(ImageLocality), 1),
            (Box::new(InterPodAffinity), 2),
            (Box::new(PodTopologySpread), 2),
        ],
    }
}
