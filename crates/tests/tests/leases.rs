//! Leases over the etcd API: keep-alive keeps keys, expiry is committed by the leader, and a
//! leader change neither loses a lease nor expires it early.

use std::time::{Duration, Instant};

use bytes::Bytes;
use rkube_proto::etcd::*;
use rkube_tests::{eventually, Cluster, Flavor};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

async fn exists(c: &Cluster, i: usize, key: &str) -> Option<bool> {
    let req = RangeRequest {
        key: Bytes::copy_from_slice(key.as_bytes()),
        ..Default::default()
    };
    Some(c.clients(i).kv.range(req).await.ok()?.into_inner().count == 1)
}

#[tokio::test(flavor = "multi_thread")]
async fn keep_alive_holds_keys_and_expiry_survives_a_leader_change() {
    tokio::time::timeout(Duration::from_secs(90), async {
        let mut c = Cluster::start(Flavor::Rkube, 3, &[]).await;
        let leader = c.wait_leader(Duration::from_secs(10)).await;
        let f = (leader + 1) % 3;
        let mut lease = c.clients(f).lease;
        let kept = lease
            .lease_grant(LeaseGrantRequest { ttl: 2, id: 0 })
            .await
            .unwrap()
            .into_inner();
        let idle = lease
            .lease_grant(LeaseGrantRequest { ttl: 3, id: 0 })
            .await
            .unwrap()
            .into_inner();
        assert!(kept.id > 0 && kept.ttl == 2 && idle.id != kept.id);
        let mut kv = c.clients(f).kv;
        for (k, id) in [("kept", kept.id), ("idle", idle.id)] {
            kv.put(PutRequest {
                key: k.into(),
                value: "v".into(),
                lease: id,
                ..Default::default()
            })
            .await
            .unwrap();
        }

        // Keep `kept` alive from a follower (forwarded to the leader) every 500 ms. Like
        // etcd's client, re-open the stream when a keep-alive fails (the leader died).
        let mut keeper_lease = lease.clone();
        let keeper = tokio::spawn(async move {
            loop {
                let (tx, rx) = mpsc::channel(4);
                let Ok(stream) = keeper_lease.lease_keep_alive(ReceiverStream::new(rx)).await
                else {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                };
                let mut responses = stream.into_inner();
                loop {
                    if tx
                        .send(LeaseKeepAliveRequest { id: kept.id })
                        .await
                        .is_err()
                    {
                        break;
                    }
                    match responses.message().await {
                        Ok(Some(r)) => assert_eq!(r.ttl, 2, "keep-alive renews the full TTL"),
                        _ => break,
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        });

        let ttl = lease
            .lease_time_to_live(LeaseTimeToLiveRequest {
                id: idle.id,
                keys: true,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(ttl.granted_ttl, 3);
        assert!(ttl.ttl <= 3 && ttl.ttl > 0, "{ttl:?}");
        assert_eq!(ttl.keys, vec![Bytes::from("idle")]);

        // Kill the leader: the new leader gives every lease a full TTL again, so `idle`
        // expires no earlier than 3 s after the failover.
        c.kill(leader);
        let killed_at = Instant::now();
        let new_leader = c.wait_leader(Duration::from_secs(10)).await;
        eventually(
            Duration::from_secs(15),
            "the idle lease's key to expire",
            || async { (!exists(&c, new_leader, "idle").await?).then_some(()) },
        )
        .await;
        assert!(
            killed_at.elapsed() >= Duration::from_secs(3),
            "expired {:?} after the failover",
            killed_at.elapsed()
        );
        assert_eq!(
            exists(&c, new_leader, "kept").await,
            Some(true),
            "a kept-alive lease outlives its TTL"
        );
        let gone = c
            .clients(new_leader)
            .lease
            .lease_time_to_live(LeaseTimeToLiveRequest {
                id: idle.id,
                keys: false,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(gone.ttl, -1, "an expired lease reads as TTL -1, as in etcd");

        // Revoke deletes the kept key at once.
        c.clients(new_leader)
            .lease
            .lease_revoke(LeaseRevokeRequest { id: kept.id })
            .await
            .unwrap();
        assert_eq!(exists(&c, new_leader, "kept").await, Some(false));
        keeper.abort();
        let leases = c
            .clients(new_leader)
            .lease
            .lease_leases(LeaseLeasesRequest {})
            .await
            .unwrap()
            .into_inner();
        assert!(leases.leases.is_empty(), "{leases:?}");
    })
    .await
    .expect("scenario within 90 s");
}
