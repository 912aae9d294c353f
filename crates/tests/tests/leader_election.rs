//! Lease-based leader election: three candidates, never two leaders at once, and a new
//! leader within the lease duration after the leader is gone.

use std::time::{Duration, Instant};

use client::leader::{LeaderElection, LeaderElectionConfig};
use rkube_tests::{Cluster, Flavor};

fn config(identity: &str) -> LeaderElectionConfig {
    let mut c = LeaderElectionConfig::new("kube-system", "test-controller", identity);
    c.lease_duration = Duration::from_secs(3);
    c.renew_deadline = Duration::from_secs(2);
    c.retry_period = Duration::from_millis(200);
    c
}

#[tokio::test(flavor = "multi_thread")]
async fn never_two_leaders_and_a_takeover_within_the_lease() {
    let cluster = Cluster::start(Flavor::Apiserver, 3, &[]).await;
    let mut candidates: Vec<Option<LeaderElection>> = (0..3)
        .map(|i| {
            Some(LeaderElection::start(
                cluster.api_client(),
                config(&format!("c{i}")),
            ))
        })
        .collect();
    let mut max_leaders = 0;

    // Sample every 20 ms: never more than one leader.
    let sample = |cands: &Vec<Option<LeaderElection>>| {
        cands.iter().flatten().filter(|c| c.is_leader()).count()
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut leader = None;
    let mut elected_at = None;
    while Instant::now() < deadline {
        let n = sample(&candidates);
        max_leaders = max_leaders.max(n);
        if n == 1 && leader.is_none() {
            leader = candidates
                .iter()
                .position(|c| c.as_ref().is_some_and(|c| c.is_leader()));
            elected_at = Some(Instant::now());
        }
        // Once elected, keep watching for two seconds of renewals.
        if elected_at.is_some_and(|t| t.elapsed() > Duration::from_secs(2)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let leader = leader.expect("a leader was elected");
    assert_eq!(max_leaders, 1, "two leaders at once");

    // The leader goes away without releasing the Lease (as if killed).
    let killed_at = Instant::now();
    candidates[leader] = None;
    let lease = Duration::from_secs(3);
    let mut new_leader = None;
    while killed_at.elapsed() < lease + Duration::from_secs(5) {
        let n = sample(&candidates);
        assert!(n <= 1, "two leaders at once after the takeover");
        if n == 1 {
            new_leader = Some(killed_at.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = new_leader.expect("another candidate took over");
    // Takeover waits for the lease to lapse (as observed), plus one retry period.
    assert!(
        took <= lease + Duration::from_millis(1500),
        "takeover took {took:?}, lease {lease:?}"
    );
    for _ in 0..50 {
        assert!(sample(&candidates) <= 1);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
