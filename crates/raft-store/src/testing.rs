//! Helpers for tests of raft-store and of code built on it: a state machine on a temporary
//! RocksDB, driven by applying entries directly (no Raft), so MVCC, watch and lease
//! semantics can be tested deterministically.

use std::sync::Arc;

use openraft::storage::RaftStateMachine;
use openraft::{CommittedLeaderId, EntryPayload};
use rkube_proto::raft::{store_request::Op, StoreBatch, StoreRequest, StoreResponse};

use crate::log_store::LogStore;
use crate::state_machine::{SmShared, StateMachine};
use crate::types::{Entry, LogId, Request};

/// A log store and state machine on a fresh database in a temporary directory.
pub struct TestStores {
    pub dir: tempfile::TempDir,
    pub log: LogStore,
    pub sm: StateMachine,
    next_index: u64,
}

impl TestStores {
    pub fn new() -> TestStores {
        let dir = tempfile::tempdir().expect("temp dir");
        let (log, sm) = open(dir.path());
        TestStores {
            dir,
            log,
            sm,
            next_index: 1,
        }
    }

    /// Closes and reopens the database, as a restart does.
    pub fn reopen(self) -> TestStores {
        let TestStores {
            dir,
            log,
            sm,
            next_index,
        } = self;
        drop(log);
        drop(sm);
        let (log, sm) = open(dir.path());
        TestStores {
            dir,
            log,
            sm,
            next_index,
        }
    }

    pub fn shared(&self) -> Arc<SmShared> {
        self.sm.shared.clone()
    }

    /// Applies one request as the next log entry and returns its response.
    pub async fn apply(&mut self, op: Op) -> StoreResponse {
        let e = Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), self.next_index),
            payload: EntryPayload::Normal(Request(StoreBatch {
                requests: vec![StoreRequest { op: Some(op) }],
            })),
        };
        self.next_index += 1;
        let mut out = self.sm.apply([e]).await.expect("apply");
        out.pop()
            .expect("one entry")
            .0
            .responses
            .pop()
            .expect("one response")
    }
}

impl Default for TestStores {
    fn default() -> Self {
        Self::new()
    }
}

fn open(dir: &std::path::Path) -> (LogStore, StateMachine) {
    let db = Arc::new(crate::store::open_db(dir).expect("open db"));
    let log = LogStore::new(db.clone()).expect("log store");
    let sm = StateMachine::new(db, dir.to_path_buf()).expect("state machine");
    (log, sm)
}
