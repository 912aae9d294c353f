//! The audit log end to end: a Metadata rule records a Secret read without its data, and
//! a RequestResponse rule records a ConfigMap create with its body and the answer.

use std::time::Duration;

use client::Api;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use rkube_tests::{eventually, Cluster, Flavor};
use serde_json::{json, Value};

const POLICY: &str = r#"apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
- level: Metadata
  resources: [{group: "", resources: ["secrets"]}]
- level: RequestResponse
  resources: [{group: "", resources: ["configmaps"]}]
"#;

fn events(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn secrets_are_audited_without_data_and_config_maps_with_bodies() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(&policy, POLICY).unwrap();
    let log = dir.path().join("audit.log");
    let args = [
        format!("--audit-policy-file={}", policy.display()),
        format!("--audit-log-path={}", log.display()),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let cluster = Cluster::start(Flavor::Apiserver, 1, &args).await;
    let admin = cluster.api_client();
    let secrets = Api::<Secret>::namespaced(admin.clone(), "default");
    secrets
        .create(
            &serde_json::from_value(json!({"metadata": {"name": "s"},
            "stringData": {"password": "hunter2-audit-probe"}}))
            .unwrap(),
        )
        .await
        .unwrap();
    secrets.get("s").await.unwrap();
    Api::<ConfigMap>::namespaced(admin.clone(), "default")
        .create(
            &serde_json::from_value(json!({"metadata": {"name": "c"},
            "data": {"k": "configmap-body"}}))
            .unwrap(),
        )
        .await
        .unwrap();

    let found = eventually(Duration::from_secs(10), "the events are written", || {
        let all = events(&log);
        async move {
            let read = all
                .iter()
                .find(|e| e["verb"] == "get" && e["objectRef"]["resource"] == "secrets")?;
            let made = all
                .iter()
                .find(|e| e["verb"] == "create" && e["objectRef"]["resource"] == "configmaps")?;
            Some((read.clone(), made.clone()))
        }
    })
    .await;
    let (read, made) = found;
    assert_eq!(read["level"], "Metadata");
    assert_eq!(read["stage"], "ResponseComplete");
    assert_eq!(read["objectRef"]["name"], "s");
    assert_eq!(read["objectRef"]["namespace"], "default");
    assert_eq!(read["responseStatus"]["code"], 200);
    assert!(
        read["user"]["username"]
            .as_str()
            .is_some_and(|u| !u.is_empty()),
        "{read}"
    );
    assert!(read.get("requestObject").is_none() && read.get("responseObject").is_none());

    assert_eq!(made["level"], "RequestResponse");
    assert_eq!(made["responseStatus"]["code"], 201);
    assert_eq!(made["requestObject"]["data"]["k"], "configmap-body");
    assert_eq!(made["responseObject"]["metadata"]["name"], "c");

    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        !text.contains("hunter2-audit-probe"),
        "a Secret's data reached the audit log"
    );
    assert!(
        !text.contains("aHVudGVyMi1hdWRpdC1wcm9iZQ"),
        "a Secret's data reached the audit log"
    );
    assert!(
        events(&log).iter().all(|e| e["stage"] != "RequestReceived"),
        "omitStages is honoured"
    );
}
