//! raft-store: rkube's replicated key-value store — etcd's role, embedded in every
//! apiserver process.
//!
//! openraft (0.9, storage v2) over RocksDB: the Raft log ([`log_store`]) and the MVCC state
//! machine ([`state_machine`], [`mvcc`]) are separate types sharing one database through
//! column families. On top: watches ([`watch`]), leases, compaction, membership changes, an
//! in-process API ([`Store`]) and the etcd v3 gRPC API ([`etcd`]).
//!
//! This crate knows nothing about Kubernetes objects, and depends on no rkube crate but
//! `rkube-proto`.

// openraft's storage traits fix the error type (`StorageError`, 224 bytes); helpers that
// return it follow suit.
#![allow(clippy::result_large_err)]

mod codec;
pub mod error;
pub mod etcd;
pub mod log_store;
#[cfg(test)]
mod log_store_tests;
pub mod mvcc;
pub mod network;
pub mod state_machine;
pub mod store;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod types;
pub mod validate;
pub mod watch;
#[cfg(test)]
mod watch_tests;

pub use error::{Error, Result};
pub use mvcc::prefix_end;
pub use store::{ClusterState, Store, StoreConfig};
pub use types::{member_id, NodeId};
pub use watch::{WatchItem, WatchOptions, Watcher};
