//! The control-plane controllers of rkube: the scheduler (and, in time, the controllers of
//! the controller-manager).
//!
//! Everything here is a client of the apiserver and reaches it only through the `client`
//! crate, over gRPC — this crate must never depend on `apiserver` or `raft-store`.

pub mod scheduler;
