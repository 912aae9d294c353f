//! Protocol definitions of rkube and the tonic/prost code generated from them.
//!
//! - [`etcd`] (`etcdserverpb`) and [`mvccpb`]: the etcd v3 API, wire-compatible with etcd, so
//!   etcdctl and etcd client libraries talk to rkube's store.
//! - [`api`] (`rkube.api.v1`): the resource API of the apiserver, used by every client.
//! - [`cloudprovider`] (`rkube.cloudprovider.v1`): what the cloud-controller-manager asks
//!   of a cloud provider plugin (identity, instances, load balancers, routes, volumes).
//! - [`cloudlocal`] (`rkube.cloudlocal.v1`): what the `local` provider tells the node
//!   agents on its machines (their kernel routes).
//! - [`raft`] (`rkube.raft.v1`): the transport between raft-store members and the request
//!   type that raft-store replicates.
//! - [`K8S_DESCRIPTORS`]: Kubernetes' own API messages (`k8s.io.api.*`, `k8s.io.apimachinery.*`,
//!   `k8s.io.apiextensions_apiserver.*`) as an encoded `FileDescriptorSet`, for reading the
//!   `application/vnd.kubernetes.protobuf` bodies kubectl and client-go send.
//! - [`openapi_v2`] (`openapi.v2`): gnostic's OpenAPI 2.0 document, the protobuf form of
//!   `/openapi/v2` that kubectl and client-go read.
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

/// Packages under `openapi.`.
pub mod openapi {
    /// `openapi.v2`: an OpenAPI (Swagger) 2.0 document as gnostic encodes it.
    // The oneofs are gnostic's (a parameter written out or referenced): boxing the large
    // variant would change only the Rust shape, and documents are built once per change.
    #[allow(clippy::large_enum_variant)]
    pub mod v2 {
        tonic::include_proto!("openapi.v2");
    }
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
    /// `rkube.cloudprovider.*`
    pub mod cloudprovider {
        /// `rkube.cloudprovider.v1`: the protocol cloud provider plugins serve.
        pub mod v1 {
            tonic::include_proto!("rkube.cloudprovider.v1");
        }
    }
    /// `rkube.cloudlocal.*`
    pub mod cloudlocal {
        /// `rkube.cloudlocal.v1`: the `local` provider's node agent protocol.
        pub mod v1 {
            tonic::include_proto!("rkube.cloudlocal.v1");
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
pub use openapi::v2 as openapi_v2;
pub use rkube::api::v1 as api;
pub use rkube::cloudlocal::v1 as cloudlocal;
pub use rkube::cloudprovider::v1 as cloudprovider;
pub use rkube::raft::v1 as raft;

/// The encoded `google.protobuf.FileDescriptorSet` of Kubernetes' `generated.proto` files
/// (under `proto/k8s/`) and their imports, without source info. Message names are the
/// Kubernetes proto names, e.g. `k8s.io.api.apps.v1.Deployment`.
pub const K8S_DESCRIPTORS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/k8s_descriptors.bin"));
