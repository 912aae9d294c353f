//! The control-plane controllers of rkube: the scheduler, and the controller-manager's
//! controllers (ReplicaSet, Deployment, Endpoints and EndpointSlice, ServiceAccount and
//! token, HorizontalPodAutoscaler, node lifecycle, garbage collector, Job, CronJob, DaemonSet, StatefulSet, PersistentVolume binding and
//! the `rkube.io/local-path` provisioner, namespace deletion,
//! ResourceQuota usage, ClusterRole aggregation), and the cloud-controller-manager's loops
//! ([`cloud`]), which ask a cloud provider plugin.
//!
//! Everything here is a client of the apiserver and reaches it only through the `client`
//! crate, over gRPC — this crate must never depend on `apiserver` or `raft-store`.

pub mod certificates;
pub mod cloud;
pub(crate) mod cluster_dns;
pub(crate) mod clusterrole_aggregation;
pub(crate) mod context;
pub(crate) mod credentials;
pub(crate) mod cronjob;
pub(crate) mod daemonset;
pub mod deployment;
pub(crate) mod endpoints;
pub(crate) mod events;
pub(crate) mod garbage_collector;
pub(crate) mod hpa;
pub(crate) mod job;
pub mod manager;
pub(crate) mod namespace;
pub mod node_lifecycle;
pub(crate) mod podgc;
pub(crate) mod pods;
pub(crate) mod replicaset;
pub(crate) mod resource_quota;
pub(crate) mod root_ca;
pub mod scheduler;
pub(crate) mod serviceaccount;
pub mod statefulset;
pub(crate) mod token;
pub(crate) mod volume;
