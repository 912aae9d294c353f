//! ClusterRole aggregation: a ClusterRole with an `aggregationRule` holds the rules of
//! every other ClusterRole whose labels one of its selectors matches, in name order
//! without repeats, as Kubernetes' clusterrole-aggregation controller keeps them. Adding a
//! labelled role (say `rbac.authorization.k8s.io/aggregate-to-view: "true"`) widens every
//! role that aggregates it; removing it narrows them again.

use std::collections::BTreeMap;
use std::sync::Arc;

use client::informer::Change;
use client::reflector::ObjectKey;
use client::Api;
use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule};

use crate::context::Ctx;
use client::runtime::{backoff, Action};
use client::selectors::selector_matches;

/// The rules `role` aggregates from `roles`; None when it has no aggregation rule.
pub(crate) fn aggregated_rules(
    role: &ClusterRole,
    roles: &[Arc<ClusterRole>],
) -> Option<Vec<PolicyRule>> {
    let selectors = role
        .aggregation_rule
        .as_ref()?
        .cluster_role_selectors
        .as_ref();
    let mut sources: Vec<&ClusterRole> = roles
        .iter()
        .map(Arc::as_ref)
        .filter(|r| r.metadata.name != role.metadata.name)
        .filter(|r| {
            let labels: BTreeMap<String, String> = r.metadata.labels.clone().unwrap_or_default();
            selectors
                .into_iter()
                .flatten()
                .any(|s| selector_matches(s, &labels))
        })
        .collect();
    sources.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let mut rules: Vec<PolicyRule> = Vec::new();
    for r in sources.iter().flat_map(|r| r.rules.iter().flatten()) {
        if !rules.contains(r) {
            rules.push(r.clone());
        }
    }
    Some(rules)
}

/// Every aggregating role: any ClusterRole's change may change what they hold.
fn aggregating_roles(ctx: &Ctx) -> Vec<ObjectKey> {
    ctx.cluster_roles
        .list()
        .iter()
        .filter(|r| r.aggregation_rule.is_some())
        .map(|r| ObjectKey::of(r.as_ref()))
        .collect()
}

pub(crate) async fn run(ctx: Arc<Ctx>) {
    let (c1, c2) = (ctx.clone(), ctx.clone());
    ctx.controller_with_resync(
        "clusterrole-aggregation",
        Arc::new(move || aggregating_roles(&c1)),
    )
    .watches(ctx.cluster_roles.clone(), move |_: &Change<ClusterRole>| {
        aggregating_roles(&c2)
    })
    .run(
        |key, ctx| async move { reconcile(&ctx, key).await },
        backoff,
        ctx.clone(),
    )
    .await
}

async fn reconcile(ctx: &Ctx, key: ObjectKey) -> Result<Action, client::Error> {
    let Some(role) = ctx.cluster_roles.get(&key) else {
        return Ok(Action::AwaitChange);
    };
    let Some(rules) = aggregated_rules(&role, &ctx.cluster_roles.list()) else {
        return Ok(Action::AwaitChange);
    };
    if role
        .rules
        .as_ref()
        .map_or(rules.is_empty(), |r| *r == rules)
    {
        return Ok(Action::AwaitChange);
    }
    let mut next = (*role).clone();
    next.rules = Some(rules);
    match Api::<ClusterRole>::all(ctx.client.clone())
        .replace(&next)
        .await
    {
        Ok(_) => Ok(Action::AwaitChange),
        // The role or one it aggregates changed meanwhile: the informer brings it back.
        Err(e) if e.is_conflict() || e.is_not_found() => Ok(Action::AwaitChange),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn role(v: serde_json::Value) -> Arc<ClusterRole> {
        Arc::new(serde_json::from_value(v).unwrap())
    }

    fn rule(verb: &str) -> serde_json::Value {
        json!({"apiGroups": [""], "resources": ["pods"], "verbs": [verb]})
    }

    #[test]
    fn an_aggregating_role_holds_the_rules_of_matching_roles_in_name_order() {
        let monitoring = role(
            json!({"metadata": {"name": "monitoring"}, "aggregationRule": {
            "clusterRoleSelectors": [{"matchLabels": {"aggregate-to-monitoring": "true"}},
                                     {"matchExpressions": [{"key": "team", "operator": "In", "values": ["obs"]}]}]}}),
        );
        let roles = vec![
            monitoring.clone(),
            role(
                json!({"metadata": {"name": "b", "labels": {"aggregate-to-monitoring": "true"}},
                "rules": [rule("list"), rule("get")]}),
            ),
            role(json!({"metadata": {"name": "a", "labels": {"team": "obs"}},
                "rules": [rule("get")]})),
            role(
                json!({"metadata": {"name": "c", "labels": {"aggregate-to-monitoring": "false"}},
                "rules": [rule("delete")]}),
            ),
        ];
        let got = aggregated_rules(&monitoring, &roles).unwrap();
        let verbs: Vec<&str> = got.iter().map(|r| r.verbs[0].as_str()).collect();
        assert_eq!(
            verbs,
            ["get", "list"],
            "a's get, then b's list; b's get is a repeat"
        );
    }

    #[test]
    fn a_role_without_an_aggregation_rule_is_left_alone_and_never_aggregates_itself() {
        let plain = role(json!({"metadata": {"name": "plain"}, "rules": [rule("get")]}));
        assert!(aggregated_rules(&plain, std::slice::from_ref(&plain)).is_none());
        let selfish = role(json!({"metadata": {"name": "s", "labels": {"x": "y"}},
            "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"x": "y"}}]},
            "rules": [rule("get")]}));
        assert_eq!(
            aggregated_rules(&selfish, std::slice::from_ref(&selfish)),
            Some(vec![])
        );
    }
}
