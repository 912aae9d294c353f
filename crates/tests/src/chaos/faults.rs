//! What a scenario can do to a cluster: implemented by the network-namespace harness (root)
//! and by the loopback harness with TCP fault proxies (no root needed).

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use rkube_proto::etcd::maintenance_client::MaintenanceClient;
use rkube_proto::etcd::StatusRequest;

use crate::eventually;
use crate::process::MemberProcess;

pub trait Faults: Send {
    fn size(&self) -> usize;
    fn api_addr(&self, i: usize) -> SocketAddr;
    /// Member `i`'s advertised Raft address, `host:port`.
    fn peer_addr(&self, i: usize) -> String;
    fn spawn(&mut self, i: usize, state: &str);
    fn process(&self, i: usize) -> &MemberProcess;
    fn process_mut(&mut self, i: usize) -> &mut MemberProcess;
    fn data_dir(&self, i: usize) -> &Path;

    fn kill(&mut self, i: usize) {
        self.process_mut(i).kill();
    }
    fn pause(&self, i: usize) {
        self.process(i).pause();
    }
    fn resume(&self, i: usize) {
        self.process(i).resume();
    }
    fn is_running(&self, i: usize) -> bool {
        self.process(i).is_running()
    }
    /// kill -9 and remove the data, for a member that rejoins as a new one.
    fn wipe(&mut self, i: usize) {
        self.kill(i);
        let _ = std::fs::remove_dir_all(self.data_dir(i));
    }
    /// Cuts member `i` off from every other member, both ways.
    fn isolate(&self, i: usize);
    /// Stops traffic from `from` to `to` only.
    fn drop_one_way(&self, from: usize, to: usize);
    fn heal(&self);
    fn keep(&mut self);
    fn dir(&self) -> &Path;

    /// The leader member `i` names, and `i`'s own id, if `i` answers.
    fn leader_seen_by(&self, i: usize) -> impl Future<Output = Option<(u64, u64)>> + Send {
        let addr = self.api_addr(i);
        async move {
            let ch = super::channel(addr);
            let st = tokio::time::timeout(
                Duration::from_millis(500),
                MaintenanceClient::new(ch).status(StatusRequest {}),
            )
            .await
            .ok()?
            .ok()?
            .into_inner();
            Some((st.leader, st.header.map_or(0, |h| h.member_id)))
        }
    }

    /// The index of the member every running member names as leader.
    fn wait_leader(&self, timeout: Duration) -> impl Future<Output = usize> + Send
    where
        Self: Sync,
    {
        async move {
            eventually(
                timeout,
                "every running member to name the same leader",
                || async {
                    let mut leader = None;
                    let mut ids = Vec::new();
                    for i in 0..self.size() {
                        if !self.is_running(i) {
                            ids.push(None);
                            continue;
                        }
                        let (l, me) = self.leader_seen_by(i).await?;
                        if l == 0 || leader.is_some_and(|x| x != l) {
                            return None;
                        }
                        leader = Some(l);
                        ids.push(Some(me));
                    }
                    let leader = leader?;
                    ids.iter().position(|id| *id == Some(leader))
                },
            )
            .await
        }
    }
}
