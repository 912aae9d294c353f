//! Protocol definitions of rkube and the tonic/prost code generated from them.
//!
//! - [`etcd`] (`etcdserverpb`) and [`mvccpb`]: the etcd v3 API, wire-compatible with etcd, so
//!   etcdctl and etcd client libraries talk to rkube's store.
//! - [`api`] (`rkube.api.v1`): the resource API of the apiserver, used by every client.
//! - [`raft`] (`rkube.raft.v1`): the transport between raft-store members and the request
//!   type that raft-store replicates.
//!
//! This crate holds nothing but protocol definitions; it depends on no other rkube crate.
//! Modules follow the proto package hierarchy because generated code refers across packages
//! by relative paths.

/// `mvccpb`: key-value and event messages of the etcd v3 API.
pub mod mvccpb {
    tonic::include_proto!("mvccpb");
}

/// `etcdserverpb`: the etcd v3 services KV, Watch, Lease, Cluster and Maintenance.
pub mod etcdserverpb {
    tonic::include_proto!("etcdserverpb");
}

/// Packages under `rkube.`.
pub mod rkube {
    /// `rkube.api.*`
    pub mod api {
        /// `rkube.api.v1`: the resource, discovery and cluster API of the apiserver.
        pub mod v1 {
            tonic::include_proto!("rkube.api.v1");
        }
    }
    /// `rkube.raft.*`
    pub mod raft {
        /// `rkube.raft.v1`: the member-to-member transport of raft-store.
        pub mod v1 {
            tonic::include_proto!("rkube.raft.v1");
        }
    }
}

pub use etcdserverpb as etcd;
pub use rkube::api::v1 as api;
pub use rkube::raft::v1 as raft;
