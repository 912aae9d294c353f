//! The client's controller runtime against a real cluster: every object is reconciled,
//! later changes are reconciled again, and a failing reconcile is retried.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use client::runtime::{Action, Controller};
use client::watcher::Config;
use client::{Api, PatchParams};
use k8s_openapi::api::core::v1::ConfigMap;
use rkube_tests::{eventually, Cluster, Flavor};
use serde_json::json;

struct Ctx {
    api: Api<ConfigMap>,
    failures_left: AtomicUsize,
}

async fn reconcile(cm: Arc<ConfigMap>, ctx: Arc<Ctx>) -> Result<Action, String> {
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
    let ctx = Arc::new(Ctx {
        api: api.clone(),
        failures_left: AtomicUsize::new(3),
    });
    let controller = Controller::new(api.clone(), Config::default()).run(
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
    running.abort();
}
