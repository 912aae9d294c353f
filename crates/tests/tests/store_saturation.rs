//! The store saturated: 200 clients putting as fast as they can for 10 s, spread over the
//! three members of an `rkube store` cluster, get no error, and the members hold no
//! election meanwhile — Raft runs on a runtime of its own, so a member whose client work
//! takes every core still sends its heartbeats on time. (The long version is
//! `store-bench --check-perf-runs`, etcd's own `check perf --load=l`.) A binary of its
//! own, so no other test shares the machine while it runs.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rkube_proto::etcd::PutRequest;
use rkube_tests::check_perf::highest_term;
use rkube_tests::{Cluster, Flavor};

const CLIENTS: usize = 200;
const RUN: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread")]
async fn two_hundred_writers_cause_no_error_and_no_election() {
    let c = Cluster::start(Flavor::Rkube, 3, &[]).await;
    c.wait_leader(Duration::from_secs(30)).await;
    let before = highest_term(&c).await;
    // As etcdctl does: many clients share a few connections per member.
    let kvs: Vec<_> = (0..24).map(|i| c.clients(i % 3).kv).collect();
    let (done, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let errors = Arc::new(parking_lot::Mutex::new(Vec::<String>::new()));
    let end = Instant::now() + RUN;
    let mut tasks = Vec::new();
    for i in 0..CLIENTS {
        let mut kv = kvs[i % kvs.len()].clone();
        let (done, failed, errors) = (done.clone(), failed.clone(), errors.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while Instant::now() < end {
                let put = PutRequest {
                    key: format!("/saturation/{i}/{}", n % 100).into_bytes().into(),
                    value: vec![b'x'; 256].into(),
                    ..Default::default()
                };
                n += 1;
                match kv.put(put).await {
                    Ok(_) => done.fetch_add(1, Ordering::Relaxed),
                    Err(e) => {
                        let mut errs = errors.lock();
                        if errs.len() < 5 {
                            errs.push(format!("{:?}: {}", e.code(), e.message()));
                        }
                        failed.fetch_add(1, Ordering::Relaxed)
                    }
                };
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let after = highest_term(&c).await;
    let (done, failed) = (done.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    eprintln!(
        "{done} puts in {RUN:?} ({:.0}/s), {failed} failed; term {before} -> {after}",
        done as f64 / RUN.as_secs_f64()
    );
    assert!(done > 0, "no put succeeded");
    assert_eq!(failed, 0, "failed puts, the first: {:?}", errors.lock());
    assert_eq!(
        after, before,
        "elections under load: term {before} -> {after}"
    );
}
