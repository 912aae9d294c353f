//! Escalation prevention, as Kubernetes has it: nobody creates a role granting, or binds
//! a role holding, permissions they do not hold themselves, unless they may `escalate`
//! (roles) or `bind` (that role). `system:masters` may.

use std::sync::Arc;

use async_trait::async_trait;
use k8s_openapi::api::rbac::v1::PolicyRule;
use serde_json::Value;

use super::index::{Index, SharedIndex};
use super::rules::{self, Request};
use crate::admission::{AdmissionRequest, Operation, ValidatingAdmission};
use crate::auth::{Attributes, UserInfo};
use crate::error::{Error, Result};

pub const GROUP: &str = "rbac.authorization.k8s.io";

pub struct RbacEscalation {
    pub index: Arc<SharedIndex>,
}

fn may(ix: &Index, user: &UserInfo, verb: &str, resource: &str, ns: &str, name: &str) -> bool {
    let a = Attributes {
        user,
        verb,
        group: GROUP,
        resource,
        subresource: "",
        namespace: ns,
        name,
    };
    ix.allows(user, ns, &Request::Resource(&a))
}

fn not_held(held: &[&PolicyRule], wanted: &[PolicyRule]) -> Vec<String> {
    wanted
        .iter()
        .filter(|w| !rules::covers(held, w))
        .map(|w| serde_json::to_string(w).unwrap_or_default())
        .collect()
}

#[async_trait]
impl ValidatingAdmission for RbacEscalation {
    fn name(&self) -> &'static str {
        "RBACEscalation"
    }

    async fn validate(&self, req: &AdmissionRequest<'_>, obj: &Value) -> Result<()> {
        if req.rt.group != GROUP
            || !matches!(req.op, Operation::Create | Operation::Update)
            || req.user.groups.iter().any(|g| g == pki::MASTERS_GROUP)
        {
            return Ok(());
        }
        let ix = self.index.current();
        let ns = req.namespace;
        let held = ix.rules_for(req.user, ns);
        let (missing, what) = match req.rt.kind.as_str() {
            "Role" | "ClusterRole" => {
                let wanted: Vec<PolicyRule> =
                    serde_json::from_value(obj["rules"].clone()).unwrap_or_default();
                if may(&ix, req.user, "escalate", &req.rt.plural, ns, req.name) {
                    return Ok(());
                }
                (not_held(&held, &wanted), "grant")
            }
            "RoleBinding" | "ClusterRoleBinding" => {
                let (kind, role) = (
                    obj["roleRef"]["kind"].as_str().unwrap_or_default(),
                    obj["roleRef"]["name"].as_str().unwrap_or_default(),
                );
                let resource = if kind == "Role" {
                    "roles"
                } else {
                    "clusterroles"
                };
                if may(&ix, req.user, "bind", resource, ns, role) {
                    return Ok(());
                }
                let wanted: Vec<PolicyRule> = match kind {
                    "ClusterRole" => ix.cluster_role(role).map(<[_]>::to_vec).unwrap_or_default(),
                    _ => ix.role(ns, role).map(<[_]>::to_vec).unwrap_or_default(),
                };
                (not_held(&held, &wanted), "bind")
            }
            _ => return Ok(()),
        };
        if missing.is_empty() {
            return Ok(());
        }
        Err(Error::Forbidden(format!(
            "{}.{GROUP} {:?} is forbidden: user {:?} (groups={:?}) is attempting to {what} RBAC \
             permissions not currently held:\n{}",
            req.rt.plural,
            req.name,
            req.user.name,
            req.user.groups,
            missing.join("\n")
        )))
    }
}
