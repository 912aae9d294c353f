//! The checks run on a finished run: linearizability, no acknowledged write lost, gap-free
//! watches, and identical state on every member.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use bytes::Bytes;
use rkube_proto::etcd::maintenance_client::MaintenanceClient;
use rkube_proto::etcd::HashKvRequest;

use super::watch::Seen;
use super::workload::{etcd_key, API_KEY_BASE};
use crate::linearizability::{self, Op, OpKind, Verdict};

/// Linearizability of the whole history; on a violation, the shortest failing history.
pub fn linearizable(history: &[Op]) -> Result<(), String> {
    match linearizability::check(history) {
        Verdict::Linearizable => Ok(()),
        Verdict::Inconclusive { key, ops } => Err(format!(
            "the linearizability search for key {key} ({ops} operations) exceeded its budget: no verdict"
        )),
        Verdict::Violation { key, ops } => {
            let mut s = format!(
                "history of key {key} is not linearizable; shortest failing history ({} ops):\n",
                ops.len()
            );
            for o in &ops {
                let done = o.complete.map_or("unknown".to_string(), |c| {
                    format!("{:.3} ms", c as f64 / 1e6)
                });
                s.push_str(&format!(
                    "  client {:>4}  [{:.3} ms .. {done}]  {:?}\n",
                    o.client,
                    o.invoke as f64 / 1e6,
                    o.kind
                ));
            }
            Err(s)
        }
    }
}

/// The key an op's key id is stored under.
fn stored_key(k: u32) -> Bytes {
    if k >= API_KEY_BASE {
        Bytes::from(format!(
            "/registry/core/configmaps/default/chaos-k{}",
            k - API_KEY_BASE
        ))
    } else {
        etcd_key(k)
    }
}

/// The value an event carries for a key id (the rkube API stores JSON with `data.v`).
fn value_of(k: u32, v: &[u8]) -> Option<u64> {
    if k >= API_KEY_BASE {
        let j: serde_json::Value = serde_json::from_slice(v).ok()?;
        j["data"]["v"].as_str()?.parse().ok()
    } else {
        std::str::from_utf8(v).ok()?.parse().ok()
    }
}

/// The revision at which each (key, value) was committed.
fn committed_values(history: &[Seen]) -> HashMap<(Bytes, u64), i64> {
    history
        .iter()
        .filter_map(|(rev, key, value)| {
            let k = if key.starts_with(b"/chaos/k") {
                std::str::from_utf8(&key[8..]).ok()?.parse::<u32>().ok()?
            } else if key.starts_with(b"/registry/core/configmaps/default/chaos-k") {
                API_KEY_BASE + std::str::from_utf8(&key[41..]).ok()?.parse::<u32>().ok()?
            } else {
                return None;
            };
            Some(((key.clone(), value_of(k, value)?), *rev))
        })
        .collect()
}

fn written(o: &Op) -> Option<u64> {
    match o.kind {
        OpKind::Put(v) | OpKind::Cas { new: v, .. } => Some(v),
        OpKind::Get(_) => None,
    }
}

/// Settles writes whose outcome the client never learned, from the committed history (as
/// etcd's robustness tests do from the WAL). Every written value is unique, so:
/// - a write whose value is not in the history never took effect and is dropped;
/// - one whose value is there took effect at its revision R, so it happened before any
///   acknowledged write of a later revision returned: that bounds its return time.
///
/// Without this, every such write would stay pending forever and the search would explore
/// outcomes the store has already ruled out.
pub fn resolve_unknown_writes(ops: Vec<Op>, history: &[Seen]) -> Vec<Op> {
    let committed = committed_values(history);
    let revision_of = |o: &Op| committed.get(&(stored_key(o.key), written(o)?)).copied();
    // Return times of acknowledged writes by revision; the earliest return at or after each.
    let mut acked: Vec<(i64, u64)> = ops
        .iter()
        .filter(|o| {
            o.complete.is_some()
                && matches!(o.kind, OpKind::Put(_) | OpKind::Cas { ok: Some(true), .. })
        })
        .filter_map(|o| Some((revision_of(o)?, o.complete?)))
        .collect();
    acked.sort();
    let mut earliest_after = vec![u64::MAX; acked.len() + 1];
    for i in (0..acked.len()).rev() {
        earliest_after[i] = earliest_after[i + 1].min(acked[i].1);
    }
    ops.into_iter()
        .filter_map(|mut o| {
            if o.complete.is_some() {
                return Some(o);
            }
            let rev = revision_of(&o)?;
            if let OpKind::Cas { ok, .. } = &mut o.kind {
                *ok = Some(true);
            }
            if matches!(o.kind, OpKind::Get(_)) {
                return None;
            }
            let i = acked.partition_point(|(r, _)| *r <= rev);
            let bound = earliest_after[i];
            o.complete = (bound != u64::MAX).then_some(bound);
            Some(o)
        })
        .collect()
}

/// Every acknowledged write is in the committed history.
pub fn nothing_lost(acked: &[(u32, u64)], history: &[Seen]) -> Result<(), String> {
    let committed = committed_values(history);
    let lost: Vec<&(u32, u64)> = acked
        .iter()
        .filter(|(k, v)| !committed.contains_key(&(stored_key(*k), *v)))
        .collect();
    if lost.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} acknowledged writes are not in the committed history, e.g. {:?}",
            lost.len(),
            &lost[..lost.len().min(5)]
        ))
    }
}

/// A watcher's events: revisions never going back, no event twice (a transaction's events
/// share its revision, each for another key: the apiserver writes a Service and its
/// address's allocation key in one), and exactly the committed history from its start
/// revision on.
pub fn watch_complete(name: &str, seen: &[Seen], history: &[Seen]) -> Result<(), String> {
    let mut keys_at_revision: HashSet<&[u8]> = HashSet::new();
    for (i, s) in seen.iter().enumerate() {
        let prev = i.checked_sub(1).map(|p| &seen[p]);
        if let Some(p) = prev {
            if s.0 < p.0 {
                return Err(format!(
                    "{name}: revision {} came after {} (out of order)",
                    s.0, p.0
                ));
            }
            if s.0 != p.0 {
                keys_at_revision.clear();
            }
        }
        if !keys_at_revision.insert(&s.1) {
            return Err(format!(
                "{name}: revision {} came twice for key {:?} (duplicate)",
                s.0,
                String::from_utf8_lossy(&s.1)
            ));
        }
    }
    let Some(first) = seen.first().map(|s| s.0) else {
        return Err(format!("{name}: received nothing"));
    };
    let last = seen.last().map_or(0, |s| s.0);
    let expected: Vec<&Seen> = history
        .iter()
        .filter(|h| h.0 >= first && h.0 <= last)
        .collect();
    if expected.len() != seen.len() {
        let have: HashSet<i64> = seen.iter().map(|s| s.0).collect();
        let missing: Vec<i64> = expected
            .iter()
            .map(|h| h.0)
            .filter(|r| !have.contains(r))
            .take(5)
            .collect();
        let committed: HashSet<i64> = expected.iter().map(|h| h.0).collect();
        let extra: Vec<&Seen> = seen
            .iter()
            .filter(|s| !committed.contains(&s.0))
            .take(5)
            .collect();
        return Err(format!(
            "{name}: {} events between revisions {first} and {last}, the committed history has {}; missing e.g. {missing:?}; not in the history e.g. {extra:?}",
            seen.len(),
            expected.len()
        ));
    }
    for (a, b) in seen.iter().zip(expected) {
        if a != b {
            return Err(format!(
                "{name}: event at revision {} differs from the committed history",
                a.0
            ));
        }
    }
    Ok(())
}

/// Every member holds the same history up to one revision (etcd's HashKV).
pub async fn identical_state(members: &[String], revision: i64) -> Result<(), String> {
    let mut hashes = Vec::new();
    for m in members {
        let ch = super::channel(m);
        let mut last_err = String::new();
        let mut got = None;
        for _ in 0..50 {
            match MaintenanceClient::new(ch.clone())
                .hash_kv(HashKvRequest { revision })
                .await
            {
                Ok(r) => {
                    got = Some(r.into_inner().hash);
                    break;
                }
                Err(e) => {
                    last_err = e.message().to_string();
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        hashes.push((
            m.clone(),
            got.ok_or_else(|| format!("{m}: HashKV failed: {last_err}"))?,
        ));
    }
    if hashes.windows(2).all(|w| w[0].1 == w[1].1) {
        Ok(())
    } else {
        Err(format!("members differ at revision {revision}: {hashes:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(rev: i64, key: &str) -> Seen {
        (rev, Bytes::from(key.to_string()), Bytes::from_static(b"v"))
    }

    #[test]
    fn a_transactions_events_share_a_revision_but_none_repeats_or_goes_back() {
        let history = vec![
            ev(5, "/a"),
            ev(6, "/registry/s"),
            ev(6, "/rkube/ip"),
            ev(7, "/a"),
        ];
        assert_eq!(watch_complete("w", &history, &history), Ok(()));
        let twice = vec![ev(5, "/a"), ev(6, "/registry/s"), ev(6, "/registry/s")];
        let e = watch_complete("w", &twice, &history).unwrap_err();
        assert!(e.contains("revision 6 came twice"), "{e}");
        let back = vec![ev(6, "/registry/s"), ev(5, "/a")];
        let e = watch_complete("w", &back, &history).unwrap_err();
        assert!(e.contains("revision 5 came after 6"), "{e}");
        let missing = vec![ev(5, "/a"), ev(6, "/registry/s"), ev(7, "/a")];
        assert!(watch_complete("w", &missing, &history).is_err());
    }
}
