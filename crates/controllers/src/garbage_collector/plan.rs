//! What the garbage collector decides for one object, as pure functions of its metadata,
//! its dependents and which of its owners still exist.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use super::{FOREGROUND, ORPHAN};

/// What to do for an owner being deleted with a finalizer the collector serves.
#[derive(Debug, PartialEq)]
pub(crate) enum Finalizing<K> {
    /// `orphan`: each dependent keeps its other owner references; then the finalizer goes.
    Orphan {
        dependents: Vec<(K, Vec<OwnerReference>)>,
        finalizers: Vec<String>,
    },
    /// `foregroundDeletion`: the dependents not yet being deleted are deleted (foreground
    /// too); the finalizer goes once no dependent blocks the owner's deletion.
    Foreground {
        delete: Vec<K>,
        finalizers: Option<Vec<String>>,
    },
}

/// What to do for an owner being deleted, given its dependents; None when it carries no
/// finalizer of the collector's (or is not being deleted).
pub(crate) fn finalizing<K: Clone>(
    m: &ObjectMeta,
    dependents: &[(K, ObjectMeta)],
) -> Option<Finalizing<K>> {
    m.deletion_timestamp.as_ref()?;
    let uid = m.uid.clone().unwrap_or_default();
    let finalizers = m.finalizers.clone().unwrap_or_default();
    let without = |f: &str| {
        finalizers
            .iter()
            .filter(|x| *x != f)
            .cloned()
            .collect::<Vec<_>>()
    };
    if finalizers.iter().any(|f| f == ORPHAN) {
        let dependents = dependents
            .iter()
            .map(|(k, dm)| {
                let refs = dm
                    .owner_references
                    .iter()
                    .flatten()
                    .filter(|r| r.uid != uid);
                (k.clone(), refs.cloned().collect())
            })
            .collect();
        return Some(Finalizing::Orphan {
            dependents,
            finalizers: without(ORPHAN),
        });
    }
    if !finalizers.iter().any(|f| f == FOREGROUND) {
        return None;
    }
    let delete = dependents
        .iter()
        .filter(|(_, dm)| dm.deletion_timestamp.is_none())
        .map(|(k, _)| k.clone())
        .collect();
    let blocking = dependents.iter().any(|(_, dm)| {
        dm.owner_references
            .iter()
            .flatten()
            .any(|r| r.uid == uid && r.block_owner_deletion == Some(true))
    });
    Some(Finalizing::Foreground {
        delete,
        finalizers: (!blocking).then(|| without(FOREGROUND)),
    })
}

/// What to do for a dependent given which of its owners exist.
#[derive(Debug, PartialEq)]
pub(crate) enum Owners {
    /// Every owner is gone: delete it (in the background).
    Collect,
    /// Some owners are gone: keep the references to these.
    Keep(Vec<OwnerReference>),
    Nothing,
}

/// `alive[i]` says whether the owner `m.ownerReferences[i]` names exists.
pub(crate) fn owners(m: &ObjectMeta, alive: &[bool]) -> Owners {
    let refs = m.owner_references.clone().unwrap_or_default();
    let kept: Vec<OwnerReference> = refs
        .iter()
        .zip(alive)
        .filter(|(_, a)| **a)
        .map(|(r, _)| r.clone())
        .collect();
    if refs.is_empty() || kept.len() == refs.len() {
        Owners::Nothing
    } else if kept.is_empty() {
        match m.deletion_timestamp {
            Some(_) => Owners::Nothing,
            None => Owners::Collect,
        }
    } else {
        Owners::Keep(kept)
    }
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
