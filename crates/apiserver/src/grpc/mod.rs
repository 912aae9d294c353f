//! The gRPC services of the apiserver: Resources, Discovery and Cluster.

mod cluster;
mod discovery;
mod resources;

pub use cluster::ClusterService;
pub use discovery::DiscoveryService;
pub use resources::ResourcesService;
