//! The RBAC authorizer: allows what some rule bound to the user allows; otherwise has no
//! opinion (RBAC never denies; the chain does when nobody allows).

use std::sync::Arc;

use super::index::SharedIndex;
use super::rules::Request;
use crate::auth::{Attributes, Authorizer, Decision, UserInfo};

pub struct RbacAuthorizer {
    pub index: Arc<SharedIndex>,
}

impl Authorizer for RbacAuthorizer {
    fn authorize(&self, a: &Attributes<'_>) -> Decision {
        if self
            .index
            .current()
            .allows(a.user, a.namespace, &Request::Resource(a))
        {
            Decision::Allow
        } else {
            Decision::NoOpinion
        }
    }

    fn authorize_path(&self, user: &UserInfo, path: &str, verb: &str) -> Decision {
        if self
            .index
            .current()
            .allows(user, "", &Request::NonResource { path, verb })
        {
            Decision::Allow
        } else {
            Decision::NoOpinion
        }
    }
}
