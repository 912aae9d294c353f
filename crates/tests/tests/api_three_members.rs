//! The resource API against three `rkube server` members: CRUD, list and watch through
//! each member, optimistic concurrency, and Kubernetes' object semantics.

use std::time::Duration;

use client::watcher::{watcher, Config, Event};
use client::{Api, Client, ListParams, PatchParams};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use rkube_tests::{Cluster, Flavor};
use serde_json::json;

fn cm(name: &str, labels: &[(&str, &str)]) -> ConfigMap {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": labels.iter().cloned().collect::<std::collections::BTreeMap<_, _>>()},
        "data": {"k": "v"}
    }))
    .unwrap()
}

fn pod(name: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}
    }))
    .unwrap()
}

async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), f)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn crud_list_and_watch_through_every_member() {
    let cluster = Cluster::start(Flavor::Apiserver, 3, &[]).await;
    within("crud", async {
        // A watch through member 0 sees writes made through every member.
        let watch_api: Api<ConfigMap> = Api::namespaced(cluster.api_client_of(0), "default");
        let mut events = Box::pin(watcher(watch_api, Config::default()));
        assert!(matches!(events.next().await, Some(Event::Init)));
        assert!(matches!(events.next().await, Some(Event::InitDone)));

        for i in 0..3 {
            let api: Api<ConfigMap> = Api::namespaced(cluster.api_client_of(i), "default");
            let name = format!("cm-{i}");
            let created = api
                .create(&cm(&name, &[("member", &i.to_string())]))
                .await
                .unwrap();
            let meta = &created.metadata;
            assert!(
                meta.uid.as_ref().is_some_and(|u| !u.is_empty()),
                "server-set uid"
            );
            assert!(
                meta.creation_timestamp.is_some(),
                "server-set creationTimestamp"
            );
            assert_eq!(meta.generation, Some(1));
            let rv: i64 = meta.resource_version.as_ref().unwrap().parse().unwrap();
            assert!(rv > 0);
            // Read back through another member: reads are consistent.
            let other: Api<ConfigMap> =
                Api::namespaced(cluster.api_client_of((i + 1) % 3), "default");
            let got = other.get(&name).await.unwrap();
            assert_eq!(got.metadata.resource_version, meta.resource_version);
            match events.next().await {
                Some(Event::Apply(c)) => {
                    assert_eq!(c.metadata.name.as_deref(), Some(name.as_str()))
                }
                other => panic!("expected the create of {name}, got {other:?}"),
            }
        }

        let api: Api<ConfigMap> = Api::namespaced(cluster.api_client(), "default");
        let all = api.list(&ListParams::default()).await.unwrap();
        assert_eq!(all.items.len(), 3);
        let one = api
            .list(&ListParams::default().labels("member=1"))
            .await
            .unwrap();
        assert_eq!(one.items.len(), 1);
        assert_eq!(one.items[0].metadata.name.as_deref(), Some("cm-1"));
        let not = api
            .list(&ListParams::default().labels("member notin (0,1)"))
            .await
            .unwrap();
        assert_eq!(not.items.len(), 1);
        let by_name = api
            .list(&ListParams::default().fields("metadata.name=cm-2"))
            .await
            .unwrap();
        assert_eq!(by_name.items.len(), 1);

        // Pagination: pages of 2, consistent at the first page's version.
        let first = api.list(&ListParams::default().limit(2)).await.unwrap();
        assert_eq!(first.items.len(), 2);
        let token = first.continue_token.clone().expect("a continue token");
        api.create(&cm("cm-3", &[])).await.unwrap();
        let mut lp = ListParams::default().limit(2);
        lp.continue_token = Some(token);
        let second = api.list(&lp).await.unwrap();
        assert_eq!(
            second.items.len(),
            1,
            "the snapshot of the first page holds 3 objects"
        );
        assert!(second.continue_token.is_none());
        assert_eq!(second.resource_version, first.resource_version);

        // Update bumps the resourceVersion; a stale one gets Conflict.
        let cur = api.get("cm-0").await.unwrap();
        let mut upd = cur.clone();
        upd.data = Some([("k".to_string(), "v2".to_string())].into());
        let updated = api.replace(&upd).await.unwrap();
        assert_ne!(
            updated.metadata.resource_version,
            cur.metadata.resource_version
        );
        let err = api.replace(&upd).await.unwrap_err();
        assert!(err.is_conflict(), "stale update: {err}");
        let err = Api::<ConfigMap>::namespaced(cluster.api_client_of(2), "default")
            .replace(&upd)
            .await
            .unwrap_err();
        assert!(
            err.is_conflict(),
            "stale update through another member: {err}"
        );

        // Patch, then delete; the watch sees both.
        api.patch(
            "cm-0",
            PatchParams::Merge,
            &json!({"metadata": {"labels": {"patched": "yes"}}}),
        )
        .await
        .unwrap();
        let (_, gone) = api.delete("cm-0", None).await.unwrap();
        assert!(gone);
        assert!(api.get("cm-0").await.unwrap_err().is_not_found());
        let mut saw_delete = false;
        while let Some(ev) = events.next().await {
            if let Event::Delete(c) = ev {
                assert_eq!(c.metadata.name.as_deref(), Some("cm-0"));
                saw_delete = true;
                break;
            }
        }
        assert!(saw_delete);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn object_semantics_status_finalizers_graceful_pods_and_bind() {
    let cluster = Cluster::start(Flavor::Apiserver, 3, &[]).await;
    let c: Client = cluster.api_client();
    within("semantics", async {
        let pods: Api<Pod> = Api::namespaced(c.clone(), "default");
        // generateName.
        let mut p = pod("");
        p.metadata.name = None;
        p.metadata.generate_name = Some("gen-".into());
        let made = pods.create(&p).await.unwrap();
        let name = made.metadata.name.clone().unwrap();
        assert!(name.starts_with("gen-") && name.len() == 9, "{name}");
        assert_eq!(
            made.spec.as_ref().unwrap().service_account_name.as_deref(),
            Some("default")
        );
        assert_eq!(
            made.status.as_ref().unwrap().phase.as_deref(),
            Some("Pending")
        );

        // Status subresource: Update keeps status, UpdateStatus keeps spec.
        let mut s = made.clone();
        s.status.as_mut().unwrap().phase = Some("Running".into());
        let after = pods.replace(&s).await.unwrap();
        assert_eq!(
            after.status.as_ref().unwrap().phase.as_deref(),
            Some("Pending")
        );
        let mut s = after.clone();
        s.status.as_mut().unwrap().phase = Some("Running".into());
        let after = pods.replace_status(&s).await.unwrap();
        assert_eq!(
            after.status.as_ref().unwrap().phase.as_deref(),
            Some("Running")
        );
        assert_eq!(
            after.metadata.generation,
            Some(1),
            "status changes keep generation"
        );

        // Bind: sets nodeName once; a second bind conflicts.
        c.bind(rkube_proto::api::BindRequest {
            namespace: "default".into(),
            name: name.clone(),
            node_name: "w1".into(),
            uid: String::new(),
        })
        .await
        .unwrap();
        let bound = pods.get(&name).await.unwrap();
        assert_eq!(
            bound.spec.as_ref().unwrap().node_name.as_deref(),
            Some("w1")
        );
        let again = c
            .bind(rkube_proto::api::BindRequest {
                namespace: "default".into(),
                name: name.clone(),
                node_name: "w2".into(),
                uid: String::new(),
            })
            .await
            .unwrap_err();
        assert!(again.is_conflict(), "{again}");

        // Graceful deletion of a pod on a node: marked, then gone with grace 0.
        let (marked, gone) = pods.delete(&name, None).await.unwrap();
        assert!(!gone);
        assert!(marked.metadata.deletion_timestamp.is_some());
        assert_eq!(marked.metadata.deletion_grace_period_seconds, Some(30));
        let (_, gone) = pods.delete(&name, Some(0)).await.unwrap();
        assert!(gone);

        // Finalizers hold an object until they are removed.
        let cms: Api<ConfigMap> = Api::namespaced(c.clone(), "default");
        let mut f = cm("held", &[]);
        f.metadata.finalizers = Some(vec!["example.com/hold".into()]);
        cms.create(&f).await.unwrap();
        let (held, gone) = cms.delete("held", None).await.unwrap();
        assert!(!gone && held.metadata.deletion_timestamp.is_some());
        let mut release = cms.get("held").await.unwrap();
        release.metadata.finalizers = Some(vec![]);
        cms.replace(&release).await.unwrap();
        assert!(cms.get("held").await.unwrap_err().is_not_found());

        // Generation follows spec changes only; ownerReferences are kept.
        let mut o = cm("owned", &[]);
        o.metadata.owner_references = Some(vec![serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Pod", "name": "x", "uid": "u-1"}))
        .unwrap()]);
        let o = cms.create(&o).await.unwrap();
        assert_eq!(
            o.metadata.owner_references.as_ref().map(|r| r.len()),
            Some(1)
        );
        let mut o2 = o.clone();
        o2.data = Some([("k".to_string(), "changed".to_string())].into());
        assert_eq!(cms.replace(&o2).await.unwrap().metadata.generation, Some(2));

        // The health endpoints answer HTTPS on the API port; /metrics wants credentials.
        let addr = cluster.members[0].client;
        let admin = cluster.pki.rustls(Some(&cluster.pki.admin));
        for (path, want) in [
            ("/healthz", "ok"),
            ("/readyz", "ok"),
            ("/metrics", "rkube_apiserver_requests_total"),
        ] {
            let body = rkube_tests::pki::https_get(addr, path, admin.clone())
                .await
                .expect("HTTPS GET");
            assert!(body.starts_with("HTTP/1.1 200"), "{path}: {body}");
            assert!(body.contains(want), "{path}: {body}");
        }

        // Nothing is created in a namespace that does not exist.
        let err = Api::<ConfigMap>::namespaced(c.clone(), "nope")
            .create(&cm("x", &[]))
            .await
            .unwrap_err();
        assert!(err.is_not_found(), "{err}");
    })
    .await;
}
