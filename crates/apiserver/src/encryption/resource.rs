//! Which stored values a `resources[].resources` entry covers: `secrets` (the core group),
//! `deployments.apps`, every resource of a group (`*.apps`, and `*.` for the core group), or
//! everything (`*.*`). Keys are `/registry/<group, or core>/<plural>/...`, as
//! [`crate::registry::ResourceType::prefix`] builds them.

use std::fmt;

/// One entry of `resources[].resources`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Resource {
    /// One resource of one group (`""` for the core group).
    One { group: String, plural: String },
    /// Every resource of a group.
    Group(String),
    /// Every resource.
    All,
}

/// Why a resource name is refused.
const FORMAT: &str = "must be a lowercase resource name with its group (secrets, deployments.apps), '*.<group>', '*.' for the core group, or '*.*'";

impl Resource {
    /// The entry `s`, or why it is not one.
    pub(super) fn parse(s: &str) -> Result<Self, String> {
        let valid = |part: &str| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-.".contains(&b))
        };
        if s == "*" {
            return Err(FORMAT.into());
        }
        let (plural, group) = s.split_once('.').unwrap_or((s, ""));
        let group_ok = group.is_empty() || valid(group) || group == "*";
        if !group_ok {
            return Err(FORMAT.into());
        }
        match (plural, group) {
            ("*", "*") => Ok(Resource::All),
            ("*", g) => Ok(Resource::Group(g.to_string())),
            (_, "*") => Err(format!(
                "{FORMAT}: a wildcard group needs a wildcard resource"
            )),
            (p, g) if valid(p) && !p.contains('.') => Ok(Resource::One {
                group: g.to_string(),
                plural: p.to_string(),
            }),
            _ => Err(FORMAT.into()),
        }
    }

    /// Whether this entry covers the resource `plural` of `group`.
    pub(super) fn matches(&self, group: &str, plural: &str) -> bool {
        match self {
            Resource::All => true,
            Resource::Group(g) => g == group,
            Resource::One {
                group: g,
                plural: p,
            } => g == group && p == plural,
        }
    }

    /// Whether every resource `other` covers is covered by this entry too.
    pub(super) fn covers(&self, other: &Resource) -> bool {
        match (self, other) {
            (Resource::All, _) => true,
            (Resource::Group(g), Resource::Group(h)) => g == h,
            (Resource::Group(g), Resource::One { group, .. }) => g == group,
            (Resource::One { .. }, Resource::One { .. }) => self == other,
            _ => false,
        }
    }
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Resource::All => f.write_str("*.*"),
            Resource::Group(g) => write!(f, "*.{g}"),
            Resource::One { group, plural } if group.is_empty() => f.write_str(plural),
            Resource::One { group, plural } => write!(f, "{plural}.{group}"),
        }
    }
}

/// The group (`""` for core) and plural of the object stored at `etcd_key`; None for keys
/// that hold no resource.
pub(super) fn of_key(etcd_key: &str) -> Option<(&str, &str)> {
    let rest = etcd_key.strip_prefix(crate::cache::REGISTRY_PREFIX)?;
    let mut parts = rest.splitn(3, '/');
    let group = match parts.next()? {
        "core" => "",
        g => g,
    };
    let plural = parts.next()?;
    parts.next()?;
    Some((group, plural))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(group: &str, plural: &str) -> Resource {
        Resource::One {
            group: group.into(),
            plural: plural.into(),
        }
    }

    #[test]
    fn parse_table() {
        let cases: &[(&str, Option<Resource>)] = &[
            ("secrets", Some(one("", "secrets"))),
            ("secrets.", Some(one("", "secrets"))),
            ("deployments.apps", Some(one("apps", "deployments"))),
            (
                "pandas.awesome.bears.example",
                Some(one("awesome.bears.example", "pandas")),
            ),
            ("*.apps", Some(Resource::Group("apps".into()))),
            ("*.", Some(Resource::Group(String::new()))),
            ("*.*", Some(Resource::All)),
            ("*", None),
            ("", None),
            ("Secrets", None),
            ("secrets.*", None),
            ("sec/rets", None),
            ("*.Apps", None),
        ];
        for (s, want) in cases {
            assert_eq!(Resource::parse(s).ok(), *want, "{s:?}");
        }
    }

    #[test]
    fn keys_map_to_group_and_plural() {
        assert_eq!(
            of_key("/registry/core/secrets/default/s"),
            Some(("", "secrets"))
        );
        assert_eq!(
            of_key("/registry/apps/deployments/default/d"),
            Some(("apps", "deployments"))
        );
        assert_eq!(
            of_key("/registry/core/namespaces/default"),
            Some(("", "namespaces"))
        );
        assert_eq!(of_key("/registry/core/secrets"), None);
        assert_eq!(of_key("/rkube/internal/service-account-signing-key"), None);
    }

    #[test]
    fn wildcards_cover_what_they_name() {
        let secrets = one("", "secrets");
        assert!(Resource::All.covers(&Resource::Group("apps".into())));
        assert!(Resource::Group(String::new()).covers(&secrets));
        assert!(!Resource::Group("apps".into()).covers(&secrets));
        assert!(!secrets.covers(&Resource::Group(String::new())));
        assert!(secrets.covers(&secrets.clone()));
        assert!(Resource::Group(String::new()).matches("", "configmaps"));
        assert!(!secrets.matches("", "configmaps"));
    }
}
