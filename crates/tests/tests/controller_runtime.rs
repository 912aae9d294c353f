//! The client's controller runtime against a real cluster: every object is reconciled,
//! later changes are reconciled again, a failing reconcile is retried, the reconciles are
//! counted in the metrics, and a cancelled token stops the controller.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use client::informer::Informer;
use client::reflector::ObjectKey;
use client::runtime::{Action, CancellationToken, Controller, Metrics};
use client::watcher::Config;
use client::{Api, PatchParams};
use k8s_openapi::api::core::v1::ConfigMap;
use rkube_tests::{eventually, Cluster, Flavor};
use serde_json::json;

struct Ctx {
    api: Api<ConfigMap>,
    configmaps: Arc<Informer<ConfigMap>>,
    failures_left: AtomicUsize,
}

async fn reconcile(key: ObjectKey, ctx: Arc<Ctx>) -> Result<Action, String> {
    let Some(cm) = ctx.configmaps.get(&key) else {
        return Ok(Action::await_change());
    };
    let name = cm.metadata.name.clone().unwrap_or_default();
    if name == "flaky" && ctx.failures_left.load(Ordering::SeqCst) > 0 {
        ctx.failures_left.fetch_sub(1, Ordering::SeqCst);
        return Err("not yet".into());
    }
    let want = cm
        .data
        .as_ref()
        .and_then(|d| d.get("v"))
        .cloned()
        .unwrap_or_default();
    let have = cm
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get("seen"))
        .cloned();
    if have.as_deref() != Some(want.as_str()) {
        ctx.api
            .patch(
                &name,
                PatchParams::Merge,
                &json!({"metadata": {"labels": {"seen": want}}}),
            )
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(Action::await_change())
}

#[tokio::test(flavor = "multi_thread")]
async fn every_object_is_reconciled_and_failures_are_retried() {
    let cluster = Cluster::start(Flavor::Apiserver, 3, &[]).await;
    let api: Api<ConfigMap> = Api::namespaced(cluster.api_client(), "default");
    let configmaps = Informer::start(api.clone(), Config::default());
    let ctx = Arc::new(Ctx {
        api: api.clone(),
        configmaps: configmaps.clone(),
        failures_left: AtomicUsize::new(3),
    });
    let metrics = Metrics::default();
    let stop = CancellationToken::new();
    let controller = Controller::new("configmaps", configmaps)
        .concurrency(2)
        .metrics(&metrics)
        .graceful_shutdown_on(stop.clone())
        .run(
            reconcile,
            |_, _, _| Action::requeue(Duration::from_millis(10)),
            ctx,
        );
    let running = tokio::spawn(controller);
    for name in ["a", "b", "c", "flaky"] {
        let cm: ConfigMap =
            serde_json::from_value(json!({"metadata": {"name": name}, "data": {"v": "1"}}))
                .unwrap();
        api.create(&cm).await.unwrap();
    }
    let seen = |api: Api<ConfigMap>, want: &'static str| async move {
        let items = api.list(&Default::default()).await.ok()?.items;
        items
            .iter()
            .all(|c| {
                c.metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get("seen"))
                    .map(String::as_str)
                    == Some(want)
            })
            .then_some(())
    };
    eventually(
        Duration::from_secs(20),
        "every ConfigMap reconciled",
        || seen(api.clone(), "1"),
    )
    .await;
    api.patch("b", PatchParams::Merge, &json!({"data": {"v": "2"}}))
        .await
        .unwrap();
    eventually(Duration::from_secs(20), "the change reconciled", || async {
        let b = api.get("b").await.ok()?;
        (b.metadata.labels?.get("seen")? == "2").then_some(())
    })
    .await;
    let mut text = String::new();
    let mut registry = prometheus_client::registry::Registry::default();
    metrics.register(&mut registry);
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    let count = |series: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or(0.0)
    };
    assert!(
        count(r#"controller_runtime_reconcile_errors_total{controller="configmaps"}"#) >= 3.0,
        "the three injected failures are counted: {text}"
    );
    assert!(
        count(r#"controller_runtime_reconcile_total{controller="configmaps",result="success"}"#)
            >= 5.0,
        "{text}"
    );
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("a cancelled controller stops")
        .unwrap();
}
