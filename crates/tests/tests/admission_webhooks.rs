//! Dynamic admission control end to end: an HTTPS webhook server in this test, trusted
//! through the caBundle of its configurations, denies ConfigMaps labelled `deny=yes` (a
//! ValidatingWebhookConfiguration that calls it by URL) and labels ConfigMaps labelled
//! `mutate=yes` (a MutatingWebhookConfiguration that calls it through a Service). Once
//! the server is gone, `failurePolicy: Fail` refuses and `Ignore` admits.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use client::{Api, ApiObject, Client};
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::core::v1::{ConfigMap, Endpoints, Namespace, Service};
use rkube_tests::webhook_server::{self, WebhookServer};
use rkube_tests::{Cluster, Flavor};
use serde_json::{json, Value};
use tonic::Code;

const DENY_HOOK: &str = "deny.hooks.test";
const MUTATE_HOOK: &str = "mutate.hooks.test";
const DENY_MESSAGE: &str = "ConfigMaps labelled deny=yes are refused";

/// The webhook's decision on one AdmissionReview.
fn review(path: &str, body: &[u8]) -> Value {
    let review: Value = serde_json::from_slice(body).unwrap_or_default();
    let req = &review["request"];
    let labels = &req["object"]["metadata"]["labels"];
    let mut response = json!({"uid": req["uid"], "allowed": true});
    match path.split('?').next().unwrap_or("") {
        "/validate" if labels["deny"] == "yes" => {
            response["allowed"] = false.into();
            response["status"] = json!({"code": 403, "message": DENY_MESSAGE});
        }
        "/mutate" if labels["mutate"] == "yes" => {
            let patch =
                json!([{"op": "add", "path": "/metadata/labels/mutated", "value": "by-webhook"}]);
            response["patchType"] = "JSONPatch".into();
            response["patch"] = base64::engine::general_purpose::STANDARD
                .encode(patch.to_string())
                .into();
        }
        _ => {}
    }
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response})
}

fn obj<K: ApiObject>(v: Value) -> K {
    serde_json::from_value(v).unwrap()
}

fn config_map(name: &str, labels: Value) -> ConfigMap {
    obj(json!({"metadata": {"name": name, "labels": labels}, "data": {"k": "v"}}))
}

fn webhook(name: &str, client_config: Value, policy: &str, selector: Value) -> Value {
    json!({
        "name": name,
        "clientConfig": client_config,
        "rules": [{"operations": ["CREATE", "UPDATE"], "apiGroups": [""],
                   "apiVersions": ["v1"], "resources": ["configmaps"], "scope": "Namespaced"}],
        "objectSelector": {"matchLabels": selector},
        "failurePolicy": policy,
        "sideEffects": "None",
        "admissionReviewVersions": ["v1"],
        "timeoutSeconds": 5,
    })
}

/// The webhook configurations, and the Service (with its Endpoints) the mutating one
/// calls.
async fn configure(admin: &Client, hook: &WebhookServer) {
    let ca = base64::engine::general_purpose::STANDARD.encode(&hook.ca_pem);
    Api::<Namespace>::all(admin.clone())
        .create(&obj(json!({"metadata": {"name": "hooks"}})))
        .await
        .unwrap();
    Api::<Service>::namespaced(admin.clone(), "hooks")
        .create(&obj(json!({"metadata": {"name": "webhook"},
            "spec": {"ports": [{"name": "https", "port": 443, "targetPort": hook.addr.port()}]}})))
        .await
        .unwrap();
    Api::<Endpoints>::namespaced(admin.clone(), "hooks")
        .create(&obj(json!({"metadata": {"name": "webhook"}, "subsets": [{
            "addresses": [{"ip": hook.addr.ip().to_string()}],
            "ports": [{"name": "https", "port": hook.addr.port()}]}]})))
        .await
        .unwrap();
    let url = json!({"url": format!("https://{}/validate", hook.addr), "caBundle": ca});
    Api::<ValidatingWebhookConfiguration>::all(admin.clone())
        .create(&obj(json!({"metadata": {"name": "deny-labelled"},
            "webhooks": [webhook(DENY_HOOK, url, "Fail", json!({"deny": "yes"}))]})))
        .await
        .unwrap();
    let service = json!({"service": {"namespace": "hooks", "name": "webhook", "path": "/mutate"},
        "caBundle": ca});
    Api::<MutatingWebhookConfiguration>::all(admin.clone())
        .create(&obj(json!({"metadata": {"name": "label-mutated"},
            "webhooks": [webhook(MUTATE_HOOK, service, "Fail", json!({"mutate": "yes"}))]})))
        .await
        .unwrap();
    // A consistent read on the only member: its cache now holds the configurations.
    Api::<MutatingWebhookConfiguration>::all(admin.clone())
        .get("label-mutated")
        .await
        .unwrap();
}

fn refused<T: std::fmt::Debug>(r: Result<T, client::Error>, code: Code, what: &str) -> String {
    match r {
        Err(e) if e.code() == code => e.to_string(),
        other => panic!("{what}: want {code:?}, got {other:?}"),
    }
}

async fn assert_absent(cms: &Api<ConfigMap>, name: &str) {
    let got = cms.get(name).await;
    assert!(
        matches!(&got, Err(e) if e.is_not_found()),
        "{name} was written: {got:?}"
    );
}

async fn scenario(cluster: &Cluster) {
    let admin = cluster.api_client();
    let hook = webhook_server::start(Arc::new(review)).await;
    configure(&admin, &hook).await;
    let cms = Api::<ConfigMap>::namespaced(admin.clone(), "default");

    let msg = refused(
        cms.create(&config_map("denied", json!({"deny": "yes"})))
            .await,
        Code::PermissionDenied,
        "a ConfigMap labelled deny=yes",
    );
    let want = format!("admission webhook \"{DENY_HOOK}\" denied the request: {DENY_MESSAGE}");
    assert!(msg.contains(&want), "{msg}");
    assert_absent(&cms, "denied").await;

    // Neither selector matches: the webhook server is not even asked.
    let before = hook.calls.load(Ordering::SeqCst);
    cms.create(&config_map("plain", json!({"app": "x"})))
        .await
        .unwrap();
    assert_eq!(hook.calls.load(Ordering::SeqCst), before);

    let created = cms
        .create(&config_map("mutated", json!({"mutate": "yes"})))
        .await
        .unwrap();
    let label = |cm: &ConfigMap| cm.metadata.labels.clone().unwrap_or_default();
    assert_eq!(
        label(&created).get("mutated").map(String::as_str),
        Some("by-webhook")
    );
    let stored = cms.get("mutated").await.unwrap();
    assert_eq!(
        label(&stored).get("mutated").map(String::as_str),
        Some("by-webhook")
    );

    drop(hook);
    let msg = refused(
        cms.create(&config_map("fail-closed", json!({"deny": "yes"})))
            .await,
        Code::Internal,
        "a validating webhook that is down with failurePolicy Fail",
    );
    assert!(
        msg.contains(&format!("failed calling webhook \"{DENY_HOOK}\"")),
        "{msg}"
    );
    assert_absent(&cms, "fail-closed").await;
    let msg = refused(
        cms.create(&config_map("mutate-down", json!({"mutate": "yes"})))
            .await,
        Code::Internal,
        "a mutating webhook that is down with failurePolicy Fail",
    );
    assert!(
        msg.contains(&format!("failed calling webhook \"{MUTATE_HOOK}\"")),
        "{msg}"
    );
    assert_absent(&cms, "mutate-down").await;

    let configs = Api::<ValidatingWebhookConfiguration>::all(admin.clone());
    let mut cfg = configs.get("deny-labelled").await.unwrap();
    for w in cfg.webhooks.iter_mut().flatten() {
        w.failure_policy = Some("Ignore".into());
    }
    configs.replace(&cfg).await.unwrap();
    configs.get("deny-labelled").await.unwrap();
    cms.create(&config_map("fail-open", json!({"deny": "yes"})))
        .await
        .unwrap();
    cms.get("fail-open").await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn webhooks_deny_mutate_and_follow_their_failure_policy() {
    let cluster = Cluster::start(Flavor::Apiserver, 1, &[]).await;
    tokio::time::timeout(Duration::from_secs(120), scenario(&cluster))
        .await
        .expect("the webhook scenario to finish within 120 s");
}
