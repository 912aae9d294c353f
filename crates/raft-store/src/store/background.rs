//! Background loops of a member: lease expiry and automatic compaction (leader only), and
//! publishing the member's own attributes.

use std::time::Duration;

use rkube_proto::raft::{store_request::Op, MemberAttributes, StoreRequest};

use super::Store;

const TICK: Duration = Duration::from_millis(200);

pub(super) fn spawn_all(store: &Store) {
    let weak = std::sync::Arc::downgrade(&store.inner);
    let t = tokio::spawn(async move {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut published = false;
        loop {
            tick.tick().await;
            let Some(inner) = weak.upgrade() else { return };
            let store = Store { inner };
            if !published {
                published = publish_attributes(&store).await;
            }
            if store.is_leader() {
                expire_leases(&store).await;
                auto_compact(&store).await;
            } else {
                store.inner.lessor.clear();
            }
        }
    });
    store.spawn(t);
}

/// Publishes name and client URLs through Raft, as an etcd member does when it starts.
async fn publish_attributes(store: &Store) -> bool {
    let attrs = MemberAttributes {
        id: store.id(),
        name: store.name().to_string(),
        client_urls: store.config().client_urls.clone(),
    };
    if store.inner.sm.mvcc.read().members.get(&attrs.id) == Some(&attrs) {
        return true;
    }
    if store.leader().is_none() {
        return false;
    }
    store.write(Op::MemberAttributes(attrs)).await.is_ok()
}

async fn expire_leases(store: &Store) {
    let leases: Vec<(i64, i64)> = store
        .inner
        .sm
        .mvcc
        .read()
        .leases
        .iter()
        .map(|(id, l)| (*id, l.ttl))
        .collect();
    let term = store.term();
    let expired = store.inner.lessor.expired(term, &leases);
    if !expired.is_empty() {
        if let Err(e) = store.lease_expire(expired).await {
            tracing::warn!(error = %e, "lease expiry not committed; retrying");
        }
    }
}

/// Keeps `auto_compaction_retention` revisions; compacts in steps of a tenth of that.
async fn auto_compact(store: &Store) {
    let keep = store.config().auto_compaction_retention;
    if keep <= 0 {
        return;
    }
    let (rev, compacted) = {
        let m = store.inner.sm.mvcc.read();
        (m.revision, m.compact_revision)
    };
    let target = rev - keep;
    if target > compacted + (keep / 10).max(1) {
        let req = StoreRequest {
            op: Some(Op::Compact(rkube_proto::etcd::CompactionRequest {
                revision: target,
                physical: true,
            })),
        };
        if let Err(e) = store.write_local(req).await {
            tracing::warn!(error = %e, "automatic compaction failed");
        }
    }
}
