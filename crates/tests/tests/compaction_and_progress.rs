//! Automatic compaction, and watch progress notifications over the etcd API.

use std::time::Duration;

use bytes::Bytes;
use rkube_proto::etcd::watch_request::RequestUnion;
use rkube_proto::etcd::*;
use rkube_tests::{eventually, Cluster, Flavor};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

#[tokio::test(flavor = "multi_thread")]
async fn automatic_compaction_keeps_the_configured_history() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let c = Cluster::start(Flavor::Rkube, 3, &["--auto-compaction-retention", "50"]).await;
        let mut kv = c.clients(0).kv;
        let mut last = 0;
        for i in 0..200 {
            let r = kv
                .put(PutRequest {
                    key: "hot".into(),
                    value: Bytes::from(format!("{i}")),
                    ..Default::default()
                })
                .await
                .unwrap();
            last = r.into_inner().header.unwrap().revision;
        }
        let compacted = eventually(
            Duration::from_secs(10),
            // The policy compacts in steps of a tenth of the retention: once writes stop,
            // the compaction point settles within that step below `last - retention`.
            "an automatic compaction near the newest revision",
            || async {
                let r = c
                    .clients(1)
                    .maintenance
                    .hash_kv(HashKvRequest { revision: 0 })
                    .await
                    .ok()?
                    .into_inner();
                (r.compact_revision >= last - 55).then_some(r.compact_revision)
            },
        )
        .await;
        assert!(
            compacted >= last - 55 && compacted <= last - 50,
            "compacted at {compacted}, last revision {last}"
        );
        let old = kv
            .range(RangeRequest {
                key: "hot".into(),
                revision: compacted - 1,
                ..Default::default()
            })
            .await;
        assert_eq!(old.unwrap_err().code(), tonic::Code::OutOfRange);
        let kept = kv
            .range(RangeRequest {
                key: "hot".into(),
                revision: compacted,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(
            kept.into_inner().kvs.len(),
            1,
            "the compaction revision itself stays readable"
        );
    })
    .await
    .expect("scenario within 60 s");
}

#[tokio::test(flavor = "multi_thread")]
async fn watch_progress_on_request_and_when_idle() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let c = Cluster::start(
            Flavor::Rkube,
            3,
            &["--watch-progress-notify-interval-ms", "200"],
        )
        .await;
        let mut kv = c.clients(0).kv;
        for i in 0..3 {
            kv.put(PutRequest {
                key: Bytes::from(format!("other/{i}")),
                value: "v".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        }
        let (tx, rx) = mpsc::channel(4);
        let mut s = c
            .clients(2)
            .watch
            .watch(ReceiverStream::new(rx))
            .await
            .unwrap()
            .into_inner();
        tx.send(WatchRequest {
            request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
                key: "quiet".into(),
                progress_notify: true,
                ..Default::default()
            })),
        })
        .await
        .unwrap();
        let created = s.message().await.unwrap().unwrap();
        assert!(created.created);
        let rev = created.header.unwrap().revision;
        assert!(rev >= 3);

        // An idle watch that asked for progress gets notifications with no events.
        let idle = tokio::time::timeout(Duration::from_secs(5), s.message())
            .await
            .expect("an idle notification")
            .unwrap()
            .unwrap();
        assert!(idle.events.is_empty() && !idle.canceled);
        assert_eq!(idle.header.unwrap().revision, rev);

        // Progress on request reports writes elsewhere in the keyspace.
        let r = kv
            .put(PutRequest {
                key: "other/x".into(),
                value: "v".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        let newer = r.into_inner().header.unwrap().revision;
        tx.send(WatchRequest {
            request_union: Some(RequestUnion::ProgressRequest(WatchProgressRequest {})),
        })
        .await
        .unwrap();
        // Idle notifications from before the write may come first; the progress one follows.
        loop {
            let m = tokio::time::timeout(Duration::from_secs(5), s.message())
                .await
                .expect("a progress notification at the new revision")
                .unwrap()
                .unwrap();
            assert!(m.events.is_empty(), "the watched key was never written");
            if m.header.unwrap().revision >= newer {
                break;
            }
        }
    })
    .await
    .expect("scenario within 60 s");
}
