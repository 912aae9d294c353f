//! What a REST URL addresses: discovery documents, or a resource with its group, version,
//! namespace, name and subresource, as Kubernetes lays out its paths.

/// A parsed request path.
#[derive(Debug, PartialEq)]
pub enum Path {
    /// `/api`: the core group's versions.
    LegacyVersions,
    /// `/apis`: every group.
    Groups,
    /// `/apis/<group>`: one group's versions.
    Group(String),
    /// `/api/v1` or `/apis/<group>/<version>`: the resources of one group-version.
    Resources { group: String, version: String },
    /// A resource, a collection or a subresource.
    Target(Target),
}

/// A resource request: `/api/v1/namespaces/default/pods/web/status`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Target {
    pub group: String,
    pub version: String,
    /// Empty for cluster-scoped requests and for lists across namespaces.
    pub namespace: String,
    /// The plural resource name: `pods`.
    pub resource: String,
    /// Empty for collections.
    pub name: String,
    /// Empty for the object itself; otherwise `status`, `scale`, `log`, …
    pub subresource: String,
}

impl Target {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

/// Parses a URL path (without the query). `None` for paths outside the API.
pub fn parse(path: &str) -> Option<Path> {
    let segs: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    match segs.as_slice() {
        ["api"] => Some(Path::LegacyVersions),
        ["apis"] => Some(Path::Groups),
        ["apis", g] => Some(Path::Group(g.to_string())),
        ["api", v] => Some(Path::Resources {
            group: String::new(),
            version: v.to_string(),
        }),
        ["apis", g, v] => Some(Path::Resources {
            group: g.to_string(),
            version: v.to_string(),
        }),
        ["api", v, rest @ ..] => target("", v, rest).map(Path::Target),
        ["apis", g, v, rest @ ..] => target(g, v, rest).map(Path::Target),
        _ => None,
    }
}

fn target(group: &str, version: &str, rest: &[&str]) -> Option<Target> {
    let mut t = Target {
        group: group.to_string(),
        version: version.to_string(),
        ..Default::default()
    };
    let is_namespace_sub = |s: &str| matches!(s, "status" | "finalize");
    let rest = match rest {
        // The namespaces themselves: `namespaces`, `namespaces/<name>`,
        // `namespaces/<name>/status`.
        ["namespaces"] | ["namespaces", _] => rest,
        ["namespaces", _, sub] if group.is_empty() && is_namespace_sub(sub) => rest,
        ["namespaces", ns, tail @ ..] => {
            t.namespace = ns.to_string();
            tail
        }
        _ => rest,
    };
    match rest {
        [resource] => t.resource = resource.to_string(),
        [resource, name] => {
            t.resource = resource.to_string();
            t.name = name.to_string();
        }
        [resource, name, sub] => {
            t.resource = resource.to_string();
            t.name = name.to_string();
            t.subresource = sub.to_string();
        }
        _ => return None,
    }
    if t.resource.is_empty() {
        return None;
    }
    Some(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(g: &str, v: &str, ns: &str, r: &str, n: &str, s: &str) -> Option<Path> {
        Some(Path::Target(Target {
            group: g.into(),
            version: v.into(),
            namespace: ns.into(),
            resource: r.into(),
            name: n.into(),
            subresource: s.into(),
        }))
    }

    #[test]
    fn paths() {
        let cases = [
            ("/api", Some(Path::LegacyVersions)),
            ("/apis", Some(Path::Groups)),
            ("/apis/apps", Some(Path::Group("apps".into()))),
            (
                "/api/v1",
                Some(Path::Resources {
                    group: "".into(),
                    version: "v1".into(),
                }),
            ),
            ("/api/v1/pods", t("", "v1", "", "pods", "", "")),
            ("/api/v1/namespaces", t("", "v1", "", "namespaces", "", "")),
            (
                "/api/v1/namespaces/a",
                t("", "v1", "", "namespaces", "a", ""),
            ),
            (
                "/api/v1/namespaces/a/status",
                t("", "v1", "", "namespaces", "a", "status"),
            ),
            (
                "/api/v1/namespaces/a/pods",
                t("", "v1", "a", "pods", "", ""),
            ),
            (
                "/api/v1/namespaces/a/pods/p/log",
                t("", "v1", "a", "pods", "p", "log"),
            ),
            (
                "/apis/apps/v1/namespaces/a/deployments/d/scale",
                t("apps", "v1", "a", "deployments", "d", "scale"),
            ),
            ("/apis/rbac.authorization.k8s.io/v1/clusterroles/x", {
                t(
                    "rbac.authorization.k8s.io",
                    "v1",
                    "",
                    "clusterroles",
                    "x",
                    "",
                )
            }),
            ("/api/v1/namespaces/a/pods/p/log/extra", None),
            ("/healthz", None),
        ];
        for (p, want) in cases {
            assert_eq!(parse(p), want, "{p}");
        }
    }
}
