//! PersistentVolumes against a real control plane and a node agent on the process runtime:
//! the controller-manager's binder binds a 1Gi claim to the 1Gi volume of its class (not the
//! 5Gi one, nor the 1Gi one of another class); a WaitForFirstConsumer claim of the built-in
//! `rkube.io/local-path` class stays Pending until a pod uses it, then gets a volume on the
//! pod's node, which the pod writes to (the file is on disk under the class's
//! `parameters.path`); deleting the claim with reclaim policy Delete removes the volume and
//! its directory. Attacks: another node may not read the volume, and its own node may
//! change nothing of it but its finalizer; a claim naming a volume bound to another claim
//! gets nothing mounted.
//!
//! A claim that names no class gets the default one.
//!
//! Every path the test hands out is under its temporary directory.

use std::path::Path;
use std::time::Duration;

use client::{Api, Client};
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::StorageClass;
use rkube_tests::fake_kubelet::cluster_with_nodes;
use rkube_tests::netns::is_root;
use rkube_tests::node_agent::NodeAgent;
use rkube_tests::{eventually, Cluster};
use serde_json::json;

const NS: &str = "default";

#[tokio::test(flavor = "multi_thread")]
async fn claims_bind_by_size_and_class_and_local_path_follows_the_pod() {
    assert!(is_root(), "the node agent mounts volumes and needs root");
    tokio::time::timeout(Duration::from_secs(600), scenario())
        .await
        .expect("the PersistentVolume scenario finishes within 10 minutes");
}

async fn scenario() {
    // Declared first, dropped last: the node's containers go before their volumes.
    let tmp = tempfile::tempdir().unwrap();
    let (cluster, client, _fake) = cluster_with_nodes(1, &[]).await;
    let node = NodeAgent::start(&cluster.node_access("w1"), "w1", &[]);
    node.wait_ready(&client).await;
    static_volumes_bind_by_size_and_class(&client, tmp.path()).await;
    a_claim_cannot_take_another_claims_volume(&client, tmp.path()).await;
    local_path_follows_the_pod(&cluster, &client, tmp.path()).await;
}

fn pv(name: &str, size: &str, class: &str, dir: &Path) -> PersistentVolume {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"capacity": {"storage": size}, "accessModes": ["ReadWriteOnce"],
            "storageClassName": class, "persistentVolumeReclaimPolicy": "Retain",
            "hostPath": {"path": dir.join(name), "type": "DirectoryOrCreate"}}
    }))
    .unwrap()
}

fn claim(name: &str, size: &str, class: &str) -> PersistentVolumeClaim {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": NS},
        "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": class,
            "resources": {"requests": {"storage": size}}}
    }))
    .unwrap()
}

fn phase_of_claim(c: &PersistentVolumeClaim) -> &str {
    c.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

/// The claim once it is Bound.
async fn bound(claims: &Api<PersistentVolumeClaim>, name: &str) -> PersistentVolumeClaim {
    eventually(
        Duration::from_secs(90),
        &format!("claim {name} Bound"),
        || async {
            let c = claims.get(name).await.ok()?;
            (phase_of_claim(&c) == "Bound").then_some(c)
        },
    )
    .await
}

async fn static_volumes_bind_by_size_and_class(client: &Client, dir: &Path) {
    let pvs = Api::<PersistentVolume>::all(client.clone());
    for v in [
        pv("big", "5Gi", "manual", dir),
        pv("small", "1Gi", "manual", dir),
        pv("elsewhere", "1Gi", "other", dir),
    ] {
        pvs.create(&v).await.expect("create a PersistentVolume");
    }
    let claims = Api::<PersistentVolumeClaim>::namespaced(client.clone(), NS);
    claims.create(&claim("one", "1Gi", "manual")).await.unwrap();
    let c = bound(&claims, "one").await;
    let spec = c.spec.as_ref().unwrap();
    assert_eq!(
        spec.volume_name.as_deref(),
        Some("small"),
        "the smallest fit"
    );
    let status = c.status.as_ref().unwrap();
    assert_eq!(status.capacity.as_ref().unwrap()["storage"].0, "1Gi");
    let annotations = c.metadata.annotations.clone().unwrap_or_default();
    assert_eq!(
        annotations
            .get("pv.kubernetes.io/bind-completed")
            .map(String::as_str),
        Some("yes")
    );
    let small = pvs.get("small").await.unwrap();
    let r = small.spec.as_ref().unwrap().claim_ref.as_ref().unwrap();
    assert_eq!(r.name.as_deref(), Some("one"));
    assert_eq!(r.uid, c.metadata.uid);
    eventually(Duration::from_secs(30), "volume small Bound", || async {
        let v = pvs.get("small").await.ok()?;
        (v.status?.phase.as_deref() == Some("Bound")).then_some(())
    })
    .await;
    // A Retain volume whose claim is deleted is Released, and stays.
    claims.delete("one", None).await.unwrap();
    eventually(Duration::from_secs(60), "volume small Released", || async {
        let v = pvs.get("small").await.ok()?;
        (v.status?.phase.as_deref() == Some("Released")).then_some(())
    })
    .await;
    for v in ["big", "elsewhere"] {
        let got = pvs.get(v).await.unwrap();
        assert!(got.spec.unwrap().claim_ref.is_none(), "{v} stays free");
    }
}

/// Attack: a claim that names a volume bound to another claim (`small`, Released by claim
/// `one`) gets nothing, even in a pod bound straight to the node: the kubelet checks the
/// volume's claimRef.
async fn a_claim_cannot_take_another_claims_volume(client: &Client, dir: &Path) {
    std::fs::create_dir_all(dir.join("small")).unwrap();
    std::fs::write(dir.join("small").join("secret"), "one's data").unwrap();
    let claims = Api::<PersistentVolumeClaim>::namespaced(client.clone(), NS);
    let mut thief = claim("thief", "1Gi", "manual");
    thief.spec.as_mut().unwrap().volume_name = Some("small".into());
    claims.create(&thief).await.unwrap();
    let mut pod = writer("thief", &dir.join("thief"));
    pod.metadata.name = Some("thief".into());
    pod.spec.as_mut().unwrap().node_name = Some("w1".into());
    let pods = Api::<Pod>::namespaced(client.clone(), NS);
    pods.create(&pod).await.unwrap();
    let events = Api::<k8s_openapi::api::core::v1::Event>::namespaced(client.clone(), NS);
    let refused = eventually(Duration::from_secs(60), "the mount refused", || async {
        let list = events.list(&Default::default()).await.ok()?;
        list.items.into_iter().find_map(|e| {
            let msg = e.message.unwrap_or_default();
            (e.involved_object.name.as_deref() == Some("thief")
                && e.reason.as_deref() == Some("FailedMount"))
            .then_some(msg)
        })
    })
    .await;
    assert!(
        refused
            .contains("persistentvolume \"small\" is not bound to persistentvolumeclaim \"thief\""),
        "{refused}"
    );
    let p = pods.get("thief").await.unwrap();
    let started = p
        .status
        .and_then(|s| s.container_statuses)
        .unwrap_or_default();
    assert!(
        started
            .iter()
            .all(|c| c.state.as_ref().and_then(|s| s.running.as_ref()).is_none()),
        "the thief runs: {started:?}"
    );
    pods.delete("thief", Some(0)).await.unwrap();
    claims.delete("thief", None).await.unwrap();
    eventually(Duration::from_secs(60), "thief gone", || async {
        pods.get_opt("thief").await.ok()?.is_none().then_some(())
    })
    .await;
}

fn writer(claim: &str, mnt: &Path) -> Pod {
    let file = mnt.join("hello");
    serde_json::from_value(json!({
        "metadata": {"name": "writer", "namespace": NS},
        "spec": {"terminationGracePeriodSeconds": 1, "containers": [{"name": "c",
            "image": "busybox",
            "command": ["/bin/sh", "-c", format!("echo hello > {}; exec sleep 3600", file.display())],
            "volumeMounts": [{"name": "data", "mountPath": mnt}]}],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}]}
    }))
    .unwrap()
}

/// A client with node `name`'s identity.
fn node_client(cluster: &Cluster, name: &str) -> Client {
    let text = std::fs::read_to_string(cluster.node_access(name)).unwrap();
    Client::new(client::ClientConfig::parse(&text).unwrap()).unwrap()
}

/// Another node may not read a local-path volume; its own node may change nothing of it
/// but its finalizer.
async fn node_attacks(cluster: &Cluster, volume: &str) {
    let other = Api::<PersistentVolume>::all(node_client(cluster, "w2"));
    let e = other.get(volume).await.unwrap_err();
    assert!(e.is_forbidden(), "another node read the volume: {e}");
    let own = Api::<PersistentVolume>::all(node_client(cluster, "w1"));
    let mut pv = own.get(volume).await.expect("its node reads the volume");
    if let Some(l) = pv.spec.as_mut().and_then(|s| s.local.as_mut()) {
        l.path = "/etc".into();
    }
    let e = own.replace(&pv).await.unwrap_err();
    assert!(
        e.is_forbidden() && e.to_string().contains("not its spec"),
        "the node moved its volume: {e}"
    );
}

async fn local_path_follows_the_pod(cluster: &Cluster, client: &Client, dir: &Path) {
    let base = dir.join("local-path");
    let classes = Api::<StorageClass>::all(client.clone());
    let class: StorageClass = serde_json::from_value(json!({
        "metadata": {"name": "local",
            "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
        "provisioner": "rkube.io/local-path",
        "volumeBindingMode": "WaitForFirstConsumer", "reclaimPolicy": "Delete",
        "parameters": {"path": base}
    }))
    .unwrap();
    classes.create(&class).await.expect("create a StorageClass");
    let claims = Api::<PersistentVolumeClaim>::namespaced(client.clone(), NS);
    // No class named: the default one is given (DefaultStorageClass admission).
    let mut unnamed = claim("data", "100Mi", "local");
    unnamed.spec.as_mut().unwrap().storage_class_name = None;
    let made = claims.create(&unnamed).await.unwrap();
    assert_eq!(
        made.spec.unwrap().storage_class_name.as_deref(),
        Some("local")
    );
    // Nothing uses it yet: no volume is made for it.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let c = claims.get("data").await.unwrap();
    assert_ne!(phase_of_claim(&c), "Bound", "waits for its first consumer");
    let uid = c.metadata.uid.clone().unwrap();
    let pvs = Api::<PersistentVolume>::all(client.clone());
    let made = pvs.get_opt(&format!("pvc-{uid}")).await.unwrap();
    assert!(made.is_none(), "no volume before the first consumer");
    let pods = Api::<Pod>::namespaced(client.clone(), NS);
    pods.create(&writer("data", &dir.join("mnt")))
        .await
        .unwrap();
    let c = bound(&claims, "data").await;
    let volume = format!("pvc-{uid}");
    assert_eq!(
        c.spec.unwrap().volume_name.as_deref(),
        Some(volume.as_str())
    );
    let v = pvs.get(&volume).await.unwrap();
    let spec = v.spec.clone().unwrap();
    let path = base.join(&volume);
    assert_eq!(spec.local.unwrap().path, path.display().to_string());
    let required = spec.node_affinity.unwrap().required.unwrap();
    let values = required.node_selector_terms[0]
        .match_expressions
        .clone()
        .unwrap()[0]
        .values
        .clone();
    let on = eventually(Duration::from_secs(30), "writer scheduled", || async {
        pods.get("writer").await.ok()?.spec?.node_name
    })
    .await;
    assert_eq!(
        values,
        Some(vec![on.clone()]),
        "the volume is on the pod's node"
    );
    eventually(
        Duration::from_secs(120),
        "the pod wrote into the volume",
        || async {
            let s = std::fs::read_to_string(path.join("hello")).ok()?;
            (s.trim() == "hello").then_some(())
        },
    )
    .await;
    // The node holds the volume until it removes the directory.
    let v = pvs.get(&volume).await.unwrap();
    let finalizers = v.metadata.finalizers.unwrap_or_default();
    assert!(
        finalizers
            .iter()
            .any(|f| f == "rkube.io/local-path-directory"),
        "{finalizers:?}"
    );
    node_attacks(cluster, &volume).await;
    // Reclaim Delete: the claim's volume goes with it, and so does its directory.
    pods.delete("writer", Some(0)).await.unwrap();
    eventually(Duration::from_secs(60), "writer gone", || async {
        pods.get_opt("writer").await.ok()?.is_none().then_some(())
    })
    .await;
    claims.delete("data", None).await.unwrap();
    eventually(Duration::from_secs(60), "the volume deleted", || async {
        pvs.get_opt(&volume).await.ok()?.is_none().then_some(())
    })
    .await;
    assert!(!path.exists(), "{} is left on the node", path.display());
}
