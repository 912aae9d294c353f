//! The chaos suite, short versions: every scenario on a 3-member `rkube server` cluster in
//! network namespaces (as root, as CI runs; without root, behind TCP fault proxies), under load over the etcd API and the rkube
//! API, then linearizability, no lost writes, gap-free watches and identical members.
//! Long runs: the `chaos` binary.

use rkube_tests::chaos::{self, Config, Scenario};
use tokio::sync::Mutex;

/// Scenarios run one at a time: they share two cores, and timing is part of what they do.
static ONE_AT_A_TIME: Mutex<()> = Mutex::const_new(());

async fn scenario(s: Scenario) {
    let _g = ONE_AT_A_TIME.lock().await;
    let cfg = Config {
        kills: 10,
        ..Config::default()
    };
    match chaos::run(s, &cfg).await {
        Ok(r) => {
            eprintln!("{r:?}");
            if let Some((p50, p99, max)) = r.failover_percentiles() {
                eprintln!("failover p50 {p50:.0} ms p99 {p99:.0} ms max {max:.0} ms");
            }
            assert!(r.operations > 0 && r.acknowledged_writes > 0);
        }
        Err(e) => panic!("{e}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_kill_the_leader_ten_times() {
    scenario(Scenario::KillLeader).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn b_kill_every_member_at_once() {
    scenario(Scenario::KillAll).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn c_isolate_the_leader_from_the_majority() {
    scenario(Scenario::IsolateLeader).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn c2_drop_the_leaders_packets_one_way() {
    scenario(Scenario::OneWayDrop).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn d_pause_the_leader_past_the_election_timeout() {
    scenario(Scenario::PauseLeader).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn e_rolling_restart() {
    scenario(Scenario::RollingRestart).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn f_remove_wipe_and_re_add_a_member() {
    scenario(Scenario::ReplaceMember).await;
}

/// The harness for machines without root: the same faults through TCP fault proxies.
#[tokio::test(flavor = "multi_thread")]
async fn faults_through_tcp_proxies_without_namespaces() {
    let _g = ONE_AT_A_TIME.lock().await;
    let cfg = Config {
        kills: 3,
        ..Config::default()
    };
    for s in [
        Scenario::IsolateLeader,
        Scenario::OneWayDrop,
        Scenario::KillLeader,
    ] {
        let r = chaos::run_with_proxies(s, &cfg)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        eprintln!("{r:?}");
        assert!(r.operations > 0 && r.acknowledged_writes > 0);
    }
}
