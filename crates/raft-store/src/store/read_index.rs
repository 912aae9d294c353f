//! Batched ReadIndex: concurrent linearizable reads share one leadership confirmation.
//!
//! A read joins the next round that starts after it arrived, so the round's read index is
//! at least as new as any write acknowledged before the read began. While one round is in
//! flight, every read that arrives waits for the following one — one quorum round trip
//! serves them all.

use parking_lot::Mutex;
use tokio::sync::oneshot;

use super::Store;
use crate::error::{Error, Result};

type Waiter = oneshot::Sender<Result<(), String>>;

#[derive(Default)]
pub(crate) struct ReadBatcher {
    state: Mutex<(bool, Vec<Waiter>)>,
}

impl Store {
    /// Waits until this member has applied everything committed before the call (ReadIndex):
    /// a read after this sees every write acknowledged before it, on any member.
    pub async fn read_barrier(&self) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        let start = {
            let mut st = self.inner.reads.state.lock();
            st.1.push(tx);
            !std::mem::replace(&mut st.0, true)
        };
        if start {
            let store = self.clone();
            tokio::spawn(async move { store.drive_read_rounds().await });
        }
        match rx.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(msg)) => Err(Error::NoLeader(Some(msg))),
            Err(_) => Err(Error::Stopped),
        }
    }

    async fn drive_read_rounds(&self) {
        loop {
            let waiters = {
                let mut st = self.inner.reads.state.lock();
                if st.1.is_empty() {
                    st.0 = false;
                    return;
                }
                std::mem::take(&mut st.1)
            };
            let res = self.read_round().await.map_err(|e| e.to_string());
            for w in waiters {
                let _ = w.send(res.clone());
            }
        }
    }
}
