//! openraft's storage conformance suite, run against the RocksDB log store and state machine.

use openraft::testing::{StoreBuilder, Suite};

use crate::log_store::LogStore;
use crate::state_machine::StateMachine;
use crate::testing::TestStores;
use crate::types::{StorageError, TypeConfig};

struct Builder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, TestStores> for Builder {
    async fn build(&self) -> Result<(TestStores, LogStore, StateMachine), StorageError> {
        let t = TestStores::new();
        let (log, sm) = (t.log.clone(), t.sm.clone());
        Ok((t, log, sm))
    }
}

#[test]
fn openraft_storage_conformance_suite() -> Result<(), StorageError> {
    Suite::test_all(Builder)
}
