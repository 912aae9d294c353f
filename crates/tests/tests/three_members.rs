//! Three `rkube store` members as separate processes: writes through every member, kill -9
//! of the leader, kill -9 of all members — and no acknowledged write is lost.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rkube_proto::etcd::{HashKvRequest, PutRequest, RangeRequest};
use rkube_tests::{eventually, Cluster, Flavor};
use tokio::sync::Mutex;

fn put(k: &str, v: &str) -> PutRequest {
    PutRequest {
        key: Bytes::copy_from_slice(k.as_bytes()),
        value: Bytes::copy_from_slice(v.as_bytes()),
        ..Default::default()
    }
}

/// Every key under `prefix` with its value, read serializably from member `i` (what that
/// member itself has applied).
async fn local_state(c: &Cluster, i: usize, prefix: &str) -> Option<BTreeMap<String, String>> {
    let end = rkube_tests::prefix_end(prefix);
    let req = RangeRequest {
        key: Bytes::copy_from_slice(prefix.as_bytes()),
        range_end: end,
        serializable: true,
        ..Default::default()
    };
    let r = c.clients(i).kv.range(req).await.ok()?.into_inner();
    Some(
        r.kvs
            .into_iter()
            .map(|kv| {
                (
                    String::from_utf8_lossy(&kv.key).into(),
                    String::from_utf8_lossy(&kv.value).into(),
                )
            })
            .collect(),
    )
}

/// Waits until every running member holds exactly `want` under `prefix`.
async fn assert_all_members_hold(c: &Cluster, prefix: &str, want: &BTreeMap<String, String>) {
    for i in (0..c.members.len()).filter(|i| c.is_running(*i)) {
        eventually(
            Duration::from_secs(20),
            &format!("member {i} to hold all {} acknowledged writes", want.len()),
            || async {
                let got = local_state(c, i, prefix).await?;
                want.iter()
                    .all(|(k, v)| got.get(k) == Some(v))
                    .then_some(())
            },
        )
        .await;
    }
}

/// Puts through member `first` and, when it fails, through the others, until acknowledged.
async fn put_anywhere(c: &Cluster, first: usize, k: &str, v: &str) {
    let n = c.members.len();
    eventually(
        Duration::from_secs(10),
        &format!("put {k} to be acknowledged"),
        || async {
            for j in 0..n {
                let i = (first + j) % n;
                if c.is_running(i) && c.clients(i).kv.put(put(k, v)).await.is_ok() {
                    return Some(());
                }
            }
            None
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn writes_through_every_member_survive_a_leader_kill() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let mut c = Cluster::start(Flavor::Rkube, 3, &[]).await;
        let mut acked = BTreeMap::new();
        for i in 0..3 {
            for j in 0..20 {
                let (k, v) = (format!("k/{i}/{j}"), format!("v{j}"));
                c.clients(i)
                    .kv
                    .put(put(&k, &v))
                    .await
                    .unwrap_or_else(|e| panic!("put through member {i}: {e}"));
                acked.insert(k, v);
            }
        }
        assert_all_members_hold(&c, "k/", &acked).await;

        let leader = c.wait_leader(Duration::from_secs(10)).await;
        c.kill(leader);
        for j in 0..50 {
            let (k, v) = (format!("k/after/{j}"), format!("v{j}"));
            put_anywhere(&c, (leader + 1) % 3, &k, &v).await;
            acked.insert(k, v);
        }
        let new_leader = c.wait_leader(Duration::from_secs(10)).await;
        assert_ne!(new_leader, leader);
        assert_all_members_hold(&c, "k/", &acked).await;

        c.spawn(leader, "new");
        assert_all_members_hold(&c, "k/", &acked).await;
        // Identical history on every member.
        let rev = c.clients(new_leader).revision().await;
        let mut hashes = Vec::new();
        for i in 0..3 {
            let h = eventually(
                Duration::from_secs(10),
                "a member to reach the revision",
                || async {
                    c.clients(i)
                        .maintenance
                        .hash_kv(HashKvRequest { revision: rev })
                        .await
                        .ok()
                        .map(|r| r.into_inner().hash)
                },
            )
            .await;
            hashes.push(h);
        }
        assert!(
            hashes.iter().all(|h| *h == hashes[0]),
            "members differ: {hashes:?}"
        );
    })
    .await
    .expect("scenario within 120 s");
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_all_members_under_load_then_restart_loses_nothing_acknowledged() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let mut c = Cluster::start(Flavor::Rkube, 3, &[]).await;
        let acked = Arc::new(Mutex::new(BTreeMap::new()));
        let mut writers = Vec::new();
        for w in 0..8 {
            let clients = c.clients(w % 3);
            let acked = acked.clone();
            writers.push(tokio::spawn(async move {
                let mut kv = clients.kv;
                for j in 0.. {
                    let (k, v) = (format!("load/{w}/{j}"), format!("{j}"));
                    match kv.put(put(&k, &v)).await {
                        Ok(_) => {
                            acked.lock().await.insert(k, v);
                        }
                        Err(_) => return,
                    }
                }
            }));
        }
        eventually(
            Duration::from_secs(20),
            "some writes to be acknowledged",
            || async { (acked.lock().await.len() > 300).then_some(()) },
        )
        .await;
        for i in 0..3 {
            c.kill(i);
        }
        for w in writers {
            let _ = w.await;
        }
        let acked = acked.lock().await.clone();
        for i in 0..3 {
            c.spawn(i, "new");
        }
        c.wait_leader(Duration::from_secs(20)).await;
        assert_all_members_hold(&c, "load/", &acked).await;
    })
    .await
    .expect("scenario within 120 s");
}
