//! The audit log end to end: a Metadata rule records a Secret read without its data, and
//! a RequestResponse rule records a ConfigMap create with its body and the answer; over
//! gRPC, and over the REST API with stock kubectl (with a forbidden impersonation, a
//! rejected token and a watch, which is recorded when it starts and when it ends).

use std::time::Duration;

use client::Api;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use rkube_tests::kubectl::Kubectl;
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

/// Starts one member auditing with `policy`; the log's path.
async fn audited_cluster(dir: &std::path::Path, policy: &str) -> (Cluster, std::path::PathBuf) {
    let policy_file = dir.join("policy.yaml");
    std::fs::write(&policy_file, policy).unwrap();
    let log = dir.join("audit.log");
    let args = [
        format!("--audit-policy-file={}", policy_file.display()),
        format!("--audit-log-path={}", log.display()),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    (Cluster::start(Flavor::Apiserver, 1, &args).await, log)
}

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
    let (cluster, log) = audited_cluster(dir.path(), POLICY).await;
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

/// Waits until the log holds an event `pick` finds.
async fn event(log: &std::path::Path, what: &str, pick: impl Fn(&Value) -> bool) -> Value {
    eventually(Duration::from_secs(10), what, || {
        let found = events(log).into_iter().find(|e| pick(e));
        async move { found }
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn rest_requests_are_audited_as_kube_apiserver_audits_them() {
    let dir = tempfile::tempdir().unwrap();
    let policy = POLICY.replace("omitStages: [\"RequestReceived\"]\n", "");
    let (cluster, log) = audited_cluster(dir.path(), &policy).await;
    let kc = rkube_tests::kubectl::admin_kubeconfig(&cluster, dir.path());
    let k = Kubectl::new("1.33", &kc);
    k.ok(&[
        "create",
        "secret",
        "generic",
        "s",
        "--from-literal=p=hunter2-rest-probe",
    ]);
    k.ok(&["get", "secret", "s", "-o", "yaml"]);
    k.ok(&["create", "configmap", "rc", "--from-literal=k=rest-body"]);
    let denied = k.fails(&["get", "configmaps", "--as=nobody"]);
    assert!(denied.contains("forbidden"), "{denied}");
    let server = format!("--server=https://{}", cluster.members[0].client);
    let ca = format!("--certificate-authority={}", cluster.pki.ca_file.display());
    let rejected = k.run(&[
        "--kubeconfig=/dev/null",
        &server,
        &ca,
        "--token=not-a-token",
        "get",
        "configmaps",
    ]);
    assert!(!rejected.status.success());

    let creates = |e: &Value, stage: &str| {
        e["verb"] == "create" && e["objectRef"]["resource"] == "configmaps" && e["stage"] == stage
    };
    let made = event(&log, "the create completes", |e| {
        creates(e, "ResponseComplete")
    })
    .await;
    let received = event(&log, "the create is received", |e| {
        creates(e, "RequestReceived")
    })
    .await;
    assert_eq!(made["auditID"], received["auditID"]);
    assert_eq!(made["level"], "RequestResponse");
    assert_eq!(made["responseStatus"]["code"], 201);
    assert_eq!(made["requestObject"]["data"]["k"], "rest-body");
    assert_eq!(made["responseObject"]["metadata"]["name"], "rc");
    assert_eq!(made["objectRef"]["namespace"], "default");
    assert!(
        made["requestURI"]
            .as_str()
            .unwrap()
            .starts_with("/api/v1/namespaces/default/configmaps"),
        "{made}"
    );
    assert!(
        made["userAgent"].as_str().unwrap().starts_with("kubectl"),
        "{made}"
    );
    assert!(
        made["sourceIPs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|ip| ip == "127.0.0.1"),
        "{made}"
    );
    assert!(received.get("requestObject").is_none(), "{received}");

    let read = event(&log, "the secret read", |e| {
        e["verb"] == "get"
            && e["objectRef"]["resource"] == "secrets"
            && e["stage"] == "ResponseComplete"
    })
    .await;
    assert_eq!(
        (
            read["level"].as_str(),
            read["responseStatus"]["code"].as_u64()
        ),
        (Some("Metadata"), Some(200))
    );
    assert!(read.get("responseObject").is_none(), "{read}");

    let forbidden = event(&log, "the impersonated list", |e| {
        e.get("impersonatedUser").is_some() && e["stage"] == "ResponseComplete"
    })
    .await;
    assert_eq!(forbidden["impersonatedUser"]["username"], "nobody");
    assert_ne!(forbidden["user"]["username"], "nobody");
    assert_eq!(forbidden["responseStatus"]["code"], 403);
    assert_eq!(forbidden["responseStatus"]["reason"], "Forbidden");

    // kubectl stops at its first request (discovery, or the list when its discovery
    // cache is warm) when its token is rejected.
    let unauthenticated = event(&log, "the rejected token", |e| {
        e["responseStatus"]["code"] == 401
    })
    .await;
    assert_eq!(unauthenticated["responseStatus"]["reason"], "Unauthorized");
    assert!(
        unauthenticated["user"]
            .get("username")
            .is_none_or(|u| u == ""),
        "{unauthenticated}"
    );

    // A watch is recorded when it starts, and again only when it ends.
    let mut watcher = k
        .command(&["get", "configmaps", "--watch-only"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let watch = |stage: &'static str| move |e: &Value| e["verb"] == "watch" && e["stage"] == stage;
    let started = event(&log, "the watch starts", watch("ResponseStarted")).await;
    assert_eq!(started["responseStatus"]["code"], 200);
    let id = started["auditID"].clone();
    // Events are written in order: once a later request's is in, so would a completion be.
    k.ok(&["get", "configmap", "rc"]);
    event(&log, "a later read", |e| {
        e["verb"] == "get" && e["objectRef"]["name"] == "rc" && e["stage"] == "ResponseComplete"
    })
    .await;
    let still_open = events(&log)
        .iter()
        .all(|e| e["auditID"] != id || e["stage"] != "ResponseComplete");
    watcher.kill().unwrap();
    watcher.wait().unwrap();
    assert!(
        still_open,
        "the watch was recorded as complete while it ran"
    );
    let ended = event(&log, "the watch ends", |e| {
        e["auditID"] == id && e["stage"] == "ResponseComplete"
    })
    .await;
    assert_eq!(ended["verb"], "watch");

    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        !text.contains("hunter2-rest-probe") && !text.contains("aHVudGVyMi1yZXN0LXByb2Jl"),
        "a Secret's data reached the audit log"
    );
}
