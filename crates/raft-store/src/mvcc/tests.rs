//! MVCC semantics: revisions, ranges, deletes, txn, compaction and leases, applied through
//! the real state machine on RocksDB.

use bytes::Bytes;
use rkube_proto::etcd::compare::{CompareResult, CompareTarget, TargetUnion};
use rkube_proto::etcd::request_op::Request as ReqOp;
use rkube_proto::etcd::response_op::Response as RespOp;
use rkube_proto::etcd::*;
use rkube_proto::raft::{store_request::Op, store_response::Result as Res, StoreResponse};

use crate::testing::TestStores;

pub(crate) fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

pub(crate) fn put_op(k: &str, v: &str) -> Op {
    Op::Put(PutRequest {
        key: b(k),
        value: b(v),
        prev_kv: true,
        ..Default::default()
    })
}

pub(crate) fn range_req(k: &str, end: &str, rev: i64) -> RangeRequest {
    RangeRequest {
        key: b(k),
        range_end: b(end),
        revision: rev,
        ..Default::default()
    }
}

pub(crate) fn range(t: &TestStores, req: &RangeRequest) -> crate::Result<super::RangeResult> {
    let sh = t.shared();
    let m = sh.mvcc.read();
    m.range(&sh.db, &Default::default(), req)
}

fn values(r: &super::RangeResult) -> Vec<(String, String)> {
    r.kvs
        .iter()
        .map(|kv| {
            (
                String::from_utf8_lossy(&kv.key).into(),
                String::from_utf8_lossy(&kv.value).into(),
            )
        })
        .collect()
}

fn rev(r: &StoreResponse) -> i64 {
    r.header.as_ref().unwrap().revision
}

fn error_code(r: &StoreResponse) -> Option<i32> {
    match &r.result {
        Some(Res::Error(e)) => Some(e.code),
        _ => None,
    }
}

#[tokio::test]
async fn put_tracks_create_mod_revision_and_version() {
    let mut t = TestStores::new();
    assert_eq!(rev(&t.apply(put_op("a", "1")).await), 1);
    let r = t.apply(put_op("a", "2")).await;
    assert_eq!(rev(&r), 2);
    let Some(Res::Put(p)) = r.result else {
        panic!("{r:?}")
    };
    assert_eq!(p.prev_kv.unwrap().value, b("1"));
    let got = range(&t, &range_req("a", "", 0)).unwrap();
    let kv = &got.kvs[0];
    assert_eq!((kv.create_revision, kv.mod_revision, kv.version), (1, 2, 2));
}

#[tokio::test]
async fn range_prefix_limit_count_and_past_revisions() {
    let mut t = TestStores::new();
    for (k, v) in [("p/a", "1"), ("p/b", "2"), ("p/c", "3"), ("q", "x")] {
        t.apply(put_op(k, v)).await;
    }
    t.apply(put_op("p/a", "1b")).await; // rev 5
    let all = range(&t, &range_req("p/", "p0", 0)).unwrap();
    assert_eq!(
        values(&all),
        vec![
            ("p/a".into(), "1b".into()),
            ("p/b".into(), "2".into()),
            ("p/c".into(), "3".into())
        ]
    );
    let limited = range(
        &t,
        &RangeRequest {
            limit: 2,
            ..range_req("p/", "p0", 0)
        },
    )
    .unwrap();
    assert_eq!(
        (limited.kvs.len(), limited.more, limited.count),
        (2, true, 3)
    );
    let count = range(
        &t,
        &RangeRequest {
            count_only: true,
            ..range_req("p/", "p0", 0)
        },
    )
    .unwrap();
    assert_eq!((count.kvs.len(), count.count), (0, 3));
    let keys = range(
        &t,
        &RangeRequest {
            keys_only: true,
            ..range_req("p/", "p0", 0)
        },
    )
    .unwrap();
    assert!(keys.kvs.iter().all(|kv| kv.value.is_empty()));
    let past = range(&t, &range_req("p/", "p0", 2)).unwrap();
    assert_eq!(
        values(&past),
        vec![("p/a".into(), "1".into()), ("p/b".into(), "2".into())]
    );
    let from_key = range(&t, &range_req("p/c", "\0", 0)).unwrap();
    assert_eq!(from_key.count, 2);
    let desc = range(
        &t,
        &RangeRequest {
            sort_order: 2,
            ..range_req("p/", "p0", 0)
        },
    )
    .unwrap();
    assert_eq!(desc.kvs[0].key, b("p/c"));
    assert!(matches!(
        range(&t, &range_req("p/", "p0", 99)),
        Err(crate::Error::FutureRevision)
    ));
}

#[tokio::test]
async fn delete_range_writes_one_revision_and_nothing_for_no_keys() {
    let mut t = TestStores::new();
    t.apply(put_op("d/1", "a")).await;
    t.apply(put_op("d/2", "b")).await;
    let r = t
        .apply(Op::DeleteRange(DeleteRangeRequest {
            key: b("d/"),
            range_end: b("d0"),
            prev_kv: true,
        }))
        .await;
    assert_eq!(rev(&r), 3);
    let Some(Res::DeleteRange(d)) = r.result else {
        panic!()
    };
    assert_eq!((d.deleted, d.prev_kvs.len()), (2, 2));
    let none = t
        .apply(Op::DeleteRange(DeleteRangeRequest {
            key: b("d/"),
            range_end: b("d0"),
            prev_kv: false,
        }))
        .await;
    assert_eq!(rev(&none), 3, "deleting nothing does not create a revision");
    assert_eq!(range(&t, &range_req("d/", "d0", 0)).unwrap().count, 0);
    assert_eq!(range(&t, &range_req("d/", "d0", 2)).unwrap().count, 2);
    // Re-created keys start a new generation.
    t.apply(put_op("d/1", "c")).await;
    let kv = range(&t, &range_req("d/1", "", 0)).unwrap().kvs[0].clone();
    assert_eq!((kv.create_revision, kv.version), (4, 1));
}

fn cmp(key: &str, target: CompareTarget, result: CompareResult, u: TargetUnion) -> Compare {
    Compare {
        key: b(key),
        target: target as i32,
        result: result as i32,
        target_union: Some(u),
        range_end: Bytes::new(),
    }
}

fn op_put(k: &str, v: &str) -> RequestOp {
    RequestOp {
        request: Some(ReqOp::RequestPut(PutRequest {
            key: b(k),
            value: b(v),
            ..Default::default()
        })),
    }
}

#[tokio::test]
async fn txn_compares_then_applies_one_branch_at_one_revision() {
    let mut t = TestStores::new();
    t.apply(put_op("k", "v1")).await; // rev 1
    let txn = |c: Compare| TxnRequest {
        compare: vec![c],
        success: vec![
            op_put("k", "v2"),
            op_put("other", "o"),
            RequestOp {
                request: Some(ReqOp::RequestRange(range_req("k", "", 0))),
            },
        ],
        failure: vec![RequestOp {
            request: Some(ReqOp::RequestRange(range_req("k", "", 0))),
        }],
    };
    let ok = t
        .apply(Op::Txn(txn(cmp(
            "k",
            CompareTarget::Value,
            CompareResult::Equal,
            TargetUnion::Value(b("v1")),
        ))))
        .await;
    let Some(Res::Txn(r)) = &ok.result else {
        panic!("{ok:?}")
    };
    assert!(r.succeeded);
    assert_eq!(rev(&ok), 2, "both puts share one revision");
    let Some(RespOp::ResponseRange(seen)) = &r.responses[2].response else {
        panic!()
    };
    assert_eq!(
        seen.kvs[0].value,
        b("v2"),
        "a read in the txn sees the txn's own write"
    );
    assert_eq!(
        range(&t, &range_req("other", "", 0)).unwrap().kvs[0].mod_revision,
        2
    );

    for (c, want) in [
        (
            cmp(
                "k",
                CompareTarget::Version,
                CompareResult::Equal,
                TargetUnion::Version(2),
            ),
            true,
        ),
        (
            cmp(
                "k",
                CompareTarget::Create,
                CompareResult::Equal,
                TargetUnion::CreateRevision(1),
            ),
            true,
        ),
        (
            cmp(
                "k",
                CompareTarget::Mod,
                CompareResult::Less,
                TargetUnion::ModRevision(2),
            ),
            false,
        ),
        (
            cmp(
                "k",
                CompareTarget::Mod,
                CompareResult::Greater,
                TargetUnion::ModRevision(1),
            ),
            true,
        ),
        (
            cmp(
                "k",
                CompareTarget::Value,
                CompareResult::NotEqual,
                TargetUnion::Value(b("v2")),
            ),
            false,
        ),
        (
            cmp(
                "missing",
                CompareTarget::Version,
                CompareResult::Equal,
                TargetUnion::Version(0),
            ),
            true,
        ),
        (
            cmp(
                "missing",
                CompareTarget::Value,
                CompareResult::Equal,
                TargetUnion::Value(b("")),
            ),
            false,
        ),
    ] {
        let before = t.shared().mvcc.read().revision;
        let r = t
            .apply(Op::Txn(TxnRequest {
                compare: vec![c.clone()],
                success: vec![op_put("side", "x")],
                failure: vec![],
            }))
            .await;
        let Some(Res::Txn(tr)) = &r.result else {
            panic!()
        };
        assert_eq!(tr.succeeded, want, "{c:?}");
        assert_eq!(rev(&r), before + want as i64);
    }
}

#[tokio::test]
async fn txn_that_would_fail_halfway_writes_nothing() {
    let mut t = TestStores::new();
    t.apply(put_op("a", "1")).await;
    let bad = TxnRequest {
        compare: vec![],
        success: vec![
            op_put("a", "2"),
            RequestOp {
                request: Some(ReqOp::RequestPut(PutRequest {
                    key: b("b"),
                    value: b("x"),
                    lease: 42,
                    ..Default::default()
                })),
            },
        ],
        failure: vec![],
    };
    let r = t.apply(Op::Txn(bad)).await;
    assert_eq!(error_code(&r), Some(tonic::Code::NotFound as i32));
    assert_eq!(rev(&r), 1);
    assert_eq!(
        range(&t, &range_req("a", "", 0)).unwrap().kvs[0].value,
        b("1")
    );
}

#[tokio::test]
async fn compaction_keeps_what_reads_at_or_after_it_see() {
    let mut t = TestStores::new();
    t.apply(put_op("c", "1")).await; // 1
    t.apply(put_op("c", "2")).await; // 2
    t.apply(put_op("gone", "x")).await; // 3
    t.apply(Op::DeleteRange(DeleteRangeRequest {
        key: b("gone"),
        ..Default::default()
    }))
    .await; // 4
    t.apply(put_op("c", "3")).await; // 5
    let r = t
        .apply(Op::Compact(CompactionRequest {
            revision: 4,
            physical: true,
        }))
        .await;
    assert!(matches!(r.result, Some(Res::Compact(_))), "{r:?}");
    assert_eq!(
        values(&range(&t, &range_req("c", "", 4)).unwrap()),
        vec![("c".into(), "2".into())]
    );
    assert_eq!(range(&t, &range_req("gone", "", 4)).unwrap().count, 0);
    assert!(matches!(
        range(&t, &range_req("c", "", 3)),
        Err(crate::Error::Compacted {
            compact_revision: 4
        })
    ));
    let again = t
        .apply(Op::Compact(CompactionRequest {
            revision: 3,
            physical: true,
        }))
        .await;
    assert_eq!(error_code(&again), Some(tonic::Code::OutOfRange as i32));
    let shared = t.shared();
    let index = &shared.mvcc.read().index;
    assert_eq!(
        index.get(&b("c")).unwrap().len(),
        2,
        "rev 2 (visible at 4) and rev 5 stay"
    );
    assert!(
        index.get(&b("gone")).is_none()
            || index
                .get(&b("gone"))
                .unwrap()
                .iter()
                .all(|r| r.rev.main >= 4)
    );
}

#[tokio::test]
async fn leases_attach_keys_and_revoke_deletes_them_at_one_revision() {
    let mut t = TestStores::new();
    t.apply(Op::LeaseGrant(LeaseGrantRequest { ttl: 10, id: 7 }))
        .await;
    let unknown = t
        .apply(Op::Put(PutRequest {
            key: b("x"),
            value: b("1"),
            lease: 8,
            ..Default::default()
        }))
        .await;
    assert_eq!(error_code(&unknown), Some(tonic::Code::NotFound as i32));
    for k in ["l/1", "l/2"] {
        t.apply(Op::Put(PutRequest {
            key: b(k),
            value: b("v"),
            lease: 7,
            ..Default::default()
        }))
        .await;
    }
    assert_eq!(t.shared().mvcc.read().leases[&7].keys.len(), 2);
    let dup = t
        .apply(Op::LeaseGrant(LeaseGrantRequest { ttl: 10, id: 7 }))
        .await;
    assert!(error_code(&dup).is_some());
    let r = t.apply(Op::LeaseRevoke(LeaseRevokeRequest { id: 7 })).await;
    assert_eq!(rev(&r), 3, "both deletes share one revision");
    assert_eq!(range(&t, &range_req("l/", "l0", 0)).unwrap().count, 0);
    let gone = t.apply(Op::LeaseRevoke(LeaseRevokeRequest { id: 7 })).await;
    assert_eq!(error_code(&gone), Some(tonic::Code::NotFound as i32));
}

#[tokio::test]
async fn restart_rebuilds_the_same_state_from_rocksdb() {
    let mut t = TestStores::new();
    t.apply(Op::LeaseGrant(LeaseGrantRequest { ttl: 10, id: 3 }))
        .await;
    t.apply(Op::Put(PutRequest {
        key: b("r/1"),
        value: b("a"),
        lease: 3,
        ..Default::default()
    }))
    .await;
    t.apply(put_op("r/2", "b")).await;
    t.apply(put_op("r/2", "c")).await;
    t.apply(Op::DeleteRange(DeleteRangeRequest {
        key: b("r/2"),
        ..Default::default()
    }))
    .await;
    t.apply(Op::Compact(CompactionRequest {
        revision: 3,
        physical: true,
    }))
    .await;
    let before = format!("{:?}", t.shared().mvcc.read());
    let t = t.reopen();
    assert_eq!(format!("{:?}", t.shared().mvcc.read()), before);
    assert_eq!(t.shared().last_applied().unwrap().index, 6);
}
