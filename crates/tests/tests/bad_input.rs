//! Bad input gets a clear gRPC error naming the field and the reason, and writes nothing.

use std::time::Duration;

use bytes::Bytes;
use rkube_proto::etcd::request_op::Request as Op;
use rkube_proto::etcd::watch_request::RequestUnion;
use rkube_proto::etcd::*;
use rkube_tests::{Clients, Cluster, Flavor};
use tonic::Code;

/// Asserts `res` failed with `code` and a message containing each of `words`, and that the
/// store's revision did not move.
async fn assert_rejected<T: std::fmt::Debug>(
    c: &mut Clients,
    before: i64,
    res: Result<T, tonic::Status>,
    code: Code,
    words: &[&str],
) {
    let err = res.expect_err("the request must be rejected");
    assert_eq!(err.code(), code, "{err:?}");
    for w in words {
        assert!(
            err.message().contains(w),
            "message {:?} lacks {w:?}",
            err.message()
        );
    }
    assert_eq!(
        c.revision().await,
        before,
        "a rejected request wrote something"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_requests_are_rejected_and_write_nothing() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let cluster = Cluster::start(Flavor::Rkube, 3, &[]).await;
        let mut c = cluster.clients(1);
        c.kv.put(PutRequest {
            key: "k".into(),
            value: "v".into(),
            ..Default::default()
        })
        .await
        .unwrap();
        let before = c.revision().await;

        // Over the default 1.5 MiB request limit.
        let big = PutRequest {
            key: "big".into(),
            value: vec![0u8; 1600 * 1024].into(),
            ..Default::default()
        };
        let res = c.kv.put(big).await;
        assert_rejected(
            &mut c,
            before,
            res,
            Code::InvalidArgument,
            &["value", "request is too large", "1572864"],
        )
        .await;

        let put_op = |i: usize| RequestOp {
            request: Some(Op::RequestPut(PutRequest {
                key: Bytes::from(format!("t{i}")),
                value: "v".into(),
                ..Default::default()
            })),
        };
        let txn = TxnRequest {
            success: (0..129).map(put_op).collect(),
            ..Default::default()
        };
        let res = c.kv.txn(txn).await;
        assert_rejected(
            &mut c,
            before,
            res,
            Code::InvalidArgument,
            &["success", "too many operations", "128"],
        )
        .await;

        let res =
            c.kv.range(RangeRequest {
                key: "b".into(),
                range_end: "a".into(),
                ..Default::default()
            })
            .await;
        assert_rejected(
            &mut c,
            before,
            res,
            Code::InvalidArgument,
            &["range_end", "not after the range start"],
        )
        .await;
        let res =
            c.kv.delete_range(DeleteRangeRequest {
                key: "b".into(),
                range_end: "a".into(),
                prev_kv: false,
            })
            .await;
        assert_rejected(&mut c, before, res, Code::InvalidArgument, &["range_end"]).await;

        let res =
            c.kv.put(PutRequest {
                key: "k2".into(),
                value: "v".into(),
                lease: 12345,
                ..Default::default()
            })
            .await;
        assert_rejected(&mut c, before, res, Code::NotFound, &["lease not found"]).await;
        let res = c.lease.lease_revoke(LeaseRevokeRequest { id: 12345 }).await;
        assert_rejected(&mut c, before, res, Code::NotFound, &["lease not found"]).await;

        // A watch from a compacted revision is cancelled with the compaction revision.
        for i in 0..3 {
            c.kv.put(PutRequest {
                key: "k".into(),
                value: Bytes::from(format!("v{i}")),
                ..Default::default()
            })
            .await
            .unwrap();
        }
        let now = c.revision().await;
        c.kv.compact(CompactionRequest {
            revision: now,
            physical: true,
        })
        .await
        .unwrap();
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        tx.send(WatchRequest {
            request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
                key: "k".into(),
                start_revision: 1,
                ..Default::default()
            })),
        })
        .await
        .unwrap();
        let mut stream = c
            .watch
            .watch(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
            .unwrap()
            .into_inner();
        let mut cancel = None;
        while let Some(r) = stream.message().await.unwrap() {
            if r.canceled {
                cancel = Some(r);
                break;
            }
        }
        let cancel = cancel.expect("the watch is cancelled");
        assert_eq!(cancel.compact_revision, now);
        assert!(
            cancel.cancel_reason.contains("compacted"),
            "{}",
            cancel.cancel_reason
        );
        let res =
            c.kv.range(RangeRequest {
                key: "k".into(),
                revision: 1,
                ..Default::default()
            })
            .await;
        assert_rejected(&mut c, now, res, Code::OutOfRange, &["compacted"]).await;
        drop(tx);
    })
    .await
    .expect("scenario within 60 s");
}
