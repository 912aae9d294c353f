//! The control-plane controllers of rkube: the scheduler, and the controller-manager's
//! controllers (ReplicaSet, Deployment, Endpoints and EndpointSlice, ServiceAccount and
//! token, HorizontalPodAutoscaler, node lifecycle, garbage collector, Job, CronJob, DaemonSet, namespace deletion,
//! ResourceQuota usage, ClusterRole aggregation).
//!
//! Everything here is a client of the apiserver and reaches it only through the `client`
//! crate, over gRPC — this crate must never depend on `apiserver` or `raft-store`.

pub mod certificates;
pub mod clusterrole_aggregation;
pub mod context;
pub mod credentials;
pub mod cronjob;
pub mod daemonset;
pub mod deployment;
pub mod endpoints;
pub mod events;
pub mod garbage_collector;
pub mod hpa;
pub mod job;
pub mod manager;
pub mod namespace;
pub mod node_lifecycle;
pub mod pods;
pub mod replicaset;
pub mod resource_quota;
pub mod scheduler;
pub mod serviceaccount;
pub mod token;
