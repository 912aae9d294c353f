//! The gRPC services of the apiserver: Resources, Discovery, Cluster and Auth.

mod auth;
mod cluster;
mod discovery;
mod resources;

pub use auth::AuthService;
pub use cluster::ClusterService;
pub use discovery::DiscoveryService;
pub use resources::ResourcesService;
