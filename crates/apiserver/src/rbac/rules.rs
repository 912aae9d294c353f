//! Does a PolicyRule allow a request, and does a binding's subject name a user: the two
//! questions every RBAC decision is made of, answered as Kubernetes answers them.

use k8s_openapi::api::rbac::v1::PolicyRule;

use crate::auth::Attributes;

/// The request, as RBAC sees it: a resource request, or a non-resource URL.
#[derive(Clone, Copy, Debug)]
pub enum Request<'a> {
    Resource(&'a Attributes<'a>),
    /// A path such as `/metrics`, and the verb (`get`, `post`, …).
    NonResource {
        path: &'a str,
        verb: &'a str,
    },
}

fn has(list: &[String], want: &str) -> bool {
    list.iter().any(|x| x == "*" || x == want)
}

/// `resources` of a rule against `resource[/subresource]`: `*`, an exact match, or
/// `*/<subresource>`.
fn resource_matches(rules: &[String], resource: &str, subresource: &str) -> bool {
    let combined = if subresource.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}/{subresource}")
    };
    rules.iter().any(|r| {
        r == "*"
            || *r == combined
            || (!subresource.is_empty() && r.strip_prefix("*/") == Some(subresource))
    })
}

/// Whether `rule` allows `req`.
pub fn allows(rule: &PolicyRule, req: &Request<'_>) -> bool {
    match req {
        Request::Resource(a) => {
            let groups = rule.api_groups.as_deref().unwrap_or_default();
            let resources = rule.resources.as_deref().unwrap_or_default();
            let names = rule.resource_names.as_deref().unwrap_or_default();
            has(&rule.verbs, a.verb)
                && has(groups, a.group)
                && resource_matches(resources, a.resource, a.subresource)
                && (names.is_empty() || (!a.name.is_empty() && names.iter().any(|n| n == a.name)))
        }
        Request::NonResource { path, verb } => {
            let urls = rule.non_resource_urls.as_deref().unwrap_or_default();
            has(&rule.verbs, verb)
                && urls.iter().any(|u| {
                    u == "*"
                        || u == path
                        || u.strip_suffix('*').is_some_and(|p| path.starts_with(p))
                })
        }
    }
}

/// Whether the rules a user holds cover every rule of `wanted`: what escalation
/// prevention asks before someone grants `wanted`.
pub fn covers(held: &[&PolicyRule], wanted: &PolicyRule) -> bool {
    let verbs = &wanted.verbs;
    if let Some(urls) = wanted
        .non_resource_urls
        .as_deref()
        .filter(|u| !u.is_empty())
    {
        return urls.iter().all(|u| {
            verbs.iter().all(|v| {
                held.iter().any(|h| {
                    allows(h, &Request::NonResource { path: u, verb: v })
                        && (!u.ends_with('*')
                            || h.non_resource_urls
                                .as_deref()
                                .unwrap_or_default()
                                .iter()
                                .any(|x| x == "*" || x == u))
                })
            })
        });
    }
    let groups = wanted.api_groups.as_deref().unwrap_or_default();
    let resources = wanted.resources.as_deref().unwrap_or_default();
    let names = wanted.resource_names.as_deref().unwrap_or_default();
    let name_list: Vec<&str> = if names.is_empty() {
        vec![""]
    } else {
        names.iter().map(String::as_str).collect()
    };
    // Each (verb, group, resource, name) the wanted rule grants must be granted by one
    // held rule, wildcards only by wildcards.
    verbs.iter().all(|v| {
        groups.iter().all(|g| {
            resources.iter().all(|r| {
                name_list.iter().all(|n| {
                    held.iter().any(|h| {
                        let hv = &h.verbs;
                        let hg = h.api_groups.as_deref().unwrap_or_default();
                        let hr = h.resources.as_deref().unwrap_or_default();
                        let hn = h.resource_names.as_deref().unwrap_or_default();
                        (hv.iter().any(|x| x == "*") || hv.iter().any(|x| x == v))
                            && (hg.iter().any(|x| x == "*") || hg.iter().any(|x| x == g))
                            && (hr.iter().any(|x| x == "*")
                                || hr.iter().any(|x| x == r)
                                || r.split_once('/').is_some_and(|(_, sub)| {
                                    hr.iter().any(|x| x.strip_prefix("*/") == Some(sub))
                                }))
                            && (hn.is_empty() || (!n.is_empty() && hn.iter().any(|x| x == n)))
                    })
                })
            })
        })
    })
}
