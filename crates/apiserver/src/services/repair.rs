//! The allocation repair loop, as kube-apiserver's repair controllers: every interval, the
//! Raft leader compares the allocation keys with the Services, in one snapshot. A key that
//! no Service holds (left by a write that went around the apiserver, such as a delete
//! through the etcd API) is released; a value a Service holds without a key (after a
//! restore) gets its key back. Both are compare-and-swap transactions, so a Service
//! created or deleted meanwhile is never disturbed.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use raft_store::Store;
use rkube_proto::etcd::{
    compare::{CompareTarget, TargetUnion},
    RangeRequest, TxnRequest,
};
use serde_json::Value;

use super::{held, ip_key, port_key, IP_PREFIX, PORT_PREFIX};
use crate::encryption::Transformer;
use crate::error::Result;
use crate::storage::{self, compare, delete_op, put_op};

/// What one pass changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Repaired {
    pub released: usize,
    pub restored: usize,
}

/// `(key, value, mod_revision)` under `prefix` at `revision` (0: now), and the revision read.
async fn range(
    store: &Store,
    prefix: &str,
    revision: i64,
) -> Result<(Vec<(String, Bytes, i64)>, i64)> {
    let resp = store
        .range(&RangeRequest {
            key: Bytes::copy_from_slice(prefix.as_bytes()),
            range_end: raft_store::prefix_end(prefix.as_bytes()),
            revision,
            ..Default::default()
        })
        .await?;
    let rev = resp.header.as_ref().map_or(0, |h| h.revision);
    let kvs = resp
        .kvs
        .into_iter()
        .map(|kv| {
            (
                String::from_utf8_lossy(&kv.key).into_owned(),
                kv.value,
                kv.mod_revision,
            )
        })
        .collect();
    Ok((kvs, rev))
}

/// One pass over the Services under `services_prefix`.
/// Services sealed by `encryption` are opened with it; one that does not open ends the pass,
/// since skipping it would release what it holds.
pub async fn repair_once(
    store: &Store,
    services_prefix: &str,
    encryption: Option<&Transformer>,
) -> Result<Repaired> {
    let (ips, rev) = range(store, IP_PREFIX, 0).await?;
    let (ports, _) = range(store, PORT_PREFIX, rev).await?;
    let (services, _) = range(store, services_prefix, rev).await?;
    // Allocation key → (owner, the Service's key and mod revision).
    let mut wanted: BTreeMap<String, (String, String, i64)> = BTreeMap::new();
    for (key, value, mod_rev) in &services {
        let value = storage::open(encryption, key, value)?;
        let Ok(svc) = serde_json::from_slice::<Value>(&value) else {
            continue;
        };
        let owner = format!(
            "{}/{}",
            svc["metadata"]["namespace"].as_str().unwrap_or(""),
            svc["metadata"]["name"].as_str().unwrap_or("")
        );
        let (ip, node_ports) = held(&svc);
        for k in ip
            .map(ip_key)
            .into_iter()
            .chain(node_ports.into_iter().map(port_key))
        {
            wanted.insert(k, (owner.clone(), key.clone(), *mod_rev));
        }
    }
    let mut out = Repaired::default();
    let existing: BTreeMap<&str, i64> = ips
        .iter()
        .chain(ports.iter())
        .map(|(k, _, m)| (k.as_str(), *m))
        .collect();
    for (key, mod_rev) in &existing {
        if wanted.contains_key(*key) {
            continue;
        }
        let resp = store
            .txn(TxnRequest {
                compare: vec![compare(
                    key,
                    CompareTarget::Mod,
                    TargetUnion::ModRevision(*mod_rev),
                )],
                success: vec![delete_op(key)],
                failure: vec![],
            })
            .await?;
        if resp.succeeded {
            tracing::warn!(key, "released an allocation no Service holds");
            out.released += 1;
        }
    }
    for (key, (owner, svc_key, svc_rev)) in &wanted {
        if existing.contains_key(key.as_str()) {
            continue;
        }
        let resp = store
            .txn(TxnRequest {
                compare: vec![
                    compare(key, CompareTarget::Create, TargetUnion::CreateRevision(0)),
                    compare(
                        svc_key,
                        CompareTarget::Mod,
                        TargetUnion::ModRevision(*svc_rev),
                    ),
                ],
                success: vec![put_op(key, Bytes::from(owner.clone()))],
                failure: vec![],
            })
            .await?;
        if resp.succeeded {
            tracing::warn!(key, service = %owner, "restored the allocation of a Service");
            out.restored += 1;
        }
    }
    Ok(out)
}

/// Runs [`repair_once`] every `interval` while this member leads, for a store without
/// encryption at rest.
pub async fn run(store: Store, services_prefix: String, interval: Duration) {
    run_with(store, services_prefix, interval, None).await
}

/// Runs [`repair_once`] every `interval` while this member leads, opening Services with
/// `encryption`.
pub async fn run_with(
    store: Store,
    services_prefix: String,
    interval: Duration,
    encryption: Option<Transformer>,
) {
    loop {
        tokio::time::sleep(interval).await;
        if !store.is_leader() {
            continue;
        }
        if let Err(e) = repair_once(&store, &services_prefix, encryption.as_ref()).await {
            tracing::debug!(error = %e, "allocation repair pass failed");
        }
    }
}
