//! Kill -9 the apiserver leader during a stream of creates while a client watches: the
//! watcher's events have no gap and no duplicate, and every acknowledged create survives.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use client::Api;
use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use rkube_proto::api::WatchEventType;
use rkube_tests::{Cluster, Flavor};
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn leader_killed_during_creates_loses_nothing_and_watch_has_no_gap() {
    let mut cluster = Cluster::start(Flavor::Apiserver, 3, &[]).await;
    let leader = cluster.wait_leader(Duration::from_secs(20)).await;
    // The watcher and the writer use the members that survive; the client fails over.
    let survivor = (leader + 1) % 3;
    let writer_api: Api<ConfigMap> = Api::namespaced(cluster.api_client(), "default");
    let watch_client = cluster.api_client_of(survivor);
    let watch_api: Api<ConfigMap> = Api::namespaced(watch_client, "default");
    let start_rv = watch_api
        .list(&Default::default())
        .await
        .expect("list")
        .resource_version;

    // Raw watch: resumes by hand from the last version it saw, so gaps would show.
    let watcher = tokio::spawn(async move {
        let mut seen: Vec<(i64, WatchEventType, String)> = Vec::new();
        let mut rv = start_rv;
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            let Ok(mut s) = watch_api.watch_raw(&Default::default(), &rv, true).await else {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            loop {
                match tokio::time::timeout(Duration::from_secs(5), s.next()).await {
                    Ok(Some(Ok(ev))) => {
                        let ty = ev.r#type();
                        let obj = ev.object.expect("object");
                        rv = obj.resource_version.clone();
                        if ty != WatchEventType::Bookmark {
                            seen.push((rv.parse().unwrap(), ty, obj.name.clone()));
                            if obj.name == "done" {
                                return seen;
                            }
                        }
                    }
                    Ok(Some(Err(_))) | Ok(None) => break,
                    Err(_) => break,
                }
            }
        }
        seen
    });

    let mut acked = BTreeSet::new();
    let writes = 300;
    for i in 0..writes {
        if i == 100 {
            cluster.kill(leader);
        }
        let cm: ConfigMap = serde_json::from_value(
            json!({"metadata": {"name": format!("cm-{i:04}")}, "data": {"i": i.to_string()}}),
        )
        .unwrap();
        match writer_api.create(&cm).await {
            Ok(_) => {
                acked.insert(format!("cm-{i:04}"));
            }
            // A create retried after failover may find its first attempt committed.
            Err(e) if e.is_already_exists() => {
                acked.insert(format!("cm-{i:04}"));
            }
            Err(e) => panic!("create {i} failed after failover: {e}"),
        }
    }
    let done: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "done"}})).unwrap();
    writer_api.create(&done).await.expect("final create");
    let seen = tokio::time::timeout(Duration::from_secs(90), watcher)
        .await
        .expect("watcher finished")
        .expect("watcher task");

    // Strictly increasing versions: no duplicate, nothing out of order.
    for w in seen.windows(2) {
        assert!(
            w[0].0 < w[1].0,
            "watch went back or repeated: {:?} then {:?}",
            w[0],
            w[1]
        );
    }
    let names: BTreeSet<String> = seen.iter().map(|(_, _, n)| n.clone()).collect();
    for a in &acked {
        assert!(names.contains(a), "the watch skipped the create of {a}");
    }
    assert_eq!(
        seen.iter()
            .filter(|(_, t, _)| *t == WatchEventType::Added)
            .count(),
        seen.len()
    );

    // Every acknowledged create is stored, seen through every member still running.
    for i in (0..3).filter(|i| *i != leader) {
        let api: Api<ConfigMap> = Api::namespaced(cluster.api_client_of(i), "default");
        let stored: BTreeSet<String> = api
            .list(&Default::default())
            .await
            .expect("list after failover")
            .items
            .into_iter()
            .filter_map(|c| c.metadata.name)
            .collect();
        for a in &acked {
            assert!(stored.contains(a), "member {i} lost {a}");
        }
    }
    // The killed member comes back with everything too.
    cluster.spawn(leader, "new");
    let back: Api<ConfigMap> = Api::namespaced(cluster.api_client_of(leader), "default");
    let n = rkube_tests::eventually(
        Duration::from_secs(30),
        "the restarted member to catch up",
        || async {
            let items = back.list(&Default::default()).await.ok()?.items;
            (items.len() > acked.len()).then_some(items.len())
        },
    )
    .await;
    assert_eq!(n, acked.len() + 1);
}
