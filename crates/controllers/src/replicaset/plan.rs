//! What the ReplicaSet controller decides for one ReplicaSet (or ReplicationController),
//! as pure functions of it, the pods of its namespace and the time: which pods it claims,
//! adopts and releases, how many to create (in slow-start batches) or which to delete,
//! the status, and when to look again.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::ReplicaSetStatus;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::View;
use crate::pods::{self, controller_ref};
use client::selectors::selector_matches;

/// Creates in flight at most, per ReplicaSet and pass (Kubernetes' burst).
pub(crate) const BURST: usize = 500;

/// The pods of a namespace as one ReplicaSet sees them.
#[derive(Debug, Default)]
pub(crate) struct Claims {
    /// Active pods it controls and still selects.
    pub owned: Vec<Arc<Pod>>,
    /// Orphans it selects, to adopt.
    pub adopt: Vec<Arc<Pod>>,
    /// Pods it controls but no longer selects, to release.
    pub release: Vec<Arc<Pod>>,
}

/// Sorts the active pods of a namespace into what the ReplicaSet with `owner_uid` and
/// `selector` owns, adopts and releases. A ReplicaSet being deleted adopts nothing, and
/// no pod being deleted is adopted or counted.
pub(crate) fn claims(
    pods: &[Arc<Pod>],
    selector: &LabelSelector,
    owner_uid: &str,
    deleting: bool,
) -> Claims {
    let mut c = Claims::default();
    for p in pods.iter().filter(|p| pods::is_active(p)) {
        let labels = p.metadata.labels.clone().unwrap_or_default();
        let matches = selector_matches(selector, &labels);
        match controller_ref(&p.metadata) {
            Some(r) if r.uid == owner_uid && matches && !pods::is_deleting(p) => {
                c.owned.push(p.clone())
            }
            Some(r) if r.uid == owner_uid && matches => {}
            Some(r) if r.uid == owner_uid => c.release.push(p.clone()),
            Some(_) => {}
            None if matches && !deleting && !pods::is_deleting(p) => c.adopt.push(p.clone()),
            None => {}
        }
    }
    c
}

/// How many pods to create, or which to delete, for `active` to become `desired`.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Scale {
    /// At most [`BURST`].
    pub create: usize,
    /// The names of the pods to give up first, as Kubernetes ranks them.
    pub delete: Vec<String>,
}

/// Scales toward `desired` unless the ReplicaSet is being deleted or earlier creates and
/// deletes are not yet seen (`expectations_met`).
pub(crate) fn scale(
    active: &[Arc<Pod>],
    desired: usize,
    deleting: bool,
    expectations_met: bool,
) -> Scale {
    if deleting || !expectations_met {
        return Scale::default();
    }
    if active.len() < desired {
        return Scale {
            create: (desired - active.len()).min(BURST),
            delete: vec![],
        };
    }
    let mut ranked: Vec<&Arc<Pod>> = active.iter().collect();
    ranked.sort_by_key(|p| pods::deletion_rank(p));
    Scale {
        create: 0,
        delete: ranked
            .iter()
            .take(active.len() - desired)
            .map(|p| p.metadata.name.clone().unwrap_or_default())
            .collect(),
    }
}

/// Slow start: creates go in batches of 1, 2, 4, … so a create that fails fails once,
/// not `n` times.
pub(crate) fn slow_start(n: usize) -> Vec<usize> {
    let (mut batches, mut batch, mut done) = (Vec::new(), 1, 0);
    while done < n {
        let size = batch.min(n - done);
        batches.push(size);
        done += size;
        batch *= 2;
    }
    batches
}

/// The status `active` gives, None when `view` already says so; and, when ready pods are
/// still to become available, when to look again.
pub(crate) fn status(
    view: &View,
    active: &[Arc<Pod>],
    generation: Option<i64>,
    now_s: i64,
) -> (Option<ReplicaSetStatus>, Option<Duration>) {
    let min_ready = view.min_ready_seconds;
    let ready = active.iter().filter(|p| pods::is_ready(p)).count() as i32;
    let available = active
        .iter()
        .filter(|p| pods::is_available(p, min_ready, now_s))
        .count() as i32;
    let template_labels = view
        .template
        .as_ref()
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let fully_labeled = active
        .iter()
        .filter(|p| {
            let l = p.metadata.labels.clone().unwrap_or_default();
            template_labels.iter().all(|(k, v)| l.get(k) == Some(v))
        })
        .count() as i32;
    let replicas = active.len() as i32;
    let now = (replicas, fully_labeled, ready, available, generation);
    // Ready pods become available minReadySeconds later: look again then.
    let requeue =
        (min_ready > 0 && ready > available).then(|| Duration::from_secs(min_ready as u64));
    if view.status == now {
        return (None, requeue);
    }
    let status = ReplicaSetStatus {
        replicas,
        fully_labeled_replicas: Some(fully_labeled),
        ready_replicas: Some(ready),
        available_replicas: Some(available),
        observed_generation: generation,
        ..Default::default()
    };
    (Some(status), requeue)
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
