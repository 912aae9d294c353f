//! The volume loop with the `local` provider's volumes, on a real node agent: a claim of
//! a WaitForFirstConsumer StorageClass of the provider is provisioned on the node its pod
//! lands on, as a sparse file of the size asked for, attached there as a loop device; the
//! pod writes to it, is deleted (the volume is detached), and a new pod reads the data;
//! deleting the claim (reclaim policy Delete) removes the backing file. A node reads its
//! own VolumeAttachments only.
//!
//! Needs root (loop devices, mounts). Every file, mount and loop device it makes is under
//! its temporary directory and removed at the end, also when it fails ([`Leftovers`]).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use client::{Api, Client};
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::{StorageClass, VolumeAttachment};
use rkube_tests::cloud_conformance::{self, write_inventory};
use rkube_tests::fake_kubelet::cluster_with_nodes_and;
use rkube_tests::netns::is_root;
use rkube_tests::node_agent::NodeAgent;
use rkube_tests::{eventually, Cluster};
use serde_json::json;

const NS: &str = "default";

/// Detaches the loop devices of the pool's files and unmounts what is under `dir` when
/// dropped: what a failed run leaves behind.
struct Leftovers {
    dir: PathBuf,
}

impl Drop for Leftovers {
    fn drop(&mut self) {
        node::kubelet::unmount_under(&self.dir);
        let out = std::process::Command::new("losetup")
            .args(["-l", "-n", "-O", "NAME,BACK-FILE"])
            .output();
        let text = out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
        for line in text.unwrap_or_default().lines() {
            let mut cols = line.split_whitespace();
            if let (Some(dev), Some(file)) = (cols.next(), cols.next()) {
                if Path::new(file).starts_with(&self.dir) {
                    let _ = std::process::Command::new("losetup")
                        .args(["-d", dev])
                        .status();
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_claim_of_the_local_provider_follows_its_pod_and_keeps_its_data() {
    assert!(is_root(), "loop devices and mounts need root");
    let tmp = tempfile::tempdir().unwrap();
    let _leftovers = Leftovers {
        dir: tmp.path().to_path_buf(),
    };
    let started = std::time::Instant::now();
    tokio::time::timeout(Duration::from_secs(300), scenario(tmp.path()))
        .await
        .expect("the volume scenario finishes within 5 minutes");
    eprintln!("the volume scenario took {:?}", started.elapsed());
}

/// A cluster whose server runs the cloud-controller-manager with the `local` provider
/// (volumes under `dir/pool`), and node w1, initialized by it.
pub(crate) async fn cluster_with_local_volumes(dir: &Path) -> (Cluster, Client, NodeAgent) {
    let inventory = dir.join("inventory.json");
    write_inventory(&inventory, &[("w1", "rack-1", "running")]);
    let pool = dir.join("pool").display().to_string();
    let plugin = cloud_conformance::local_provider_flags(&inventory, &["--volume-pool", &pool]);
    let plugin: Vec<&str> = plugin.iter().map(String::as_str).collect();
    let (cluster, client, _fake) = cluster_with_nodes_and(1, &[], &plugin).await;
    let node = NodeAgent::start(
        &cluster.node_access("w1"),
        "w1",
        &["--cloud-provider", "external"],
    );
    node.wait_ready(&client).await;
    let classes = Api::<StorageClass>::all(client.clone());
    let class: StorageClass = serde_json::from_value(json!({
        "metadata": {"name": "local-block"}, "provisioner": "local",
        "volumeBindingMode": "WaitForFirstConsumer", "reclaimPolicy": "Delete"}))
    .unwrap();
    classes.create(&class).await.expect("create a StorageClass");
    (cluster, client, node)
}

pub(crate) fn claim(name: &str, size: &str) -> PersistentVolumeClaim {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": NS},
        "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "local-block",
            "resources": {"requests": {"storage": size}}}}))
    .unwrap()
}

/// A pod running `script` with claim `claim` at `mnt` (a path of the test's: the process
/// runtime's containers see the host's filesystem with their volumes mounted on it).
pub(crate) fn pod(name: &str, claim: &str, mnt: &Path, script: &str, restart: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": NS},
        "spec": {"terminationGracePeriodSeconds": 1, "restartPolicy": restart,
            "containers": [{"name": "c", "image": "busybox",
                "command": ["/bin/sh", "-c", script],
                "volumeMounts": [{"name": "data", "mountPath": mnt}]}],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}]}}))
    .unwrap()
}

fn phase(p: &Pod) -> &str {
    p.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

async fn gone(pods: &Api<Pod>, name: &str) {
    pods.delete(name, Some(0)).await.unwrap();
    eventually(
        Duration::from_secs(60),
        &format!("pod {name} gone"),
        || async { pods.get_opt(name).await.ok()?.is_none().then_some(()) },
    )
    .await;
}

async fn attachments(client: &Client) -> Vec<VolumeAttachment> {
    Api::<VolumeAttachment>::all(client.clone())
        .list(&Default::default())
        .await
        .unwrap()
        .items
}

async fn scenario(dir: &Path) {
    let (cluster, client, _node) = cluster_with_local_volumes(dir).await;
    let claims = Api::<PersistentVolumeClaim>::namespaced(client.clone(), NS);
    claims.create(&claim("data", "40Mi")).await.unwrap();
    let uid = claims.get("data").await.unwrap().metadata.uid.unwrap();
    let volume = format!("pvc-{uid}");
    let pods = Api::<Pod>::namespaced(client.clone(), NS);
    let mnt = dir.join("mnt");
    let writer = format!(
        "echo hello > {}/hello && sync && exec sleep 3600",
        mnt.display()
    );
    pods.create(&pod("writer", "data", &mnt, &writer, "Always"))
        .await
        .unwrap();
    eventually(Duration::from_secs(120), "writer Running", || async {
        (phase(&pods.get("writer").await.ok()?) == "Running").then_some(())
    })
    .await;
    // Provisioned on the pod's node, at the size asked for (in whole MiB).
    let pvs = Api::<PersistentVolume>::all(client.clone());
    let pv = pvs.get(&volume).await.expect("the provisioned volume");
    let spec = pv.spec.clone().unwrap();
    let csi = spec.csi.clone().unwrap();
    assert_eq!(
        (csi.driver.as_str(), csi.volume_handle.clone()),
        ("local", format!("w1/{volume}"))
    );
    let term = &spec
        .node_affinity
        .unwrap()
        .required
        .unwrap()
        .node_selector_terms[0];
    let values = term.match_expressions.clone().unwrap()[0].values.clone();
    assert_eq!(
        values,
        Some(vec!["w1".to_string()]),
        "pinned to the pod's node"
    );
    let file = dir.join("pool/w1").join(format!("{volume}.img"));
    assert_eq!(
        std::fs::metadata(&file).expect("the backing file").len(),
        40 << 20
    );
    // Attached on w1: the node reads its attachment, and not another node's.
    let vas = attachments(&client).await;
    assert_eq!(vas.len(), 1, "one attachment: {vas:?}");
    let own = vas[0].metadata.name.clone().unwrap();
    assert!(vas[0].status.as_ref().is_some_and(|s| s.attached));
    another_nodes_attachment_is_refused(&cluster, &client, &own).await;

    gone(&pods, "writer").await;
    eventually(Duration::from_secs(60), "the volume detached", || async {
        attachments(&client).await.is_empty().then_some(())
    })
    .await;
    let reader = format!("test \"$(cat {}/hello)\" = hello", mnt.display());
    pods.create(&pod("reader", "data", &mnt, &reader, "Never"))
        .await
        .unwrap();
    let ended = eventually(Duration::from_secs(120), "reader finished", || async {
        let p = pods.get("reader").await.ok()?;
        matches!(phase(&p), "Succeeded" | "Failed").then(|| phase(&p).to_string())
    })
    .await;
    assert_eq!(ended, "Succeeded", "the new pod read what the first wrote");
    gone(&pods, "reader").await;
    claims.delete("data", None).await.unwrap();
    eventually(
        Duration::from_secs(60),
        "the volume and its file deleted",
        || async {
            let pv_gone = pvs.get_opt(&volume).await.ok()?.is_none();
            (pv_gone && !file.exists()).then_some(())
        },
    )
    .await;
}

/// A node's credentials get its own VolumeAttachment `own`, and are refused another
/// node's (and a list of them all).
async fn another_nodes_attachment_is_refused(cluster: &Cluster, admin: &Client, own: &str) {
    let other: VolumeAttachment = serde_json::from_value(json!({
        "metadata": {"name": "elsewhere"},
        "spec": {"attacher": "someone-else", "nodeName": "w2",
            "source": {"persistentVolumeName": "pv-of-w2"}}}))
    .unwrap();
    let vas = Api::<VolumeAttachment>::all(admin.clone());
    vas.create(&other).await.unwrap();
    let addrs: Vec<SocketAddr> = cluster.members.iter().map(|m| m.client).collect();
    let creds = cluster
        .pki
        .issue_files("w1-as-node", "system:node:w1", &["system:nodes"]);
    let as_w1 = Client::new(cluster.pki.client_config(&addrs, &creds)).unwrap();
    let node_vas = Api::<VolumeAttachment>::all(as_w1);
    node_vas
        .get(own)
        .await
        .expect("a node reads its own attachment");
    let e = node_vas.get("elsewhere").await.unwrap_err();
    assert!(e.is_forbidden(), "another node's attachment: {e}");
    let e = node_vas.list(&Default::default()).await.unwrap_err();
    assert!(e.is_forbidden(), "all attachments: {e}");
    vas.delete("elsewhere", None).await.unwrap();
}
