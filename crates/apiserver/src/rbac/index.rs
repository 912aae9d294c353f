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

/// Who a binding's subject is, as a request's user is looked up: a user name (service
/// accounts by their user name) or a group.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Who {
    User(String),
    Group(String),
}

/// A binding as seen from one of its subjects: where it applies ("" for a
/// ClusterRoleBinding) and what it grants.
struct Grant {
    namespace: String,
    role_ref: RoleRef,
}

/// The RBAC objects of one revision of the cache. Bindings are indexed by subject, so a
/// decision costs a lookup per name and group of the user, however many bindings exist.
#[derive(Default)]
pub struct Index {
    cluster_roles: HashMap<String, Vec<PolicyRule>>,
    roles: HashMap<(String, String), Vec<PolicyRule>>,
    grants: HashMap<Who, Vec<Grant>>,
}

/// The key a subject of a binding in `binding_ns` is found under.
fn who(s: &Subject, binding_ns: &str) -> Option<Who> {
    match s.kind.as_str() {
        "User" => Some(Who::User(s.name.clone())),
        "Group" => Some(Who::Group(s.name.clone())),
        "ServiceAccount" => {
            let ns = s
                .namespace
                .as_deref()
                .filter(|n| !n.is_empty())
                .unwrap_or(binding_ns);
            Some(Who::User(format!("system:serviceaccount:{ns}:{}", s.name)))
        }
        _ => None,
    }
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
                        ix.grant(&b.subjects.unwrap_or_default(), "", b.role_ref);
                    }
                }
                "rolebindings" => {
                    if let Some(b) = decode::<RoleBinding>(c) {
                        ix.grant(&b.subjects.unwrap_or_default(), &c.namespace, b.role_ref);
                    }
                }
                _ => {}
            }
        }
        ix
    }

    fn grant(&mut self, subjects: &[Subject], namespace: &str, role_ref: RoleRef) {
        for s in subjects {
            if let Some(w) = who(s, namespace) {
                self.grants.entry(w).or_default().push(Grant {
                    namespace: namespace.to_string(),
                    role_ref: role_ref.clone(),
                });
            }
        }
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
        self.visit(user, ns, |rules| {
            out.extend(rules);
            false
        });
        out
    }

    /// Calls `f` with the rules of each binding of `user` that applies in `ns` (cluster
    /// bindings everywhere), until `f` returns true; returns whether it did.
    fn visit<'a>(
        &'a self,
        user: &UserInfo,
        ns: &str,
        mut f: impl FnMut(&'a [PolicyRule]) -> bool,
    ) -> bool {
        let names = std::iter::once(Who::User(user.name.clone()))
            .chain(user.groups.iter().map(|g| Who::Group(g.clone())));
        for w in names {
            for g in self.grants.get(&w).into_iter().flatten() {
                let applies = g.namespace.is_empty() || (!ns.is_empty() && g.namespace == ns);
                if applies && f(self.role_rules(&g.role_ref, &g.namespace)) {
                    return true;
                }
            }
        }
        false
    }

    /// Whether any rule `user` holds (cluster-wide, or in the request's namespace) allows it.
    pub fn allows(&self, user: &UserInfo, ns: &str, req: &Request<'_>) -> bool {
        self.visit(user, ns, |rules| {
            rules.iter().any(|r| rules::allows(r, req))
        })
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
