//! The webhooks of the stored ValidatingWebhookConfigurations and
//! MutatingWebhookConfigurations, and whether a request is sent to one: its rules
//! (operations, apiGroups, apiVersions, resources with subresources, scope), its
//! namespaceSelector and its objectSelector, with Kubernetes' matching semantics.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, RuleWithOperations, ValidatingWebhookConfiguration,
    WebhookClientConfig,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde_json::Value;

use crate::admission::{AdmissionRequest, Operation};
use crate::cache::WatchCache;
use crate::registry::ResourceType;

const GROUP: &str = "admissionregistration.k8s.io";
const VALIDATING_PREFIX: &str =
    "/registry/admissionregistration.k8s.io/validatingwebhookconfigurations/";
const MUTATING_PREFIX: &str =
    "/registry/admissionregistration.k8s.io/mutatingwebhookconfigurations/";

/// Resources never sent to webhooks, so a broken webhook cannot lock out its own repair.
const NEVER_SENT: &[&str] = &[
    "validatingwebhookconfigurations",
    "mutatingwebhookconfigurations",
    "validatingadmissionpolicies",
    "validatingadmissionpolicybindings",
    "mutatingadmissionpolicies",
    "mutatingadmissionpolicybindings",
];

const DEFAULT_TIMEOUT_SECONDS: i32 = 10;
const MAX_TIMEOUT_SECONDS: i32 = 30;

/// What happens when a webhook cannot be called or gives no usable answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FailurePolicy {
    /// Refuse the request (the default).
    Fail,
    /// Admit the request as if the webhook had not matched.
    Ignore,
}

/// Which kind of configuration a webhook comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stage {
    Mutating,
    Validating,
}

/// One webhook, as both configuration kinds describe it.
#[derive(Clone, Debug)]
pub(crate) struct Hook {
    pub name: String,
    pub client: WebhookClientConfig,
    pub rules: Vec<RuleWithOperations>,
    pub failure_policy: FailurePolicy,
    pub namespace_selector: Option<LabelSelector>,
    pub object_selector: Option<LabelSelector>,
    pub timeout: Duration,
    pub review_versions: Vec<String>,
}

/// Labels as a selector sees them.
pub(crate) type Labels = BTreeMap<String, String>;

impl Hook {
    #[allow(clippy::too_many_arguments)]
    fn new(
        name: String,
        client: WebhookClientConfig,
        rules: Option<Vec<RuleWithOperations>>,
        failure_policy: Option<String>,
        namespace_selector: Option<LabelSelector>,
        object_selector: Option<LabelSelector>,
        timeout_seconds: Option<i32>,
        review_versions: Vec<String>,
    ) -> Hook {
        let secs = timeout_seconds
            .unwrap_or(DEFAULT_TIMEOUT_SECONDS)
            .clamp(1, MAX_TIMEOUT_SECONDS);
        Hook {
            name,
            client,
            rules: rules.unwrap_or_default(),
            failure_policy: match failure_policy.as_deref() {
                Some("Ignore") => FailurePolicy::Ignore,
                _ => FailurePolicy::Fail,
            },
            namespace_selector,
            object_selector,
            timeout: Duration::from_secs(secs.unsigned_abs().into()),
            review_versions,
        }
    }

    /// Whether `req` (with the object as it is now, if any) is sent to this webhook.
    /// `namespace_labels` gives the labels of a namespace by name.
    pub fn matches(
        &self,
        req: &AdmissionRequest<'_>,
        obj: Option<&Value>,
        namespace_labels: &dyn Fn(&str) -> Labels,
    ) -> Result<bool, String> {
        if !self.rules.iter().any(|r| rule_matches(r, req)) {
            return Ok(false);
        }
        if let Some(sel) = self.namespace_selector.as_ref().filter(|s| !is_empty(s)) {
            let labels = if is_namespace(req.rt) && req.subresource.is_empty() {
                // A request about a namespace is matched by that namespace's own labels.
                object_labels(obj.or(req.old))
            } else if !req.rt.namespaced {
                // Other cluster-scoped objects are in no namespace: the selector is skipped.
                None
            } else {
                Some(namespace_labels(req.namespace))
            };
            if let Some(labels) = labels {
                if !selector_matches(sel, &labels)
                    .map_err(|e| format!("{}: namespaceSelector: {e}", self.name))?
                {
                    return Ok(false);
                }
            }
        }
        if let Some(sel) = self.object_selector.as_ref().filter(|s| !is_empty(s)) {
            let mut any = false;
            for labels in [object_labels(obj), object_labels(req.old)]
                .into_iter()
                .flatten()
            {
                any |= selector_matches(sel, &labels)
                    .map_err(|e| format!("{}: objectSelector: {e}", self.name))?;
            }
            return Ok(any);
        }
        Ok(true)
    }
}

/// Every webhook of every configuration of `stage`, in the order of the configurations'
/// names and then of the webhooks within each. A configuration that cannot be read is
/// skipped (it passed the schema when it was written).
pub(crate) fn load(cache: &WatchCache, stage: Stage) -> Vec<Hook> {
    let prefix = match stage {
        Stage::Mutating => MUTATING_PREFIX,
        Stage::Validating => VALIDATING_PREFIX,
    };
    let (_, items) = cache.list(prefix, None);
    let mut hooks = Vec::new();
    for item in items {
        match parse(stage, &item.json) {
            Ok(h) => hooks.extend(h),
            Err(e) => tracing::warn!(key = %item.key, "skipping webhook configuration: {e}"),
        }
    }
    hooks
}

/// The hooks of a configuration of kind `$kind`: both kinds' webhooks carry the fields a
/// [`Hook`] is made of under the same names.
macro_rules! hooks_of {
    ($kind:ty, $json:expr) => {
        serde_json::from_slice::<$kind>($json)?
            .webhooks
            .unwrap_or_default()
            .into_iter()
            .map(|w| {
                Hook::new(
                    w.name,
                    w.client_config,
                    w.rules,
                    w.failure_policy,
                    w.namespace_selector,
                    w.object_selector,
                    w.timeout_seconds,
                    w.admission_review_versions,
                )
            })
            .collect()
    };
}

fn parse(stage: Stage, json: &[u8]) -> Result<Vec<Hook>, serde_json::Error> {
    Ok(match stage {
        Stage::Mutating => hooks_of!(MutatingWebhookConfiguration, json),
        Stage::Validating => hooks_of!(ValidatingWebhookConfiguration, json),
    })
}

/// Whether objects of `rt` are never sent to webhooks.
pub(crate) fn never_sent(rt: &ResourceType) -> bool {
    rt.group == GROUP && NEVER_SENT.contains(&rt.plural.as_str())
}

fn is_namespace(rt: &ResourceType) -> bool {
    rt.group.is_empty() && rt.plural == "namespaces"
}

pub(crate) fn operation_name(op: Operation) -> &'static str {
    match op {
        Operation::Create => "CREATE",
        Operation::Update => "UPDATE",
        Operation::Delete => "DELETE",
    }
}

fn rule_matches(rule: &RuleWithOperations, req: &AdmissionRequest<'_>) -> bool {
    let listed =
        |list: &Option<Vec<String>>, v: &str| list.iter().flatten().any(|x| x == "*" || x == v);
    listed(&rule.operations, operation_name(req.op))
        && listed(&rule.api_groups, &req.rt.group)
        && listed(&rule.api_versions, &req.rt.version)
        && resource_matches(rule, req.rt, req.subresource)
        && scope_matches(rule, req.rt)
}

/// `pods` matches the object only, `pods/status` one subresource, `pods/*` the object and
/// every subresource (a wildcard also matches "no subresource"), `*` every resource's
/// object, `*/*` everything.
fn resource_matches(rule: &RuleWithOperations, rt: &ResourceType, subresource: &str) -> bool {
    rule.resources.iter().flatten().any(|r| {
        let (res, sub) = r.split_once('/').unwrap_or((r, ""));
        (res == "*" || res == rt.plural) && (sub == "*" || sub == subresource)
    })
}

fn scope_matches(rule: &RuleWithOperations, rt: &ResourceType) -> bool {
    match rule.scope.as_deref() {
        None | Some("*") => true,
        // Namespace objects are cluster-scoped, and ResourceType says so.
        Some("Namespaced") => rt.namespaced,
        Some("Cluster") => !rt.namespaced,
        Some(_) => false,
    }
}

fn object_labels(obj: Option<&Value>) -> Option<Labels> {
    let obj = obj.filter(|o| o.is_object())?;
    Some(
        crate::object::labels(obj)
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

fn is_empty(sel: &LabelSelector) -> bool {
    sel.match_labels.as_ref().is_none_or(|m| m.is_empty())
        && sel.match_expressions.as_ref().is_none_or(|e| e.is_empty())
}

/// Whether `labels` satisfy `sel`: every matchLabels pair and every matchExpression.
pub(crate) fn selector_matches(sel: &LabelSelector, labels: &Labels) -> Result<bool, String> {
    for (k, v) in sel.match_labels.iter().flatten() {
        if labels.get(k) != Some(v) {
            return Ok(false);
        }
    }
    for e in sel.match_expressions.iter().flatten() {
        let values = e.values.as_deref().unwrap_or_default();
        let have = labels.get(&e.key);
        let ok = match e.operator.as_str() {
            "In" => have.is_some_and(|v| values.contains(v)),
            "NotIn" => have.is_none_or(|v| !values.contains(v)),
            "Exists" => have.is_some(),
            "DoesNotExist" => have.is_none(),
            other => {
                return Err(format!(
                    "matchExpressions: Unsupported value: {other:?}: supported values: \"In\", \"NotIn\", \"Exists\", \"DoesNotExist\""
                ))
            }
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
