//! Objects in the store: every write is one compare-and-swap transaction on the key's mod
//! revision, which is the object's `resourceVersion`. Stored JSON carries no
//! `resourceVersion`; it is set from the mod revision when the object is read. Values of the
//! resources an encryption configuration covers are sealed on the way in and opened on the
//! way out ([`crate::encryption`]).

use std::borrow::Cow;

use bytes::Bytes;
use raft_store::Store;
use rkube_proto::etcd::{
    compare::{CompareResult, CompareTarget, TargetUnion},
    request_op::Request,
    response_op::Response,
    Compare, DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest,
};
use serde_json::Value;

use crate::encryption::Transformer;
use crate::error::{Error, Result};
use crate::object;

/// The outcome of a compare-and-swap.
pub enum Swap {
    /// Written at this revision.
    Done(i64),
    /// The key was not at the expected revision.
    Lost,
}

/// The value to store at `key`: the object's JSON without `resourceVersion`, sealed when
/// `encryption` covers `key`.
pub fn encode(encryption: Option<&Transformer>, key: &str, obj: &Value) -> Result<Bytes> {
    let mut v = obj.clone();
    object::remove(&mut v, "resourceVersion");
    let json = serde_json::to_vec(&v).map_err(|e| Error::Internal(e.to_string()))?;
    match encryption {
        Some(t) if t.applies_to(key) => Ok(t.encrypt(key, &json)?),
        _ => Ok(Bytes::from(json)),
    }
}

/// The plaintext of the value stored at `key`: opened with `encryption` when it is sealed.
pub fn open<'a>(
    encryption: Option<&Transformer>,
    key: &str,
    value: &'a [u8],
) -> Result<Cow<'a, [u8]>> {
    match encryption {
        Some(t) => Ok(t.decrypt(key, value)?),
        None => Ok(Cow::Borrowed(value)),
    }
}

/// The object stored at `key` with its `resourceVersion` set.
pub fn decode(encryption: Option<&Transformer>, key: &str, value: &[u8], rv: i64) -> Result<Value> {
    let value = open(encryption, key, value)?;
    let mut v: Value = serde_json::from_slice(&value)
        .map_err(|e| Error::Internal(format!("stored object: {e}")))?;
    object::set(&mut v, "resourceVersion", rv.to_string());
    Ok(v)
}

/// `key`'s `target` equals `tu`.
pub(crate) fn compare(key: &str, target: CompareTarget, tu: TargetUnion) -> Compare {
    Compare {
        result: CompareResult::Equal as i32,
        target: target as i32,
        key: Bytes::copy_from_slice(key.as_bytes()),
        target_union: Some(tu),
        ..Default::default()
    }
}

fn revision_of(resp: &rkube_proto::etcd::TxnResponse) -> i64 {
    resp.header.as_ref().map_or(0, |h| h.revision)
}

/// Keys written in the same transaction as an object: values the object claims (each
/// must not exist yet) and keys it gives up. Service address allocations use it.
#[derive(Debug, Default, Clone)]
pub struct Side {
    pub claim: Vec<(String, Bytes)>,
    pub release: Vec<String>,
    /// Keys rewritten only if still at the given revision: quota usage charged with
    /// the object.
    pub guard: Vec<(String, i64, Bytes)>,
}

pub(crate) fn put_op(key: &str, value: Bytes) -> RequestOp {
    RequestOp {
        request: Some(Request::RequestPut(PutRequest {
            key: Bytes::copy_from_slice(key.as_bytes()),
            value,
            ..Default::default()
        })),
    }
}

pub(crate) fn delete_op(key: &str) -> RequestOp {
    RequestOp {
        request: Some(Request::RequestDeleteRange(DeleteRangeRequest {
            key: Bytes::copy_from_slice(key.as_bytes()),
            ..Default::default()
        })),
    }
}

/// `first` plus the side keys, if `cond` holds for the key and no claimed key exists.
async fn txn_with(
    store: &Store,
    cond: Compare,
    first: RequestOp,
    side: &Side,
) -> Result<rkube_proto::etcd::TxnResponse> {
    let mut compares = vec![cond];
    let mut ops = vec![first];
    for (k, v) in &side.claim {
        compares.push(compare(
            k,
            CompareTarget::Create,
            TargetUnion::CreateRevision(0),
        ));
        ops.push(put_op(k, v.clone()));
    }
    for (k, rv, v) in &side.guard {
        compares.push(compare(
            k,
            CompareTarget::Mod,
            TargetUnion::ModRevision(*rv),
        ));
        ops.push(put_op(k, v.clone()));
    }
    ops.extend(side.release.iter().map(|k| delete_op(k)));
    Ok(store
        .txn(TxnRequest {
            compare: compares,
            success: ops,
            failure: vec![],
        })
        .await?)
}

/// Writes `value` at `key` if the key does not exist (nor any key `side` claims).
pub async fn create(store: &Store, key: &str, value: Bytes, side: &Side) -> Result<Swap> {
    let cond = compare(key, CompareTarget::Create, TargetUnion::CreateRevision(0));
    let resp = txn_with(store, cond, put_op(key, value), side).await?;
    Ok(swap_of(&resp))
}

/// Replaces `key` with `value` if it is still at `rv` (and no key `side` claims exists).
pub async fn update(store: &Store, key: &str, rv: i64, value: Bytes, side: &Side) -> Result<Swap> {
    let cond = compare(key, CompareTarget::Mod, TargetUnion::ModRevision(rv));
    let resp = txn_with(store, cond, put_op(key, value), side).await?;
    Ok(swap_of(&resp))
}

fn swap_of(resp: &rkube_proto::etcd::TxnResponse) -> Swap {
    if resp.succeeded {
        Swap::Done(revision_of(resp))
    } else {
        Swap::Lost
    }
}

/// Deletes `key` if it is still at `rv`, with the keys `side` releases.
pub async fn delete(store: &Store, key: &str, rv: i64, side: &Side) -> Result<Swap> {
    let cond = compare(key, CompareTarget::Mod, TargetUnion::ModRevision(rv));
    let resp = txn_with(store, cond, delete_op(key), side).await?;
    if !resp.succeeded {
        return Ok(Swap::Lost);
    }
    let deleted = resp.responses.first().is_some_and(
        |r| matches!(&r.response, Some(Response::ResponseDeleteRange(d)) if d.deleted > 0),
    );
    Ok(if deleted {
        Swap::Done(revision_of(&resp))
    } else {
        Swap::Lost
    })
}

/// Whether `key` exists, read linearizably.
pub async fn exists(store: &Store, key: &str) -> Result<bool> {
    let resp = store
        .range(&RangeRequest {
            key: Bytes::copy_from_slice(key.as_bytes()),
            count_only: true,
            ..Default::default()
        })
        .await?;
    Ok(resp.count > 0)
}

/// The keys under `prefix`, read linearizably.
pub async fn keys(store: &Store, prefix: &str) -> Result<Vec<String>> {
    let resp = store
        .range(&RangeRequest {
            key: Bytes::copy_from_slice(prefix.as_bytes()),
            range_end: raft_store::prefix_end(prefix.as_bytes()),
            keys_only: true,
            ..Default::default()
        })
        .await?;
    Ok(resp
        .kvs
        .iter()
        .map(|kv| String::from_utf8_lossy(&kv.key).into_owned())
        .collect())
}

/// The objects under `prefix`, read linearizably, opened with `encryption`; each carries
/// its revision as `metadata.resourceVersion`.
pub async fn read_prefix(
    store: &Store,
    encryption: Option<&Transformer>,
    prefix: &str,
) -> Result<Vec<(String, Value)>> {
    let resp = store
        .range(&RangeRequest {
            key: Bytes::copy_from_slice(prefix.as_bytes()),
            range_end: raft_store::prefix_end(prefix.as_bytes()),
            ..Default::default()
        })
        .await?;
    let mut out = Vec::with_capacity(resp.kvs.len());
    for kv in &resp.kvs {
        let key = String::from_utf8_lossy(&kv.key).into_owned();
        let obj = decode(encryption, &key, &kv.value, kv.mod_revision)?;
        out.push((key, obj));
    }
    Ok(out)
}

/// Objects under `prefix` from `start` (inclusive) as they were at `revision`, up to
/// `limit` keys (0: all), opened with `encryption`. Fails with Expired when `revision` was compacted.
pub async fn range_at(
    store: &Store,
    encryption: Option<&Transformer>,
    start: &str,
    prefix: &str,
    revision: i64,
    limit: i64,
) -> Result<(Vec<(String, Value)>, bool)> {
    let resp = store
        .range(&RangeRequest {
            key: Bytes::copy_from_slice(start.as_bytes()),
            range_end: raft_store::prefix_end(prefix.as_bytes()),
            revision,
            limit,
            serializable: true,
            ..Default::default()
        })
        .await
        .map_err(|e| match e {
            raft_store::Error::Compacted { compact_revision } => Error::Expired {
                requested: revision,
                oldest: compact_revision,
            },
            e => e.into(),
        })?;
    let mut out = Vec::with_capacity(resp.kvs.len());
    for kv in &resp.kvs {
        let key = String::from_utf8_lossy(&kv.key).into_owned();
        let obj = decode(encryption, &key, &kv.value, kv.mod_revision)?;
        out.push((key, obj));
    }
    Ok((out, resp.more))
}
