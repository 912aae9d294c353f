//! The gRPC services of the apiserver: Resources, Discovery, Cluster, Auth and Pods.

mod auth;
mod cluster;
mod discovery;
pub(crate) mod pods;
pub(crate) mod resources;

pub use auth::AuthService;
pub use cluster::ClusterService;
pub use discovery::DiscoveryService;
pub use pods::PodsService;
pub use resources::ResourcesService;
