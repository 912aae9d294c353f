//! Watches across a leader change: ordered, no gaps, no duplicates; and a watch resumed on
//! another member never goes back in time (etcd #15271).

use std::time::Duration;

use bytes::Bytes;
use rkube_proto::etcd::watch_request::RequestUnion;
use rkube_proto::etcd::*;
use rkube_tests::{eventually, Clients, Cluster, Flavor};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

/// Opens a watch on `prefix` from `start`; returns the request sender and the stream.
async fn watch(
    c: &mut Clients,
    prefix: &str,
    start: i64,
) -> (mpsc::Sender<WatchRequest>, tonic::Streaming<WatchResponse>) {
    let end = rkube_tests::prefix_end(prefix);
    let (tx, rx) = mpsc::channel(4);
    tx.send(WatchRequest {
        request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
            key: Bytes::copy_from_slice(prefix.as_bytes()),
            range_end: end,
            start_revision: start,
            ..Default::default()
        })),
    })
    .await
    .unwrap();
    let s = c
        .watch
        .watch(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    (tx, s)
}

async fn put_anywhere(c: &Cluster, k: &str) -> i64 {
    eventually(
        Duration::from_secs(10),
        "a put to be acknowledged",
        || async {
            for i in (0..c.members.len()).filter(|i| c.is_running(*i)) {
                let req = PutRequest {
                    key: Bytes::copy_from_slice(k.as_bytes()),
                    value: "v".into(),
                    ..Default::default()
                };
                if let Ok(r) = c.clients(i).kv.put(req).await {
                    return Some(r.into_inner().header.unwrap().revision);
                }
            }
            None
        },
    )
    .await
}

/// Event revisions from a watch stream until `until` is reached.
async fn collect(s: &mut tonic::Streaming<WatchResponse>, until: i64) -> Vec<i64> {
    let mut revs = Vec::new();
    while revs.last().copied().unwrap_or(0) < until {
        let r = tokio::time::timeout(Duration::from_secs(10), s.message())
            .await
            .expect("watch events within 10 s")
            .expect("watch stream")
            .expect("watch stream open");
        assert!(!r.canceled, "watch cancelled: {}", r.cancel_reason);
        revs.extend(r.events.iter().map(|e| e.kv.as_ref().unwrap().mod_revision));
    }
    revs
}

#[tokio::test(flavor = "multi_thread")]
async fn watch_sees_every_revision_across_a_leader_kill_and_resumes_forward() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let mut c = Cluster::start(Flavor::Rkube, 3, &[]).await;
        let leader = c.wait_leader(Duration::from_secs(10)).await;
        let follower = (leader + 1) % 3;
        let (_keep, mut w) = watch(&mut c.clients(follower), "w/", 1).await;

        let mut acked = Vec::new();
        for j in 0..100 {
            if j == 40 {
                c.kill(leader);
            }
            acked.push(put_anywhere(&c, &format!("w/{j}")).await);
        }
        let last = *acked.iter().max().unwrap();
        let live = collect(&mut w, last).await;
        assert!(
            live.windows(2).all(|p| p[0] < p[1]),
            "strictly increasing: {live:?}"
        );
        for r in &acked {
            assert!(
                live.contains(r),
                "acknowledged revision {r} missing from the watch: {live:?}"
            );
        }
        // The same history, replayed from disk on the other surviving member.
        let other = (leader + 2) % 3;
        let (_keep2, mut replay) = watch(&mut c.clients(other), "w/", 1).await;
        assert_eq!(
            collect(&mut replay, last).await,
            live,
            "live and replayed histories differ"
        );

        // etcd #15271: a watch started "now" on any member after the failover starts at or
        // after the newest revision this client has seen acknowledged.
        for i in [follower, other] {
            let (_tx, mut s) = watch(&mut c.clients(i), "w/", 0).await;
            let created = s.message().await.unwrap().unwrap();
            assert!(created.created);
            let start = created.header.unwrap().revision;
            assert!(
                start >= last,
                "member {i} started a watch at {start}, before the seen revision {last}"
            );
            let next = put_anywhere(&c, "w/next").await;
            assert_eq!(collect(&mut s, next).await, vec![next]);
        }
    })
    .await
    .expect("scenario within 120 s");
}
