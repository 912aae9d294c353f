//! authorization.k8s.io/v1 reviews: "may this user do that?" asked of the authorizers
//! themselves. SelfSubjectAccessReview and SelfSubjectRulesReview ask for the caller;
//! SubjectAccessReview (cluster) and LocalSubjectAccessReview (one namespace) for anyone.
//! Nothing is stored: the answer is the object's status.

use serde_json::{json, Value};

use crate::auth::{Attributes, UserInfo};
use crate::error::{Error, FieldError, Result};
use crate::handler::Api;
use crate::registry::ResourceType;

pub const GROUP: &str = "authorization.k8s.io";
const KINDS: &[&str] = &[
    "SelfSubjectAccessReview",
    "SubjectAccessReview",
    "LocalSubjectAccessReview",
    "SelfSubjectRulesReview",
];

pub fn is_review(rt: &ResourceType) -> bool {
    rt.group == GROUP && KINDS.contains(&rt.kind.as_str())
}

fn str_of<'a>(v: &'a Value, k: &str) -> &'a str {
    v[k].as_str().unwrap_or_default()
}

/// The subject a review asks about.
fn subject(kind: &str, spec: &Value, caller: &UserInfo) -> UserInfo {
    if kind.starts_with("Self") {
        return caller.clone();
    }
    UserInfo {
        name: str_of(spec, "user").to_string(),
        uid: str_of(spec, "uid").to_string(),
        groups: spec["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|g| g.as_str().map(String::from))
            .collect(),
    }
}

impl Api {
    /// Answers review `obj` of kind `rt` created by `caller` in `ns`.
    pub fn review(
        &self,
        caller: &UserInfo,
        rt: &ResourceType,
        ns: &str,
        mut obj: Value,
    ) -> Result<Value> {
        let spec = obj["spec"].clone();
        let who = subject(&rt.kind, &spec, caller);
        if rt.kind == "SelfSubjectRulesReview" {
            obj["status"] = self.rules_status(&who, str_of(&spec, "namespace"));
            return Ok(obj);
        }
        let (ra, nra) = (&spec["resourceAttributes"], &spec["nonResourceAttributes"]);
        let decision = if ra.is_object() {
            let rns = str_of(ra, "namespace");
            if rt.kind == "LocalSubjectAccessReview" && rns != ns {
                return Err(Error::invalid(
                    &rt.kind,
                    "",
                    vec![FieldError::invalid(
                        "spec.resourceAttributes.namespace",
                        rns,
                        "must match metadata.namespace",
                    )],
                ));
            }
            self.authz.authorize(&Attributes {
                user: &who,
                verb: str_of(ra, "verb"),
                group: str_of(ra, "group"),
                resource: str_of(ra, "resource"),
                subresource: str_of(ra, "subresource"),
                namespace: rns,
                name: str_of(ra, "name"),
            })
        } else if nra.is_object() {
            self.authz
                .authorize_path(&who, str_of(nra, "path"), str_of(nra, "verb"))
        } else {
            return Err(Error::invalid(
                &rt.kind,
                "",
                vec![FieldError::required("spec.resourceAttributes")],
            ));
        };
        obj["status"] = match decision {
            Ok(()) => json!({"allowed": true}),
            // As Kubernetes: a request no authorizer allows is denied without a reason.
            Err(_) => json!({"allowed": false}),
        };
        Ok(obj)
    }

    /// What `who` may do in `ns`: the RBAC rules that apply there (all of them for
    /// `system:masters`). Incomplete: the Node authorizer's decisions are not rules.
    fn rules_status(&self, who: &UserInfo, ns: &str) -> Value {
        let mut resource = Vec::new();
        let mut non_resource = Vec::new();
        if who.groups.iter().any(|g| g == pki::MASTERS_GROUP) {
            resource.push(json!({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}));
            non_resource.push(json!({"verbs": ["*"], "nonResourceURLs": ["*"]}));
        }
        if let Some(ix) = &self.rbac {
            let ix = ix.current();
            for r in ix.rules_for(who, ns) {
                let v = serde_json::to_value(r).unwrap_or_default();
                if r.non_resource_urls.as_ref().is_some_and(|u| !u.is_empty()) {
                    non_resource.push(
                        json!({"verbs": v["verbs"], "nonResourceURLs": v["nonResourceURLs"]}),
                    );
                } else {
                    let mut rr = v.clone();
                    if let Some(m) = rr.as_object_mut() {
                        m.remove("nonResourceURLs");
                    }
                    resource.push(rr);
                }
            }
        }
        json!({"resourceRules": resource, "nonResourceRules": non_resource,
               "incomplete": super::node::node_name(who).is_some()})
    }
}
