//! Impersonation: a request carrying `impersonate-user` (and `impersonate-group`s) acts as
//! that user if its sender may `impersonate` that user (resource `users`, or
//! `serviceaccounts` for `system:serviceaccount:<ns>:<name>`) and each group (`groups`).

use tonic::metadata::MetadataMap;

use crate::auth::{Attributes, AuthzChain, UserInfo};
use crate::error::{Error, Result};

pub const USER: &str = "impersonate-user";
pub const GROUP: &str = "impersonate-group";

fn may(authz: &AuthzChain, user: &UserInfo, resource: &str, ns: &str, name: &str) -> Result<()> {
    authz.authorize(&Attributes {
        user,
        verb: "impersonate",
        group: "",
        resource,
        subresource: "",
        namespace: ns,
        name,
    })
}

/// The user `md` asks to act as, checked against what `real` may impersonate.
pub fn apply(authz: &AuthzChain, real: UserInfo, md: &MetadataMap) -> Result<UserInfo> {
    let groups: Vec<String> = md
        .get_all(GROUP)
        .iter()
        .filter_map(|v| v.to_str().ok().map(String::from))
        .collect();
    let Some(target) = md.get(USER).and_then(|v| v.to_str().ok()) else {
        if groups.is_empty() {
            return Ok(real);
        }
        return Err(Error::BadRequest(format!(
            "{GROUP} requires {USER}: a group cannot be impersonated alone"
        )));
    };
    let account = target
        .strip_prefix("system:serviceaccount:")
        .and_then(|r| r.split_once(':'));
    match account {
        Some((ns, name)) => may(authz, &real, "serviceaccounts", ns, name)?,
        None => may(authz, &real, "users", "", target)?,
    }
    for g in &groups {
        may(authz, &real, "groups", "", g)?;
    }
    let mut all = groups;
    if let Some((ns, _)) = account {
        all.push("system:serviceaccounts".into());
        all.push(format!("system:serviceaccounts:{ns}"));
    }
    if !all.iter().any(|g| g == "system:authenticated") {
        all.push("system:authenticated".into());
    }
    Ok(UserInfo {
        name: target.to_string(),
        uid: String::new(),
        groups: all,
    })
}
