//! The faults of each scenario, injected while the workloads run.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rkube_proto::etcd::cluster_client::ClusterClient;
use rkube_proto::etcd::kv_client::KvClient;
use rkube_proto::etcd::{
    MemberAddRequest, MemberListRequest, MemberRemoveRequest, PutRequest, RangeRequest,
};

use super::faults::Faults;
use super::workload::{etcd_key, Recorder, Rng};
use super::{Config, Report};
use crate::eventually;
use crate::linearizability::{Op, OpKind};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    /// (a) kill -9 the leader every 1–2 s.
    KillLeader,
    /// (b) kill -9 every member at once, then restart them.
    KillAll,
    /// (c) cut the leader off from the majority.
    IsolateLeader,
    /// (c') drop every packet from the leader to the others, one way only.
    OneWayDrop,
    /// (d) SIGSTOP the leader past the election timeout, then SIGCONT.
    PauseLeader,
    /// (e) restart every member in turn.
    RollingRestart,
    /// (f) remove a member, wipe it, and add it back.
    ReplaceMember,
}

impl Scenario {
    pub const ALL: [Scenario; 7] = [
        Scenario::KillLeader,
        Scenario::KillAll,
        Scenario::IsolateLeader,
        Scenario::OneWayDrop,
        Scenario::PauseLeader,
        Scenario::RollingRestart,
        Scenario::ReplaceMember,
    ];

    pub fn parse(s: &str) -> Option<Scenario> {
        Some(match s {
            "a" | "kill-leader" => Scenario::KillLeader,
            "b" | "kill-all" => Scenario::KillAll,
            "c" | "isolate-leader" => Scenario::IsolateLeader,
            "c2" | "one-way-drop" => Scenario::OneWayDrop,
            "d" | "pause-leader" => Scenario::PauseLeader,
            "e" | "rolling-restart" => Scenario::RollingRestart,
            "f" | "replace-member" => Scenario::ReplaceMember,
            _ => return None,
        })
    }
}

fn kv(addr: &str) -> KvClient<tonic::transport::Channel> {
    KvClient::new(super::channel(addr))
}

/// Waits until the members other than `old` agree on a leader among themselves.
async fn wait_new_leader<C: Faults + Sync>(c: &C, old: usize) {
    let others: Vec<usize> = (0..c.size()).filter(|i| *i != old).collect();
    eventually(
        Duration::from_secs(20),
        "the other members to elect a new leader",
        || async {
            let (l, _) = c.leader_seen_by(others[0]).await?;
            let mut ids = Vec::new();
            for &o in &others {
                ids.push(c.leader_seen_by(o).await?.1);
            }
            (l != 0 && ids.contains(&l)).then_some(())
        },
    )
    .await;
}

/// Injects the scenario's faults; returns the times (recorder clock) of leader kills.
pub async fn inject<C: Faults + Sync>(
    s: Scenario,
    c: &mut C,
    rec: &Arc<Recorder>,
    cfg: &Config,
    report: &mut Report,
) -> Result<Vec<u64>, String> {
    let mut rng = Rng::new(cfg.seed);
    let mut kills = Vec::new();
    tokio::time::sleep(Duration::from_millis(800)).await;
    match s {
        Scenario::KillLeader => {
            for _ in 0..cfg.kills {
                tokio::time::sleep(Duration::from_millis(1000 + rng.below(1000))).await;
                let leader = c.wait_leader(Duration::from_secs(20)).await;
                kills.push(rec.now());
                c.kill(leader);
                tokio::time::sleep(Duration::from_millis(300)).await;
                c.spawn(leader, "new");
                report.faults += 1;
            }
        }
        Scenario::KillAll => {
            for i in 0..3 {
                c.kill(i);
            }
            kills.push(rec.now());
            tokio::time::sleep(Duration::from_millis(500)).await;
            for i in 0..3 {
                c.spawn(i, "new");
            }
            c.wait_leader(Duration::from_secs(20)).await;
            report.faults += 1;
        }
        Scenario::IsolateLeader => {
            let leader = c.wait_leader(Duration::from_secs(20)).await;
            c.isolate(leader);
            report.faults += 1;
            let addr = c.api_addr(leader).to_string();
            // The cut-off leader must neither commit nor answer a linearizable read.
            for i in 0..5u64 {
                let mut k = kv(&addr);
                let v = 0xdead_0000 + i;
                let invoke = rec.now();
                let put = tokio::time::timeout(
                    Duration::from_secs(1),
                    k.put(PutRequest {
                        key: etcd_key(0),
                        value: Bytes::from(v.to_string()),
                        ..Default::default()
                    }),
                )
                .await;
                if let Ok(Ok(_)) = put {
                    return Err(format!("the isolated leader acknowledged a write of {v}"));
                }
                // Its outcome is unknown to a client; it stays in the history as such.
                rec.ops.lock().push(Op {
                    client: 9999,
                    key: 0,
                    kind: OpKind::Put(v),
                    invoke,
                    complete: None,
                });
                let get = tokio::time::timeout(
                    Duration::from_secs(1),
                    k.range(RangeRequest {
                        key: etcd_key(0),
                        ..Default::default()
                    }),
                )
                .await;
                if let Ok(Ok(r)) = get {
                    return Err(format!(
                        "the isolated leader answered a linearizable read: {:?}",
                        r.into_inner().kvs.first().map(|kv| kv.value.clone())
                    ));
                }
            }
            // The majority elects a leader of its own and goes on.
            wait_new_leader(c, leader).await;
            tokio::time::sleep(Duration::from_secs(1)).await;
            c.heal();
        }
        Scenario::OneWayDrop => {
            // The leader still hears the others but they no longer hear it: they elect a
            // new leader while the old one keeps trying to lead.
            let leader = c.wait_leader(Duration::from_secs(20)).await;
            for j in (0..3).filter(|j| *j != leader) {
                c.drop_one_way(leader, j);
            }
            kills.push(rec.now());
            report.faults += 1;
            wait_new_leader(c, leader).await;
            tokio::time::sleep(Duration::from_secs(1)).await;
            c.heal();
        }
        Scenario::PauseLeader => {
            let leader = c.wait_leader(Duration::from_secs(20)).await;
            c.pause(leader);
            kills.push(rec.now());
            report.faults += 1;
            wait_new_leader(c, leader).await;
            tokio::time::sleep(Duration::from_millis(500)).await;
            c.resume(leader);
            // Reads from the old leader right after it wakes: recorded, so a stale answer
            // fails the linearizability check.
            let addr = c.api_addr(leader).to_string();
            for _ in 0..20 {
                let invoke = rec.now();
                let r = tokio::time::timeout(
                    Duration::from_secs(1),
                    kv(&addr).range(RangeRequest {
                        key: etcd_key(0),
                        ..Default::default()
                    }),
                )
                .await;
                if let Ok(Ok(r)) = r {
                    let seen = r
                        .into_inner()
                        .kvs
                        .first()
                        .and_then(|kv| std::str::from_utf8(&kv.value).ok()?.parse().ok());
                    rec.ops.lock().push(Op {
                        client: 9998,
                        key: 0,
                        kind: OpKind::Get(seen),
                        invoke,
                        complete: Some(rec.now()),
                    });
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        }
        Scenario::RollingRestart => {
            for i in 0..3 {
                tokio::time::sleep(Duration::from_millis(700)).await;
                c.kill(i);
                kills.push(rec.now());
                tokio::time::sleep(Duration::from_millis(300)).await;
                c.spawn(i, "new");
                c.wait_leader(Duration::from_secs(20)).await;
                report.faults += 1;
            }
        }
        Scenario::ReplaceMember => {
            let leader = c.wait_leader(Duration::from_secs(20)).await;
            let victim = (leader + 1) % 3;
            let mut cl = ClusterClient::new(super::channel(c.api_addr(leader)));
            let list = cl
                .member_list(MemberListRequest { linearizable: true })
                .await
                .map_err(|e| e.to_string())?
                .into_inner();
            let peer = c.peer_addr(victim);
            let id = list
                .members
                .iter()
                .find(|m| m.peer_ur_ls.iter().any(|u| u.ends_with(&peer)))
                .map(|m| m.id)
                .ok_or("victim not in the member list")?;
            cl.member_remove(MemberRemoveRequest { id })
                .await
                .map_err(|e| format!("remove: {e}"))?;
            c.wipe(victim);
            report.faults += 1;
            tokio::time::sleep(Duration::from_secs(1)).await;
            // Re-add the removed member, as a fresh one with empty data.
            cl.member_add(MemberAddRequest {
                peer_ur_ls: vec![format!("http://{peer}")],
                is_learner: false,
            })
            .await
            .map_err(|e| format!("re-add: {e}"))?;
            c.spawn(victim, "existing");
            c.wait_leader(Duration::from_secs(30)).await;
            report.faults += 1;
        }
    }
    Ok(kills)
}
