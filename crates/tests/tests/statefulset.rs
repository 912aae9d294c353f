//! StatefulSets against a real control plane and a node agent on the process runtime: a
//! set of three with a volumeClaimTemplate starts its pods in order (web-1 is created only
//! after web-0 is Ready), one claim per ordinal; a deleted pod comes back under its name
//! with its claim and its data; scaling down goes from the highest ordinal and keeps the
//! claims, which the pods find again when scaled back up; a rolling update with partition
//! 2 replaces web-2 alone; `rkube ctl rollout status|history|undo|restart` work on it;
//! deleted with `whenDeleted: Delete`, the set takes its pods, revisions and claims along.
//!
//! The test provides the volumes: one hostPath PersistentVolume per ordinal, pre-bound to
//! its claim by `claimRef`; the controller-manager's PersistentVolume binder binds each
//! claim the set makes to it, and the node agent mounts the bound volume's directory.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use client::watcher::{watcher, Event};
use client::{Api, Client, PatchParams};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet};
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod};
use parking_lot::Mutex;
use rkube_tests::eventually;
use rkube_tests::fake_kubelet::cluster_with_nodes;
use rkube_tests::netns::is_root;
use rkube_tests::node_agent::NodeAgent;
use rkube_tests::pod_lifecycle::{ctl, ctl_ok};
use serde_json::json;
use tokio::task::JoinHandle;

const NS: &str = "default";

/// A task of the test, stopped when the test ends, also by a failure.
struct Task(JoinHandle<()>);

impl Drop for Task {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One pod change as a watch delivered it, in the store's order.
#[derive(Clone, Debug)]
struct Seen {
    name: String,
    uid: String,
    ready: bool,
    /// Being deleted, or gone.
    going: bool,
}

fn ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Records every change of the namespace's pods, in order, from once the watch has
/// listed.
async fn record_pods(client: &Client) -> (Task, Arc<Mutex<Vec<Seen>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let mut events = watcher(
        Api::<Pod>::namespaced(client.clone(), NS),
        Default::default(),
    )
    .boxed();
    while let Some(ev) = events.next().await {
        if matches!(ev, Event::InitDone) {
            break;
        }
    }
    let task = tokio::spawn(async move {
        while let Some(ev) = events.next().await {
            let (p, gone) = match ev {
                Event::Apply(p) | Event::InitApply(p) => (p, false),
                Event::Delete(p) => (p, true),
                Event::Init | Event::InitDone => continue,
            };
            log.lock().push(Seen {
                name: p.metadata.name.clone().unwrap_or_default(),
                uid: p.metadata.uid.clone().unwrap_or_default(),
                ready: ready(&p),
                going: gone || p.metadata.deletion_timestamp.is_some(),
            });
        }
    });
    (Task(task), seen)
}

/// Where in `seen` a change matching `f` first is.
fn first(seen: &[Seen], f: impl Fn(&Seen) -> bool) -> Option<usize> {
    seen.iter().position(f)
}

/// One hostPath PersistentVolume per ordinal under `dir`, pre-bound to `data-web-<i>`.
async fn volumes(client: &Client, dir: &Path, n: usize) {
    let pvs = Api::<PersistentVolume>::all(client.clone());
    for i in 0..n {
        let pv: PersistentVolume = serde_json::from_value(json!({
            "metadata": {"name": format!("pv-web-{i}")},
            "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                "persistentVolumeReclaimPolicy": "Retain",
                "hostPath": {"path": dir.join(i.to_string()), "type": "DirectoryOrCreate"},
                "claimRef": {"namespace": NS, "name": format!("data-web-{i}")}}
        }))
        .unwrap();
        pvs.create(&pv).await.expect("create a PersistentVolume");
    }
}

fn web(mnt: &Path) -> StatefulSet {
    let log = mnt.join("data").join("log");
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "web", "namespace": NS},
        "spec": {"replicas": 3, "serviceName": "web",
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"terminationGracePeriodSeconds": 1, "containers": [{"name": "c",
                    "image": "busybox",
                    "command": ["/bin/sh", "-c", format!("echo started >> {}; exec sleep 3600", log.display())],
                    "volumeMounts": [{"name": "data", "mountPath": mnt.join("data")}],
                    "readinessProbe": {"exec": {"command": ["/bin/true"]},
                        "initialDelaySeconds": 1, "periodSeconds": 1}}]}},
            "volumeClaimTemplates": [{"metadata": {"name": "data"},
                "spec": {"accessModes": ["ReadWriteOnce"],
                    "resources": {"requests": {"storage": "1Gi"}}}}]}
    }))
    .unwrap()
}

/// The pods of the set not being deleted, by name.
async fn live_pods(pods: &Api<Pod>) -> Vec<Pod> {
    let mut v: Vec<Pod> = pods
        .list(&client::ListParams::default().labels("app=web"))
        .await
        .map(|l| l.items)
        .unwrap_or_default()
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect();
    v.sort_by_key(|p| p.metadata.name.clone());
    v
}

fn names(pods: &[Pod]) -> Vec<String> {
    pods.iter()
        .map(|p| p.metadata.name.clone().unwrap_or_default())
        .collect()
}

fn uid(p: &Pod) -> String {
    p.metadata.uid.clone().unwrap_or_default()
}

fn revision(p: &Pod) -> String {
    p.metadata.labels.as_ref().unwrap()["controller-revision-hash"].clone()
}

/// Waits until pods `expected` run Ready (no others) and the set's status says so.
async fn settled(sets: &Api<StatefulSet>, pods: &Api<Pod>, expected: &[&str]) -> Vec<Pod> {
    let what = format!("pods {expected:?} Ready and counted");
    eventually(Duration::from_secs(120), &what, || async {
        let s = sets.get("web").await.ok()?;
        let st = s.status?;
        let live = live_pods(pods).await;
        let all = pods.list(&Default::default()).await.ok()?.items.len();
        let done = names(&live) == expected
            && all == expected.len()
            && live.iter().all(ready)
            && st.ready_replicas == Some(expected.len() as i32)
            && st.replicas == expected.len() as i32
            && st.observed_generation == s.metadata.generation;
        done.then_some(live)
    })
    .await
}

/// The lines a pod of ordinal `i` wrote to its volume over its lives.
fn starts(dir: &Path, i: usize) -> usize {
    std::fs::read_to_string(dir.join(i.to_string()).join("log"))
        .unwrap_or_default()
        .lines()
        .count()
}

async fn claim_uids(client: &Client) -> Vec<String> {
    let claims = Api::<PersistentVolumeClaim>::namespaced(client.clone(), NS);
    let mut out = Vec::new();
    for i in 0..3 {
        let c = claims.get(&format!("data-web-{i}")).await.expect("claim");
        out.push(c.metadata.uid.unwrap_or_default());
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn a_statefulset_keeps_identity_and_storage_per_ordinal() {
    assert!(is_root(), "the node agent mounts volumes and needs root");
    tokio::time::timeout(Duration::from_secs(900), scenario())
        .await
        .expect("the StatefulSet scenario finishes within 15 minutes");
}

async fn scenario() {
    // Declared first, dropped last: the node's containers go before their volumes.
    let tmp = tempfile::tempdir().unwrap();
    let (cluster, client, _fake) = cluster_with_nodes(1, &[]).await;
    let node = NodeAgent::start(&cluster.node_access("w1"), "w1", &[]);
    node.wait_ready(&client).await;
    let (storage, mnt): (PathBuf, PathBuf) = (tmp.path().join("pv"), tmp.path().join("mnt"));
    volumes(&client, &storage, 3).await;
    let (_recorder, seen) = record_pods(&client).await;
    let sets = Api::<StatefulSet>::namespaced(client.clone(), NS);
    let pods = Api::<Pod>::namespaced(client.clone(), NS);
    sets.create(&web(&mnt)).await.unwrap();

    // Ordered start: each pod is created only once the one before it is Ready.
    let first_pods = settled(&sets, &pods, &["web-0", "web-1", "web-2"]).await;
    {
        let seen = seen.lock();
        for (before, after) in [("web-0", "web-1"), ("web-1", "web-2")] {
            let ready_at = first(&seen, |s| s.name == before && s.ready);
            let created_at = first(&seen, |s| s.name == after);
            assert!(
                ready_at.is_some() && created_at > ready_at,
                "{after} created (change {created_at:?}) after {before} Ready (change {ready_at:?})"
            );
        }
    }
    for (i, p) in first_pods.iter().enumerate() {
        let spec = p.spec.as_ref().unwrap();
        assert_eq!(spec.hostname.as_deref(), Some(format!("web-{i}").as_str()));
        assert_eq!(spec.subdomain.as_deref(), Some("web"));
        let claim = spec.volumes.as_ref().unwrap()[0]
            .persistent_volume_claim
            .as_ref()
            .expect("the claim volume");
        assert_eq!(claim.claim_name, format!("data-web-{i}"));
        assert_eq!(starts(&storage, i), 1, "web-{i} wrote to its own volume");
    }
    let claims = claim_uids(&client).await;

    // A deleted pod comes back under its name, with its claim and its data.
    pods.delete("web-1", None).await.unwrap();
    let again = eventually(Duration::from_secs(120), "web-1 back and Ready", || async {
        let p = pods.get("web-1").await.ok()?;
        (uid(&p) != uid(&first_pods[1]) && ready(&p) && p.metadata.deletion_timestamp.is_none())
            .then_some(p)
    })
    .await;
    let volume = &again.spec.as_ref().unwrap().volumes.as_ref().unwrap()[0];
    assert_eq!(
        volume.persistent_volume_claim.as_ref().unwrap().claim_name,
        "data-web-1"
    );
    assert_eq!(claim_uids(&client).await, claims, "the same claims");
    assert_eq!(
        starts(&storage, 1),
        2,
        "the new web-1 found the old one's data"
    );
    settled(&sets, &pods, &["web-0", "web-1", "web-2"]).await;

    // Down to one, from the highest ordinal, keeping the claims; then back up.
    let patch = json!({"spec": {"replicas": 1}});
    sets.patch("web", PatchParams::Merge, &patch).await.unwrap();
    settled(&sets, &pods, &["web-0"]).await;
    {
        let seen = seen.lock();
        let going = |n: &str| {
            first(&seen, |s| {
                s.name == n && s.going && s.uid != uid(&first_pods[1])
            })
        };
        assert!(
            going("web-2").is_some() && going("web-2") < going("web-1"),
            "web-2 ({:?}) goes before web-1 ({:?})",
            going("web-2"),
            going("web-1")
        );
    }
    assert_eq!(
        claim_uids(&client).await,
        claims,
        "claims kept on scale down"
    );
    let patch = json!({"spec": {"replicas": 3}});
    sets.patch("web", PatchParams::Merge, &patch).await.unwrap();
    settled(&sets, &pods, &["web-0", "web-1", "web-2"]).await;
    assert_eq!(claim_uids(&client).await, claims, "the same claims again");
    assert_eq!((starts(&storage, 1), starts(&storage, 2)), (3, 2));

    rolling_update(&cluster.api_access(), &sets, &pods).await;
    delete_with_claims(&client, &sets, &pods).await;
}

/// With `whenDeleted: Delete` the claims get a reference to the set; deleting the set
/// then takes its pods, revisions and claims.
async fn delete_with_claims(client: &Client, sets: &Api<StatefulSet>, pods: &Api<Pod>) {
    let uid = sets.get("web").await.unwrap().metadata.uid.unwrap();
    let patch =
        json!({"spec": {"persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Delete"}}});
    sets.patch("web", PatchParams::Merge, &patch).await.unwrap();
    let claims = Api::<PersistentVolumeClaim>::namespaced(client.clone(), NS);
    eventually(
        Duration::from_secs(60),
        "claims owned by the set",
        || async {
            let list = claims.list(&Default::default()).await.ok()?.items;
            let owned = list.iter().filter(|c| {
                let refs = c.metadata.owner_references.iter().flatten();
                refs.clone()
                    .any(|r| r.uid == uid && r.controller != Some(true))
            });
            (owned.count() == 3).then_some(())
        },
    )
    .await;
    sets.delete("web", None).await.unwrap();
    let revisions = Api::<ControllerRevision>::namespaced(client.clone(), NS);
    eventually(
        Duration::from_secs(60),
        "pods, revisions and claims gone",
        || async {
            let left = pods.list(&Default::default()).await.ok()?.items.len()
                + revisions.list(&Default::default()).await.ok()?.items.len()
                + claims.list(&Default::default()).await.ok()?.items.len();
            (left == 0).then_some(())
        },
    )
    .await;
}

/// A new template with partition 2 replaces web-2 alone; `rollout undo` brings it back.
async fn rolling_update(access: &str, sets: &Api<StatefulSet>, pods: &Api<Pod>) {
    let before = settled(sets, pods, &["web-0", "web-1", "web-2"]).await;
    let old = revision(&before[0]);
    let patch = json!({"spec": {"updateStrategy": {"rollingUpdate": {"partition": 2}},
        "template": {"metadata": {"annotations": {"version": "2"}}}}});
    sets.patch("web", PatchParams::Merge, &patch).await.unwrap();
    let s = eventually(Duration::from_secs(120), "web-2 updated", || async {
        let s = sets.get("web").await.ok()?;
        let st = s.status.clone()?;
        let done = st.updated_replicas == Some(1)
            && st.ready_replicas == Some(3)
            && st.observed_generation == s.metadata.generation
            && st.update_revision != st.current_revision;
        done.then_some(s)
    })
    .await;
    let st = s.status.unwrap();
    let after = settled(sets, pods, &["web-0", "web-1", "web-2"]).await;
    let new = st.update_revision.clone().unwrap();
    assert_eq!(st.current_revision.as_deref(), Some(old.as_str()));
    for i in 0..2 {
        assert_eq!(
            uid(&after[i]),
            uid(&before[i]),
            "web-{i} below the partition stays"
        );
        assert_eq!(revision(&after[i]), old);
    }
    assert_ne!(uid(&after[2]), uid(&before[2]));
    assert_eq!(revision(&after[2]), new);
    let annotations = after[2].metadata.annotations.clone().unwrap_or_default();
    assert_eq!(annotations.get("version").map(String::as_str), Some("2"));

    let args = ["rollout", "status", "sts/web", "--timeout", "60"];
    let out = ctl_ok(&args, ctl(access, &args));
    assert!(
        out.contains("partitioned roll out complete: 1 new pods"),
        "{out}"
    );
    let args = ["rollout", "history", "statefulset/web"];
    let out = ctl_ok(&args, ctl(access, &args));
    let revisions: Vec<&str> = out
        .lines()
        .skip(2)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(revisions, ["1", "2"], "{out}");
    let args = ["rollout", "undo", "statefulset/web"];
    let out = ctl_ok(&args, ctl(access, &args));
    assert!(out.contains("rolled back (to revision 1)"), "{out}");
    eventually(
        Duration::from_secs(120),
        "web-2 back at the first revision",
        || async {
            let p = pods.get("web-2").await.ok()?;
            let st = sets.get("web").await.ok()?.status?;
            let back = revision(&p) == old
                && ready(&p)
                && st.update_revision.as_deref() == Some(old.as_str())
                && st.updated_replicas == Some(3)
                && st.current_revision.as_deref() == Some(old.as_str());
            back.then_some(())
        },
    )
    .await;
    let args = ["rollout", "history", "statefulset/web"];
    let out = ctl_ok(&args, ctl(access, &args));
    let revisions: Vec<&str> = out
        .lines()
        .skip(2)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(
        revisions,
        ["2", "3"],
        "the first revision renumbered: {out}"
    );
    restart(access, sets, pods).await;
}

/// `rollout restart` (partition 0 again) replaces every pod with a new revision.
async fn restart(access: &str, sets: &Api<StatefulSet>, pods: &Api<Pod>) {
    let before = settled(sets, pods, &["web-0", "web-1", "web-2"]).await;
    let patch = json!({"spec": {"updateStrategy": {"rollingUpdate": {"partition": 0}}}});
    sets.patch("web", PatchParams::Merge, &patch).await.unwrap();
    let args = ["rollout", "restart", "sts/web"];
    let out = ctl_ok(&args, ctl(access, &args));
    assert!(out.contains("statefulset.apps/web restarted"), "{out}");
    let args = ["rollout", "status", "sts/web", "--timeout", "120"];
    let out = ctl_ok(&args, ctl(access, &args));
    assert!(
        out.contains("partitioned roll out complete: 3 new pods"),
        "{out}"
    );
    let after = settled(sets, pods, &["web-0", "web-1", "web-2"]).await;
    let st = sets.get("web").await.unwrap().status.unwrap();
    assert_eq!(st.current_revision, st.update_revision);
    for (b, a) in before.iter().zip(&after) {
        assert_ne!(
            uid(a),
            uid(b),
            "{} replaced",
            a.metadata.name.as_deref().unwrap()
        );
        assert_eq!(Some(revision(a)), st.update_revision);
        assert_ne!(revision(a), revision(b));
    }
}
