//! Validation of client requests before they are proposed: a rejected request writes
//! nothing, and its error names the field and the reason.

use std::collections::BTreeSet;

use bytes::Bytes;
use rkube_proto::etcd::request_op::Request as Op;
use rkube_proto::etcd::*;

use crate::error::{Error, Result};

/// Limits on client requests.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Largest accepted request, in bytes (etcd's `--max-request-bytes`).
    pub max_request_bytes: usize,
    /// Most operations in one txn branch or compare list (etcd's `--max-txn-ops`).
    pub max_txn_ops: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_request_bytes: 1536 * 1024,
            max_txn_ops: 128,
        }
    }
}

/// Longest lease TTL accepted, as in etcd.
pub const MAX_LEASE_TTL: i64 = 9_000_000_000;

fn check_range_end(key: &[u8], range_end: &[u8]) -> Result<()> {
    if key.is_empty() {
        return Err(Error::invalid("key", "etcdserver: key is not provided"));
    }
    if !range_end.is_empty() && range_end != [0] && range_end <= key {
        return Err(Error::invalid(
            "range_end",
            format!(
                "range end {:?} is not after the range start {:?}",
                String::from_utf8_lossy(range_end),
                String::from_utf8_lossy(key)
            ),
        ));
    }
    Ok(())
}

fn check_size(size: usize, limits: &Limits) -> Result<()> {
    if size > limits.max_request_bytes {
        return Err(Error::invalid(
            "value",
            format!(
                "etcdserver: request is too large: {size} bytes, the limit is {} bytes",
                limits.max_request_bytes
            ),
        ));
    }
    Ok(())
}

pub fn range(r: &RangeRequest) -> Result<()> {
    check_range_end(&r.key, &r.range_end)
}

pub fn put(p: &PutRequest, limits: &Limits) -> Result<()> {
    if p.key.is_empty() {
        return Err(Error::invalid("key", "etcdserver: key is not provided"));
    }
    if p.ignore_value && !p.value.is_empty() {
        return Err(Error::invalid(
            "value",
            "etcdserver: value is provided with ignore_value",
        ));
    }
    if p.ignore_lease && p.lease != 0 {
        return Err(Error::invalid(
            "lease",
            "etcdserver: lease is provided with ignore_lease",
        ));
    }
    check_size(p.key.len() + p.value.len(), limits)
}

pub fn delete_range(d: &DeleteRangeRequest) -> Result<()> {
    check_range_end(&d.key, &d.range_end)
}

pub fn txn(t: &TxnRequest, limits: &Limits) -> Result<()> {
    for (field, n) in [
        ("compare", t.compare.len()),
        ("success", t.success.len()),
        ("failure", t.failure.len()),
    ] {
        if n > limits.max_txn_ops {
            return Err(Error::invalid(
                field,
                format!(
                    "etcdserver: too many operations in txn request: {n}, the limit is {}",
                    limits.max_txn_ops
                ),
            ));
        }
    }
    for c in &t.compare {
        if c.key.is_empty() {
            return Err(Error::invalid(
                "compare.key",
                "etcdserver: key is not provided",
            ));
        }
    }
    let mut size = 0usize;
    for branch in [&t.success, &t.failure] {
        let mut written = Vec::new();
        for op in branch.iter() {
            match &op.request {
                Some(Op::RequestRange(r)) => range(r)?,
                Some(Op::RequestPut(p)) => {
                    put(p, limits)?;
                    size += p.key.len() + p.value.len();
                    written.push((p.key.clone(), Bytes::new()));
                }
                Some(Op::RequestDeleteRange(d)) => {
                    delete_range(d)?;
                    written.push((d.key.clone(), d.range_end.clone()));
                }
                Some(Op::RequestTxn(inner)) => txn(inner, limits)?,
                None => {
                    return Err(Error::invalid(
                        "request",
                        "etcdserver: empty request op in txn",
                    ))
                }
            }
        }
        check_duplicates(&written)?;
    }
    check_size(size, limits)
}

/// A txn may write each key once per branch, as in etcd.
fn check_duplicates(written: &[(Bytes, Bytes)]) -> Result<()> {
    let mut singles = BTreeSet::new();
    for (k, end) in written {
        if end.is_empty() && !singles.insert(k.clone()) {
            return Err(Error::invalid(
                "success",
                "etcdserver: duplicate key given in txn request",
            ));
        }
    }
    for (k, end) in written.iter().filter(|(_, e)| !e.is_empty()) {
        let dup = written
            .iter()
            .any(|(k2, e2)| !(k2 == k && e2 == end) && crate::mvcc::in_range(k2, k, end));
        if dup {
            return Err(Error::invalid(
                "success",
                "etcdserver: duplicate key given in txn request",
            ));
        }
    }
    Ok(())
}

pub fn lease_grant(g: &LeaseGrantRequest) -> Result<()> {
    if g.ttl > MAX_LEASE_TTL {
        return Err(Error::invalid("TTL", "etcdserver: too large lease TTL"));
    }
    if g.id < 0 {
        return Err(Error::invalid("ID", "lease ID must not be negative"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put_req(k: &str, n: usize) -> PutRequest {
        PutRequest {
            key: Bytes::copy_from_slice(k.as_bytes()),
            value: vec![b'x'; n].into(),
            ..Default::default()
        }
    }

    fn op(p: PutRequest) -> RequestOp {
        RequestOp {
            request: Some(Op::RequestPut(p)),
        }
    }

    fn field(e: Error) -> &'static str {
        match e {
            Error::InvalidArgument { field, .. } => field,
            other => panic!("expected InvalidArgument, got {other:?}"),
        }
    }

    #[test]
    fn rejects_bad_requests_naming_the_field() {
        let l = Limits {
            max_request_bytes: 1000,
            max_txn_ops: 2,
        };
        let cases: Vec<(&str, Result<()>, &str)> = vec![
            ("oversized value", put(&put_req("k", 1001), &l), "value"),
            ("empty key", put(&put_req("", 1), &l), "key"),
            (
                "range end before start",
                range(&RangeRequest {
                    key: "b".into(),
                    range_end: "a".into(),
                    ..Default::default()
                }),
                "range_end",
            ),
            (
                "range end equal to start",
                delete_range(&DeleteRangeRequest {
                    key: "b".into(),
                    range_end: "b".into(),
                    prev_kv: false,
                }),
                "range_end",
            ),
            (
                "too many ops",
                txn(
                    &TxnRequest {
                        success: vec![
                            op(put_req("a", 1)),
                            op(put_req("b", 1)),
                            op(put_req("c", 1)),
                        ],
                        ..Default::default()
                    },
                    &l,
                ),
                "success",
            ),
            (
                "duplicate key",
                txn(
                    &TxnRequest {
                        success: vec![op(put_req("a", 1)), op(put_req("a", 1))],
                        ..Default::default()
                    },
                    &l,
                ),
                "success",
            ),
            (
                "txn over the size limit",
                txn(
                    &TxnRequest {
                        success: vec![op(put_req("a", 600)), op(put_req("b", 600))],
                        ..Default::default()
                    },
                    &l,
                ),
                "value",
            ),
            (
                "huge lease TTL",
                lease_grant(&LeaseGrantRequest {
                    ttl: MAX_LEASE_TTL + 1,
                    id: 0,
                }),
                "TTL",
            ),
        ];
        for (name, res, want) in cases {
            assert_eq!(field(res.expect_err(name)), want, "{name}");
        }
    }

    #[test]
    fn accepts_valid_requests() {
        let l = Limits::default();
        put(&put_req("k", 1024), &l).unwrap();
        range(&RangeRequest {
            key: "a".into(),
            range_end: "\0".into(),
            ..Default::default()
        })
        .unwrap();
        range(&RangeRequest {
            key: "a".into(),
            range_end: "b".into(),
            ..Default::default()
        })
        .unwrap();
        txn(
            &TxnRequest {
                success: vec![op(put_req("a", 1))],
                failure: vec![op(put_req("a", 1))],
                ..Default::default()
            },
            &l,
        )
        .unwrap();
    }
}
