//! ResourceQuota admission: an object is created only if every quota of its namespace that
//! covers it has room, and the quotas' `status.used` is raised in the same store
//! transaction as the create, guarded by each quota's revision. Two creates that race for
//! the last unit through different members cannot both commit: the loser's transaction
//! fails its compare and is evaluated again against the new usage. The quota controller
//! lowers `status.used` again when objects go away.
//!
//! Unlike the chained plugins, this one runs inside the create's retry loop, because what
//! it decides is part of the write.

use std::collections::HashMap;
use std::sync::Arc;

use api_model::quantity::format_for;
use api_model::quota::{self, Usage};
use parking_lot::Mutex;
use raft_store::Store;
use serde_json::Value;

use crate::cache::WatchCache;
use crate::encryption::Transformer;
use crate::error::{Error, Result};
use crate::object;
use crate::registry::ResourceType;
use crate::storage;

/// Where a namespace's quotas are stored.
pub fn prefix(namespace: &str) -> String {
    format!("/registry/core/resourcequotas/{namespace}/")
}

pub struct ResourceQuota {
    pub cache: Arc<WatchCache>,
    /// One lock per namespace with quotas: creates through this member take turns, so they
    /// race only with other members' creates, not with each other.
    turns: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// A quota rewritten with a create: its key, the revision it must still be at, its new value.
pub type Charge = (String, i64, Value);

impl ResourceQuota {
    pub fn new(cache: Arc<WatchCache>) -> Self {
        ResourceQuota {
            cache,
            turns: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `namespace` has quotas, as far as this member's cache knows.
    fn has_quotas(&self, namespace: &str) -> bool {
        !namespace.is_empty() && !self.cache.list(&prefix(namespace), None).1.is_empty()
    }

    /// Waits for this member's turn to create in `namespace`, when it has quotas.
    pub async fn turn(&self, namespace: &str) -> Option<tokio::sync::OwnedMutexGuard<()>> {
        if !self.has_quotas(namespace) {
            return None;
        }
        let lock = self
            .turns
            .lock()
            .entry(namespace.into())
            .or_default()
            .clone();
        Some(lock.lock_owned().await)
    }

    /// The quota rewrites that creating `obj` needs, read at the store's current revision;
    /// Forbidden, naming the quota, when one has no room.
    pub async fn charge(
        &self,
        store: &Store,
        encryption: Option<&Transformer>,
        rt: &ResourceType,
        namespace: &str,
        obj: &Value,
    ) -> Result<Vec<Charge>> {
        if !rt.namespaced || !self.has_quotas(namespace) {
            return Ok(vec![]);
        }
        let usage = quota::usage(&rt.group, &rt.plural, obj);
        if usage.is_empty() {
            return Ok(vec![]);
        }
        let mut out = Vec::new();
        for (key, mut q) in storage::read_prefix(store, encryption, &prefix(namespace)).await? {
            let Some(used) = Self::evaluate(rt, obj, &usage, &q)? else {
                continue;
            };
            let rv = object::resource_version(&q).parse().unwrap_or(0);
            q["status"]["used"] = used;
            out.push((key, rv, q));
        }
        Ok(out)
    }

    /// The quota's new `status.used` with `usage` added; None when it does not cover the
    /// object or limits nothing the object uses.
    fn evaluate(rt: &ResourceType, obj: &Value, usage: &Usage, q: &Value) -> Result<Option<Value>> {
        let qname = object::name(q);
        if !quota::covers(&q["spec"], &rt.group, &rt.plural, obj) {
            return Ok(None);
        }
        let hard = quota::hard_of(&q["spec"]["hard"]).map_err(Error::Internal)?;
        let tracked: Vec<&str> = hard
            .keys()
            .map(String::as_str)
            .filter(|r| usage.contains_key(*r))
            .collect();
        if tracked.is_empty() {
            return Ok(None);
        }
        let forbidden = |why: String| {
            Error::Forbidden(format!(
                "{} {:?} is forbidden: {why}",
                rt.qualified(),
                object::name(obj)
            ))
        };
        if rt.group.is_empty() && rt.plural == "pods" {
            let missing = quota::unstated(obj, &tracked);
            if !missing.is_empty() {
                let what: Vec<String> = missing
                    .iter()
                    .map(|(r, cs)| format!("{r} for: {}", cs.join(",")))
                    .collect();
                return Err(forbidden(format!(
                    "failed quota: {qname}: must specify {}",
                    what.join("; ")
                )));
            }
        }
        let mut used = quota::hard_of(&q["status"]["used"]).map_err(Error::Internal)?;
        if let Some(r) = tracked.iter().find(|r| !used.contains_key(**r)) {
            return Err(forbidden(format!(
                "status unknown for quota: {qname}, resource: {r}"
            )));
        }
        let over: Vec<&str> = tracked
            .iter()
            .copied()
            .filter(|r| used[*r] + usage[*r] > hard[*r])
            .collect();
        if !over.is_empty() {
            let list = |m: &Usage| {
                over.iter()
                    .map(|r| format!("{r}={}", format_for(r, m[*r])))
                    .collect::<Vec<_>>()
                    .join(",")
            };
            return Err(forbidden(format!(
                "exceeded quota: {qname}, requested: {}, used: {}, limited: {}",
                list(usage),
                list(&used),
                list(&hard)
            )));
        }
        for r in tracked {
            *used.entry(r.to_string()).or_default() += usage[r];
        }
        let mut status = q["status"]["used"].clone();
        for (r, v) in &used {
            if usage.contains_key(r) && hard.contains_key(r) {
                status[r] = Value::String(format_for(r, *v));
            }
        }
        Ok(Some(status))
    }
}
