//! Authentication and authorization: the first two stages of the request pipeline, each a
//! trait with a chain of implementations.

use std::collections::HashMap;
use std::path::Path;

use async_trait::async_trait;
use tonic::metadata::MetadataMap;

use crate::error::{Error, Result};

/// Who makes a request.
#[derive(Clone, Debug, PartialEq)]
pub struct UserInfo {
    pub name: String,
    pub uid: String,
    pub groups: Vec<String>,
}

impl UserInfo {
    pub fn anonymous() -> Self {
        UserInfo {
            name: "system:anonymous".into(),
            uid: String::new(),
            groups: vec!["system:unauthenticated".into()],
        }
    }
}

/// What a request carries that can prove who sent it.
pub struct Credentials<'a> {
    pub metadata: &'a MetadataMap,
    /// The subject of the verified client certificate: (common name, organizations).
    pub cert_subject: Option<(String, Vec<String>)>,
}

/// One way to authenticate. `Ok(None)`: this authenticator does not apply to the request.
#[async_trait]
pub trait Authenticator: Send + Sync {
    async fn authenticate(&self, creds: &Credentials<'_>) -> Result<Option<UserInfo>>;
}

/// The token of an `authorization: Bearer …` header.
pub fn bearer_token(md: &MetadataMap) -> Option<&str> {
    let h = md.get("authorization")?.to_str().ok()?;
    bearer(h)
}

/// The token of an `Authorization: Bearer TOKEN` value. The scheme is case-insensitive
/// (RFC 7235): the Python client, for one, sends `bearer`.
pub fn bearer(header: &str) -> Option<&str> {
    let (scheme, token) = header.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Bearer tokens from a CSV file as kube-apiserver's `--token-auth-file`:
/// `token,user,uid,"group1,group2"`.
pub struct StaticTokens {
    tokens: HashMap<String, UserInfo>,
}

impl StaticTokens {
    pub fn load(path: &Path) -> std::result::Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        let mut tokens = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (head, groups) = match line.split_once(",\"") {
                Some((h, g)) => (h, g.trim_end_matches('"')),
                None => (line, ""),
            };
            let f: Vec<&str> = head.split(',').map(str::trim).collect();
            if f.len() < 3 || f[0].is_empty() || f[1].is_empty() {
                return Err(format!("line {}: want token,user,uid[,\"groups\"]", i + 1));
            }
            let mut groups: Vec<String> = groups
                .split(',')
                .map(|g| g.trim().to_string())
                .filter(|g| !g.is_empty())
                .collect();
            if f.len() > 3 && groups.is_empty() {
                groups = f[3..].iter().map(|g| g.to_string()).collect();
            }
            groups.push("system:authenticated".into());
            tokens.insert(
                f[0].to_string(),
                UserInfo {
                    name: f[1].to_string(),
                    uid: f[2].to_string(),
                    groups,
                },
            );
        }
        Ok(StaticTokens { tokens })
    }
}

#[async_trait]
impl Authenticator for StaticTokens {
    async fn authenticate(&self, creds: &Credentials<'_>) -> Result<Option<UserInfo>> {
        Ok(bearer_token(creds.metadata).and_then(|t| self.tokens.get(t).cloned()))
    }
}

/// TLS client certificates: the common name is the user, organizations are groups.
pub struct ClientCertificates;

#[async_trait]
impl Authenticator for ClientCertificates {
    async fn authenticate(&self, creds: &Credentials<'_>) -> Result<Option<UserInfo>> {
        Ok(creds.cert_subject.as_ref().map(|(cn, orgs)| {
            let mut groups = orgs.clone();
            groups.push("system:authenticated".into());
            UserInfo {
                name: cn.clone(),
                uid: String::new(),
                groups,
            }
        }))
    }
}

/// Tries each authenticator in turn. A bearer token nobody accepts is refused; requests
/// without credentials pass as anonymous only when allowed.
pub struct AuthnChain {
    pub authenticators: Vec<Box<dyn Authenticator>>,
    pub allow_anonymous: bool,
}

impl AuthnChain {
    pub async fn authenticate(&self, creds: &Credentials<'_>) -> Result<UserInfo> {
        for a in &self.authenticators {
            if let Some(u) = a.authenticate(creds).await? {
                return Ok(u);
            }
        }
        if bearer_token(creds.metadata).is_some() {
            return Err(Error::Unauthorized("invalid bearer token".into()));
        }
        if self.allow_anonymous {
            Ok(UserInfo::anonymous())
        } else {
            Err(Error::Unauthorized("no credentials were presented".into()))
        }
    }
}

/// What a request wants to do, as Kubernetes' authorization attributes.
#[derive(Debug)]
pub struct Attributes<'a> {
    pub user: &'a UserInfo,
    pub verb: &'a str,
    pub group: &'a str,
    pub resource: &'a str,
    pub subresource: &'a str,
    pub namespace: &'a str,
    pub name: &'a str,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Decision {
    Allow,
    Deny,
    /// This authorizer has no opinion; the next one decides.
    NoOpinion,
}

pub trait Authorizer: Send + Sync {
    fn authorize(&self, attrs: &Attributes<'_>) -> Decision;

    /// A non-resource request: `verb` (`get`, `post`…) on `path` (`/metrics`).
    fn authorize_path(&self, _user: &UserInfo, _path: &str, _verb: &str) -> Decision {
        Decision::NoOpinion
    }
}

/// Kubernetes' `AlwaysAllow` mode.
pub struct AlwaysAllow;

impl Authorizer for AlwaysAllow {
    fn authorize(&self, _: &Attributes<'_>) -> Decision {
        Decision::Allow
    }

    fn authorize_path(&self, _: &UserInfo, _: &str, _: &str) -> Decision {
        Decision::Allow
    }
}

/// `system:masters` may do everything, whatever the other authorizers say (as
/// kube-apiserver's privileged group), so no RBAC mistake locks administrators out.
pub struct PrivilegedGroup;

impl Authorizer for PrivilegedGroup {
    fn authorize(&self, a: &Attributes<'_>) -> Decision {
        self.authorize_path(a.user, "", "")
    }

    fn authorize_path(&self, user: &UserInfo, _: &str, _: &str) -> Decision {
        if user.groups.iter().any(|g| g == pki::MASTERS_GROUP) {
            Decision::Allow
        } else {
            Decision::NoOpinion
        }
    }
}

/// The first authorizer with an opinion decides; with none, the request is denied.
pub struct AuthzChain(pub Vec<Box<dyn Authorizer>>);

impl AuthzChain {
    /// A non-resource request, e.g. `get /metrics`.
    pub fn authorize_path(&self, user: &UserInfo, path: &str, verb: &str) -> Result<()> {
        for a in &self.0 {
            match a.authorize_path(user, path, verb) {
                Decision::Allow => return Ok(()),
                Decision::Deny => break,
                Decision::NoOpinion => {}
            }
        }
        Err(Error::Forbidden(format!(
            "forbidden: User {:?} cannot {verb} path {path:?}",
            user.name
        )))
    }

    pub fn authorize(&self, attrs: &Attributes<'_>) -> Result<()> {
        for a in &self.0 {
            match a.authorize(attrs) {
                Decision::Allow => return Ok(()),
                Decision::Deny => break,
                Decision::NoOpinion => {}
            }
        }
        Err(Error::Forbidden(format!(
            "{} {:?} is forbidden: User {:?} cannot {} resource {:?} in API group {:?}{}",
            attrs.resource,
            attrs.name,
            attrs.user.name,
            attrs.verb,
            attrs.resource,
            attrs.group,
            if attrs.namespace.is_empty() {
                " at the cluster scope".to_string()
            } else {
                format!(" in the namespace {:?}", attrs.namespace)
            }
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer abc "), Some("abc"));
        assert_eq!(bearer("BEARER abc"), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer "), None);
        assert_eq!(bearer("Bearerabc"), None);
    }

    #[tokio::test]
    async fn token_file_and_chain() {
        let t = StaticTokens::parse("abc,alice,1,\"dev,ops\"\n# c\nxyz,bob,2\n").unwrap();
        let chain = AuthnChain {
            authenticators: vec![Box::new(t)],
            allow_anonymous: false,
        };
        let mut md = MetadataMap::new();
        let creds = |md: MetadataMap| {
            let chain = &chain;
            async move {
                chain
                    .authenticate(&Credentials {
                        metadata: &md,
                        cert_subject: None,
                    })
                    .await
            }
        };
        assert!(matches!(
            creds(md.clone()).await,
            Err(Error::Unauthorized(_))
        ));
        md.insert("authorization", "Bearer abc".parse().unwrap());
        let u = creds(md.clone()).await.unwrap();
        assert_eq!(u.name, "alice");
        assert_eq!(u.groups, vec!["dev", "ops", "system:authenticated"]);
        md.insert("authorization", "Bearer nope".parse().unwrap());
        assert!(matches!(creds(md).await, Err(Error::Unauthorized(_))));
        assert!(StaticTokens::parse("onlytoken\n").is_err());
    }
}
