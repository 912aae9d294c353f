//! The runtime Raft runs on: openraft's core, its replication streams and state machine
//! worker, and the peer port's Raft RPCs. Client-facing work (the etcd API, the apiserver,
//! forwarded requests) stays on the member's main runtime, so a member whose main runtime
//! is saturated still sends heartbeats and answers votes on time.

use tokio::runtime::{Builder, Handle, Runtime};

use crate::error::{Error, Result};

/// Owns the runtime; dropping it stops its tasks without waiting for them (it may be
/// dropped inside another runtime, or inside itself).
pub(crate) struct RaftRuntime(Option<Runtime>);

impl RaftRuntime {
    pub(crate) fn start(member: &str) -> Result<RaftRuntime> {
        let rt = Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name(format!("raft-{member}"))
            .enable_all()
            .build()
            .map_err(|e| Error::Storage(format!("starting the Raft runtime: {e}")))?;
        Ok(RaftRuntime(Some(rt)))
    }

    pub(crate) fn handle(&self) -> Handle {
        match &self.0 {
            Some(rt) => rt.handle().clone(),
            // Only `drop` takes the runtime out.
            None => Handle::current(),
        }
    }
}

impl Drop for RaftRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}
