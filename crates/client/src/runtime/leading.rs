//! Running a component only while it holds its Lease.

use std::future::Future;

use crate::client::Client;
use crate::leader::{LeaderElection, LeaderElectionConfig};

/// Runs `work()` while this candidate holds the Lease (or all the time without one).
/// Losing the Lease drops the running future, which stops everything it started; winning
/// it again calls `work()` afresh. Returns only if `work` does.
pub async fn run_while_leading<F, Fut>(client: Client, lease: Option<LeaderElectionConfig>, work: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = ()>,
{
    let Some(cfg) = lease else {
        work().await;
        return;
    };
    let election = LeaderElection::start(client, cfg.clone());
    let mut leading = election.is_leader.clone();
    loop {
        if leading.wait_for(|l| *l).await.is_err() {
            return;
        }
        tracing::info!(lease = %cfg.lease_name, identity = %cfg.identity, "acquired the Lease");
        let mut running = Box::pin(work());
        tokio::select! {
            _ = &mut running => return,
            _ = leading.wait_for(|l| !*l) => {
                tracing::warn!(lease = %cfg.lease_name, identity = %cfg.identity, "lost the Lease; stopped");
            }
        }
    }
}
