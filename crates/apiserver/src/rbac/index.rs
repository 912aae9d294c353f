//! Every Role, ClusterRole and binding, in memory, rebuilt from the watch cache whenever
//! one of them changes: an authorization decision reads this index and never the store.

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};
use parking_lot::RwLock;
use serde::de::DeserializeOwned;

use super::rules::{self, Request};
use crate::auth::UserInfo;
use crate::cache::{Cached, Msg, WatchCache};

pub const PREFIX: &str = "/registry/rbac.authorization.k8s.io/";

struct Binding {
    subjects: Vec<Subject>,
    role_ref: RoleRef,
}

/// The RBAC objects of one revision of the cache.
#[derive(Default)]
pub struct Index {
    cluster_roles: HashMap<String, Vec<PolicyRule>>,
    roles: HashMap<(String, String), Vec<PolicyRule>>,
    cluster_bindings: Vec<Binding>,
    bindings: HashMap<String, Vec<Binding>>,
}

fn decode<K: DeserializeOwned>(c: &Cached) -> Option<K> {
    serde_json::from_slice(&c.json).ok()
}

impl Index {
    pub fn build(items: &[Arc<Cached>]) -> Index {
        let mut ix = Index::default();
        let kind_of = |key: &str| {
            key.strip_prefix(PREFIX)
                .and_then(|rest| rest.split('/').next())
                .unwrap_or_default()
                .to_string()
        };
        for c in items {
            match kind_of(&c.key).as_str() {
                "clusterroles" => {
                    if let Some(r) = decode::<ClusterRole>(c) {
                        ix.cluster_roles
                            .insert(c.name.clone(), r.rules.unwrap_or_default());
                    }
                }
                "roles" => {
                    if let Some(r) = decode::<Role>(c) {
                        ix.roles.insert(
                            (c.namespace.clone(), c.name.clone()),
                            r.rules.unwrap_or_default(),
                        );
                    }
                }
                "clusterrolebindings" => {
                    if let Some(b) = decode::<ClusterRoleBinding>(c) {
                        ix.cluster_bindings.push(Binding {
                            subjects: b.subjects.unwrap_or_default(),
                            role_ref: b.role_ref,
                        });
                    }
                }
                "rolebindings" => {
                    if let Some(b) = decode::<RoleBinding>(c) {
                        ix.bindings
                            .entry(c.namespace.clone())
                            .or_default()
                            .push(Binding {
                                subjects: b.subjects.unwrap_or_default(),
                                role_ref: b.role_ref,
                            });
                    }
                }
                _ => {}
            }
        }
        ix
    }

    fn role_rules(&self, r: &RoleRef, ns: &str) -> &[PolicyRule] {
        let rules = match r.kind.as_str() {
            "ClusterRole" => self.cluster_roles.get(&r.name),
            "Role" => self.roles.get(&(ns.to_string(), r.name.clone())),
            _ => None,
        };
        rules.map_or(&[], Vec::as_slice)
    }

    /// Every rule `user` holds in namespace `ns` ("" for cluster-wide rules only).
    pub fn rules_for<'a>(&'a self, user: &UserInfo, ns: &str) -> Vec<&'a PolicyRule> {
        let mut out: Vec<&PolicyRule> = Vec::new();
        for b in &self.cluster_bindings {
            if b.subjects.iter().any(|s| rules::names(s, "", user)) {
                out.extend(self.role_rules(&b.role_ref, ""));
            }
        }
        if !ns.is_empty() {
            for b in self.bindings.get(ns).into_iter().flatten() {
                if b.subjects.iter().any(|s| rules::names(s, ns, user)) {
                    out.extend(self.role_rules(&b.role_ref, ns));
                }
            }
        }
        out
    }

    /// Whether any rule `user` holds (cluster-wide, or in the request's namespace) allows it.
    pub fn allows(&self, user: &UserInfo, ns: &str, req: &Request<'_>) -> bool {
        self.rules_for(user, ns)
            .iter()
            .any(|r| rules::allows(r, req))
    }

    /// The rules of Role `ns/name`.
    pub fn role(&self, ns: &str, name: &str) -> Option<&[PolicyRule]> {
        self.roles
            .get(&(ns.to_string(), name.to_string()))
            .map(Vec::as_slice)
    }

    /// The rules of a ClusterRole (for aggregation and escalation checks).
    pub fn cluster_role(&self, name: &str) -> Option<&[PolicyRule]> {
        self.cluster_roles.get(name).map(Vec::as_slice)
    }
}

/// The current index, swapped whole after each change.
#[derive(Default)]
pub struct SharedIndex(RwLock<Arc<Index>>);

impl SharedIndex {
    pub fn current(&self) -> Arc<Index> {
        self.0.read().clone()
    }

    /// Rebuilds the index from the cache at start and after every change under the RBAC
    /// prefix (a burst of changes costs one rebuild).
    pub async fn run(self: Arc<Self>, cache: Arc<WatchCache>) {
        loop {
            let (mut sub, items) = cache.snapshot(PREFIX);
            *self.0.write() = Arc::new(Index::build(&items));
            loop {
                match sub.rx.recv().await {
                    Ok(Msg::Event(e)) if e.obj.key.starts_with(PREFIX) => {
                        // Drain what else is queued before rebuilding.
                        while let Ok(m) = sub.rx.try_recv() {
                            drop(m);
                        }
                        break;
                    }
                    Ok(_) => {}
                    // Lagged or closed: rebuild from a fresh snapshot.
                    Err(_) => break,
                }
            }
        }
    }
}
