//! What objects count against a quota.

use serde_json::json;

use super::*;

fn pod(containers: Value) -> Value {
    json!({"metadata": {"name": "p"}, "spec": {"containers": containers}})
}

#[test]
fn a_pod_is_charged_its_requests_limits_and_one_pod() {
    let p = pod(json!([
        {"name": "a", "resources": {"requests": {"cpu": "250m", "memory": "64Mi"}, "limits": {"cpu": "1"}}},
        {"name": "b", "resources": {"requests": {"cpu": "250m"}}},
    ]));
    let u = usage("", "pods", &p);
    assert_eq!(u["pods"], 1);
    assert_eq!(u["count/pods"], 1);
    assert_eq!(u["requests.cpu"], 500);
    assert_eq!(u["cpu"], 500);
    assert_eq!(u["limits.cpu"], 1000);
    assert_eq!(u["requests.memory"], 64 << 20);
    assert_eq!(u["limits.memory"], 0);
}

#[test]
fn the_largest_init_container_counts_when_it_is_more_than_the_sum() {
    let mut p = pod(json!([{"name": "a", "resources": {"requests": {"cpu": "100m"}}}]));
    p["spec"]["initContainers"] = json!([{"name": "i", "resources": {"requests": {"cpu": "2"}}}]);
    p["spec"]["overhead"] = json!({"cpu": "10m"});
    assert_eq!(usage("", "pods", &p)["requests.cpu"], 2010);
}

#[test]
fn finished_and_deleting_pods_hold_nothing() {
    let mut p = pod(json!([{"name": "a"}]));
    p["status"] = json!({"phase": "Succeeded"});
    assert!(usage("", "pods", &p).is_empty());
    let mut p = pod(json!([{"name": "a"}]));
    p["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
    assert!(usage("", "pods", &p).is_empty());
}

#[test]
fn objects_of_other_kinds_count_once() {
    assert_eq!(
        usage("apps", "deployments", &json!({}))["count/deployments.apps"],
        1
    );
    assert_eq!(usage("", "configmaps", &json!({}))["configmaps"], 1);
    let svc = json!({"spec": {"type": "LoadBalancer", "ports": [{"port": 80}, {"port": 443}]}});
    let u = usage("", "services", &svc);
    assert_eq!(
        (
            u["services"],
            u["services.nodeports"],
            u["services.loadbalancers"]
        ),
        (1, 2, 1)
    );
    let pvc = json!({"spec": {"resources": {"requests": {"storage": "1Gi"}}}});
    assert_eq!(
        usage("", "persistentvolumeclaims", &pvc)["requests.storage"],
        1 << 30
    );
}

#[test]
fn unstated_compute_resources_are_named_with_their_containers() {
    let p = pod(json!([
        {"name": "a", "resources": {"requests": {"cpu": "1"}}},
        {"name": "b"},
    ]));
    let missing = unstated(&p, &["pods", "requests.cpu", "limits.memory"]);
    assert_eq!(
        missing,
        vec![
            ("requests.cpu".to_string(), vec!["b".to_string()]),
            (
                "limits.memory".to_string(),
                vec!["a".to_string(), "b".to_string()]
            ),
        ]
    );
    assert!(unstated(&p, &["pods", "count/pods"]).is_empty());
}

#[test]
fn scopes_select_pods() {
    let best_effort = pod(json!([{"name": "a"}]));
    let burstable = pod(json!([{"name": "a", "resources": {"requests": {"cpu": "1"}}}]));
    let be = json!({"scopes": ["BestEffort"]});
    assert!(covers(&be, "", "pods", &best_effort));
    assert!(!covers(&be, "", "pods", &burstable));
    assert!(!covers(&be, "", "configmaps", &json!({})));
    assert!(covers(&json!({}), "", "configmaps", &json!({})));
    let mut terminating = best_effort.clone();
    terminating["spec"]["activeDeadlineSeconds"] = json!(30);
    assert!(covers(
        &json!({"scopes": ["Terminating"]}),
        "",
        "pods",
        &terminating
    ));
    assert!(!covers(
        &json!({"scopes": ["NotTerminating"]}),
        "",
        "pods",
        &terminating
    ));
    let high = json!({"scopeSelector": {"matchExpressions": [
        {"scopeName": "PriorityClass", "operator": "In", "values": ["high"]}]}});
    let mut p = burstable.clone();
    assert!(!covers(&high, "", "pods", &p));
    p["spec"]["priorityClassName"] = json!("high");
    assert!(covers(&high, "", "pods", &p));
}

#[test]
fn hard_limits_parse_and_bad_ones_are_named() {
    let hard =
        hard_of(&json!({"pods": "10", "requests.cpu": "2", "requests.memory": "1Gi"})).unwrap();
    assert_eq!(hard["pods"], 10);
    assert_eq!(hard["requests.cpu"], 2000);
    let err = hard_of(&json!({"pods": "ten"})).unwrap_err();
    assert!(err.contains("spec.hard[pods]"), "{err}");
    let used = Usage::from([("pods".to_string(), 3), ("requests.cpu".to_string(), 1500)]);
    assert_eq!(
        to_status(&hard, &used),
        json!({"pods": "3", "requests.cpu": "1500m", "requests.memory": "0"})
    );
}

#[test]
fn every_quota_resource_names_the_objects_it_counts() {
    let core = |p: &str| Some((String::new(), p.to_string()));
    assert_eq!(source_of("requests.cpu"), core("pods"));
    assert_eq!(source_of("limits.memory"), core("pods"));
    assert_eq!(source_of("services.nodeports"), core("services"));
    assert_eq!(
        source_of("requests.storage"),
        core("persistentvolumeclaims")
    );
    assert_eq!(source_of("count/configmaps"), core("configmaps"));
    assert_eq!(
        source_of("count/deployments.apps"),
        Some(("apps".to_string(), "deployments".to_string()))
    );
    assert_eq!(source_of("hugepages-2Mi"), None);
}
