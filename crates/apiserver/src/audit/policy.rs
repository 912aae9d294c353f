//! The audit policy (`--audit-policy-file`, `audit.k8s.io/v1` `Policy`, YAML or JSON) and
//! how a request is matched against it: the first rule that matches decides the level and
//! the stages left out; a request no rule matches is not audited.

use serde::Deserialize;

use super::{Error, Level, Result, Stage};
use crate::auth::UserInfo;
use crate::error::FieldError;

/// The only `apiVersion` accepted.
pub const API_VERSION: &str = "audit.k8s.io/v1";
/// The only `kind` accepted.
pub const KIND: &str = "Policy";

const LEVELS: &[&str] = &["None", "Metadata", "Request", "RequestResponse"];
const STAGES: &[&str] = &[
    "RequestReceived",
    "ResponseStarted",
    "ResponseComplete",
    "Panic",
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct File {
    #[serde(default)]
    api_version: String,
    #[serde(default)]
    kind: String,
    #[serde(default, rename = "metadata")]
    _metadata: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    omit_stages: Vec<String>,
    #[serde(default)]
    omit_managed_fields: bool,
    #[serde(default)]
    rules: Vec<RuleSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RuleSpec {
    #[serde(default)]
    level: String,
    #[serde(default)]
    users: Vec<String>,
    #[serde(default)]
    user_groups: Vec<String>,
    #[serde(default)]
    verbs: Vec<String>,
    #[serde(default)]
    resources: Vec<GroupResources>,
    #[serde(default)]
    namespaces: Vec<String>,
    #[serde(default, rename = "nonResourceURLs")]
    non_resource_urls: Vec<String>,
    #[serde(default)]
    omit_stages: Vec<String>,
    #[serde(default)]
    omit_managed_fields: Option<bool>,
}

/// A group and resources in it, as a rule names them.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GroupResources {
    /// The API group; empty is the core group.
    #[serde(default)]
    pub group: String,
    /// `pods`, `pods/status`, `*`, `*/status` or `pods/*`; empty is every resource.
    #[serde(default)]
    pub resources: Vec<String>,
    /// Empty is every name.
    #[serde(default)]
    pub resource_names: Vec<String>,
}

/// One rule; empty lists match everything.
#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    pub level: Level,
    pub users: Vec<String>,
    pub user_groups: Vec<String>,
    pub verbs: Vec<String>,
    pub resources: Vec<GroupResources>,
    pub namespaces: Vec<String>,
    pub non_resource_urls: Vec<String>,
    /// The rule's own stages with the policy's added.
    pub omit_stages: Vec<Stage>,
    pub omit_managed_fields: bool,
}

/// What the policy sees of a request: Kubernetes' authorization attributes.
#[derive(Clone, Copy, Debug)]
pub struct Attributes<'a> {
    /// None when authentication failed.
    pub user: Option<&'a UserInfo>,
    pub verb: &'a str,
    pub api_group: &'a str,
    pub resource: &'a str,
    pub subresource: &'a str,
    pub namespace: &'a str,
    pub name: &'a str,
    /// The path of a non-resource request (`/healthz`); None for resource requests.
    pub path: Option<&'a str>,
}

/// What the policy decides for one request.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    pub level: Level,
    pub omit_stages: Vec<Stage>,
    pub omit_managed_fields: bool,
}

/// A parsed, validated policy.
#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    pub rules: Vec<Rule>,
    pub omit_stages: Vec<Stage>,
    pub omit_managed_fields: bool,
}

impl Policy {
    /// Reads and checks the policy file at `path`.
    pub fn load(path: &std::path::Path) -> Result<Policy> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Policy::parse(&text).map_err(|e| Error::InFile {
            path: path.to_path_buf(),
            source: Box::new(e),
        })
    }

    /// The policy in `text` (YAML or JSON).
    pub fn parse(text: &str) -> Result<Policy> {
        let de = serde_yaml_ng::Deserializer::from_str(text);
        let file: File = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let field = if path == "." {
                "(document)".into()
            } else {
                path
            };
            Error::Decode {
                field,
                reason: e.into_inner().to_string(),
            }
        })?;
        from_file(file)
    }

    /// The level of a request, and the stages not to record: the first matching rule's,
    /// or level None.
    pub fn decide(&self, attrs: &Attributes<'_>) -> Decision {
        match self.rules.iter().find(|r| r.matches(attrs)) {
            Some(r) => Decision {
                level: r.level,
                omit_stages: r.omit_stages.clone(),
                omit_managed_fields: r.omit_managed_fields,
            },
            None => Decision {
                level: Level::None,
                omit_stages: self.omit_stages.clone(),
                omit_managed_fields: self.omit_managed_fields,
            },
        }
    }
}

fn from_file(file: File) -> Result<Policy> {
    let mut errs = Vec::new();
    for (field, have, want) in [
        ("apiVersion", &file.api_version, API_VERSION),
        ("kind", &file.kind, KIND),
    ] {
        if have.is_empty() {
            errs.push(FieldError::required(field));
        } else if have != want {
            errs.push(FieldError::not_supported(field, have.as_str(), &[want]));
        }
    }
    let omit_stages = stages(&file.omit_stages, "omitStages", &mut errs);
    let omf = file.omit_managed_fields;
    let rules: Vec<Rule> = file
        .rules
        .into_iter()
        .enumerate()
        .map(|(i, r)| rule(r, &format!("rules[{i}]"), &omit_stages, omf, &mut errs))
        .collect();
    if rules.is_empty() && errs.is_empty() {
        errs.push(FieldError::required("rules"));
    }
    if !errs.is_empty() {
        return Err(Error::Invalid(errs));
    }
    Ok(Policy {
        rules,
        omit_stages,
        omit_managed_fields: omf,
    })
}

fn rule(
    r: RuleSpec,
    path: &str,
    policy_omit: &[Stage],
    policy_omit_managed_fields: bool,
    errs: &mut Vec<FieldError>,
) -> Rule {
    let level = match r.level.as_str() {
        "" => {
            errs.push(FieldError::required(format!("{path}.level")));
            Level::None
        }
        l => Level::parse(l).unwrap_or_else(|| {
            errs.push(FieldError::not_supported(
                format!("{path}.level"),
                l,
                LEVELS,
            ));
            Level::None
        }),
    };
    check_non_resource_urls(&r, path, errs);
    check_resources(&r, path, errs);
    let mut omit = stages(&r.omit_stages, &format!("{path}.omitStages"), errs);
    for s in policy_omit {
        if !omit.contains(s) {
            omit.push(*s);
        }
    }
    Rule {
        level,
        users: r.users,
        user_groups: r.user_groups,
        verbs: r.verbs,
        resources: r.resources,
        namespaces: r.namespaces,
        non_resource_urls: r.non_resource_urls,
        omit_stages: omit,
        omit_managed_fields: r.omit_managed_fields.unwrap_or(policy_omit_managed_fields),
    }
}

/// Non-resource URLs are paths, with a wildcard only at the end, and a rule has them or
/// resources, not both.
fn check_non_resource_urls(r: &RuleSpec, path: &str, errs: &mut Vec<FieldError>) {
    for (i, url) in r.non_resource_urls.iter().enumerate() {
        let field = format!("{path}.nonResourceURLs[{i}]");
        if url == "*" {
            continue;
        }
        if !url.starts_with('/') {
            errs.push(FieldError::invalid(
                &field,
                url,
                "non-resource URL rules must begin with a '/' character",
            ));
        }
        if url[..url.len().saturating_sub(1)].contains('*') {
            errs.push(FieldError::invalid(
                &field,
                url,
                "non-resource URL wildcards '*' must be the final character of the rule",
            ));
        }
    }
    if !r.non_resource_urls.is_empty() && (!r.resources.is_empty() || !r.namespaces.is_empty()) {
        errs.push(FieldError::invalid(
            format!("{path}.nonResourceURLs"),
            format!("[{}]", r.non_resource_urls.join(", ")),
            "rules cannot apply to both regular resources and non-resource URLs",
        ));
    }
}

/// Resource groups are DNS subdomains, and resource names come with resources.
fn check_resources(r: &RuleSpec, path: &str, errs: &mut Vec<FieldError>) {
    for (i, gr) in r.resources.iter().enumerate() {
        let field = format!("{path}.resources[{i}]");
        if !gr.group.is_empty() && !is_dns_subdomain(&gr.group) {
            errs.push(FieldError::invalid(
                format!("{field}.group"),
                &gr.group,
                "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
            ));
        }
        if !gr.resource_names.is_empty() && gr.resources.is_empty() {
            errs.push(FieldError::invalid(
                format!("{field}.resourceNames"),
                format!("[{}]", gr.resource_names.join(", ")),
                "using resourceNames requires at least one resource",
            ));
        }
    }
}

fn stages(names: &[String], path: &str, errs: &mut Vec<FieldError>) -> Vec<Stage> {
    let mut out = Vec::new();
    for (i, n) in names.iter().enumerate() {
        match Stage::parse(n) {
            Some(s) if !out.contains(&s) => out.push(s),
            Some(_) => {}
            None => errs.push(FieldError::invalid(
                format!("{path}[{i}]"),
                n,
                format!("allowed stages are {}", STAGES.join(",")),
            )),
        }
    }
    out
}

fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

impl Rule {
    fn matches(&self, a: &Attributes<'_>) -> bool {
        if !self.users.is_empty() && !a.user.is_some_and(|u| self.users.contains(&u.name)) {
            return false;
        }
        if !self.user_groups.is_empty()
            && !a
                .user
                .is_some_and(|u| u.groups.iter().any(|g| self.user_groups.contains(g)))
        {
            return false;
        }
        if !self.verbs.is_empty() && !self.verbs.iter().any(|v| v == a.verb) {
            return false;
        }
        if !self.namespaces.is_empty() || !self.resources.is_empty() {
            return a.path.is_none() && self.matches_resource(a);
        }
        if !self.non_resource_urls.is_empty() {
            return a
                .path
                .is_some_and(|p| self.non_resource_urls.iter().any(|s| path_matches(p, s)));
        }
        true
    }

    fn matches_resource(&self, a: &Attributes<'_>) -> bool {
        // Cluster-scoped requests have the empty namespace, which a rule may list.
        if !self.namespaces.is_empty() && !self.namespaces.iter().any(|n| n == a.namespace) {
            return false;
        }
        if self.resources.is_empty() {
            return true;
        }
        self.resources
            .iter()
            .filter(|gr| gr.group == a.api_group)
            .any(|gr| gr.matches(a))
    }
}

impl GroupResources {
    fn matches(&self, a: &Attributes<'_>) -> bool {
        if self.resources.is_empty() {
            return true;
        }
        if !self.resource_names.is_empty() && !self.resource_names.iter().any(|n| n == a.name) {
            return false;
        }
        self.resources.iter().any(|r| {
            if r == "*" {
                return true;
            }
            match r.split_once('/') {
                None => a.subresource.is_empty() && r == a.resource,
                Some(("*", sub)) => !a.subresource.is_empty() && sub == a.subresource,
                Some((res, "*")) => res == a.resource,
                Some((res, sub)) => res == a.resource && sub == a.subresource,
            }
        })
    }
}

fn path_matches(path: &str, spec: &str) -> bool {
    spec == "*"
        || spec == path
        || spec
            .strip_suffix('*')
            .is_some_and(|prefix| path.starts_with(prefix))
}

#[cfg(test)]
#[path = "policy_tests.rs"]
mod tests;
