//! client: everything a gRPC client of the rkube apiserver needs, modelled on kube-rs.
//!
//! - [`Client`]: knows every apiserver endpoint and fails over by itself;
//! - [`Api`]: typed access to `k8s-openapi` kinds;
//! - [`watcher`]: event streams that resume from the last resourceVersion and re-list when
//!   it expired; [`reflector`]: a cache fed by a watcher; [`informer`]: one watch shared by
//!   many controllers, with a broadcast of changes;
//! - [`runtime`]: the controller runtime (`reconcile → Action`, error policy, per-key
//!   back-off, expectations, leader gating, metrics); [`leader`]: Lease-based leader
//!   election;
//! - [`storage`]: the VolumeAttachment names the volume loop and the kubelet share.
//!
//! It holds no server code and depends on no rkube crate but `rkube-proto`.

pub mod api;
pub mod client;
pub mod config;
pub mod error;
pub mod events;
pub mod informer;
pub mod leader;
pub mod metrics;
pub use api_model::quantity;
pub mod reflector;
pub mod runtime;
pub mod selectors;
pub mod state;
pub mod storage;
pub mod watcher;

pub use api::{Api, ApiObject, DeleteParams, ListParams, ObjectList, PatchParams};
pub use client::Client;
pub use config::ClientConfig;
pub use error::{Error, Result};
