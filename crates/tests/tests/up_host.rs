//! `rkube up` on a shared host: a default pod range the host already routes is left for
//! the next free one (and a named one that collides is refused, naming the route); two
//! clusters started at once run side by side, each with its own pod, Service and NodePort
//! ranges, and a claim that names no class gets a volume of the default StorageClass; a member killed is started
//! again; and `kill -9` of `rkube up` leaves no process, pod network, bridge, nftables
//! table or mount behind. A binary of its own: it adds a host route while it runs.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use client::Api;
use k8s_openapi::api::core::v1::Pod;
use rkube_tests::up::UpCluster;
use rkube_tests::{eventually, rkube_bin};
use serde_json::json;

/// A blackhole route for `net` while it lives.
struct Route(&'static str);

impl Route {
    fn add(net: &'static str) -> Route {
        let _ = Command::new("ip")
            .args(["route", "del", "blackhole", net])
            .output();
        let ok = Command::new("ip")
            .args(["route", "add", "blackhole", net])
            .status()
            .unwrap()
            .success();
        assert!(ok, "ip route add blackhole {net}");
        Route(net)
    }
}

impl Drop for Route {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["route", "del", "blackhole", self.0])
            .output();
    }
}

fn one_node() -> Vec<String> {
    ["--members", "1", "--nodes", "1"]
        .map(String::from)
        .to_vec()
}

/// The value of `flag` that `rkube up` gave its first member.
fn member_flag(up: &UpCluster, flag: &str) -> String {
    let s = up.state();
    let args = s["members"][0]["args"].as_array().unwrap();
    let i = args.iter().position(|a| a == flag).unwrap();
    args[i + 1].as_str().unwrap().to_string()
}

/// The pod range `rkube up` gave its members and nodes.
fn cluster_cidr(up: &UpCluster) -> String {
    let s = up.state();
    let args = s["nodes"][0]["args"].as_array().unwrap();
    let i = args.iter().position(|a| a == "--cluster-cidr").unwrap();
    let cidr = args[i + 1].as_str().unwrap().to_string();
    assert_eq!(member_flag(up, "--cluster-cidr"), cidr);
    cidr
}

/// Runs a pod on the cluster; its IP.
async fn pod_ip(up: &UpCluster) -> String {
    let pods = Api::<Pod>::namespaced(up.client(), "default");
    let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "image": "busybox",
            "command": ["/bin/busybox", "sleep", "3600"]}]}}))
    .unwrap();
    pods.create(&pod).await.unwrap();
    eventually(
        Duration::from_secs(60),
        "the pod running with an IP",
        || async {
            let p = pods.get("p").await.ok()?;
            rkube_tests::objects::pod_ready(&p).then(|| p.status?.pod_ip)?
        },
    )
    .await
}

fn prefix(cidr: &str) -> String {
    let parts: Vec<&str> = cidr.split('.').collect();
    format!("{}.{}.", parts[0], parts[1])
}

#[tokio::test(flavor = "multi_thread")]
async fn routed_ranges_are_left_alone_and_two_clusters_run_side_by_side() {
    assert!(rkube_tests::netns::is_root(), "pod networks need root");
    let _route = Route::add("10.244.0.0/16");
    // Named, the routed range is refused with the route named.
    let dir = tempfile::tempdir().unwrap();
    let mut refused = Command::new(rkube_bin())
        .args([
            "up",
            "--base-port",
            "0",
            "--cluster-cidr",
            "10.244.0.0/16",
            "--dir",
        ])
        .arg(dir.path().join("c"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while refused.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = Command::new("kill")
                .args(["-TERM", &refused.id().to_string()])
                .status();
            let _ = refused.wait();
            let _ = Command::new(rkube_bin())
                .args(["up", "--down", "--dir"])
                .arg(dir.path().join("c"))
                .status();
            panic!("rkube up started a cluster on a routed --cluster-cidr");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = refused.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains(
            "--cluster-cidr 10.244.0.0/16 collides with the host's route \"blackhole 10.244.0.0/16"
        ),
        "{err}"
    );
    // By default, the next free ranges. Two clusters started at the same time take
    // different ones, although neither has a bridge, a ClusterIP address or a NodePort on
    // the host yet: each `rkube up` records what it holds.
    let second = std::thread::spawn(|| UpCluster::start(&one_node()));
    let a = UpCluster::start(&one_node());
    let b = second.join().unwrap();
    let (ca, cb) = (cluster_cidr(&a), cluster_cidr(&b));
    assert_ne!(ca, "10.244.0.0/16");
    assert_ne!(cb, "10.244.0.0/16");
    assert_ne!(ca, cb);
    for flag in ["--service-cluster-ip-range", "--service-node-port-range"] {
        let (fa, fb) = (member_flag(&a, flag), member_flag(&b, flag));
        assert_ne!(fa, fb, "both clusters have {flag} {fa}");
    }
    let ipa = pod_ip(&a).await;
    assert!(ipa.starts_with(&prefix(&ca)), "{ipa} in {ca}");
    let ipb = pod_ip(&b).await;
    assert!(ipb.starts_with(&prefix(&cb)), "{ipb} in {cb}");
    default_class_volume(&a).await;
    let pool = a.cluster_dir().join("volumes");
    drop(a);
    let loops = Command::new("losetup").arg("-a").output().unwrap();
    let loops = String::from_utf8_lossy(&loops.stdout).to_string();
    assert!(
        !loops.contains(&pool.to_string_lossy().to_string()),
        "loop devices left after the cluster stopped: {loops}"
    );
}

/// A claim that names no class gets the cluster's default StorageClass (the `local`
/// provider's), and a pod writes to its volume.
async fn default_class_volume(up: &UpCluster) {
    let claims = Api::<k8s_openapi::api::core::v1::PersistentVolumeClaim>::namespaced(
        up.client(),
        "default",
    );
    let claim = serde_json::from_value(json!({"metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "20Mi"}}}}))
    .unwrap();
    let made = claims.create(&claim).await.unwrap();
    assert_eq!(
        made.spec.unwrap().storage_class_name.as_deref(),
        Some("local")
    );
    let pods = Api::<Pod>::namespaced(up.client(), "default");
    let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "writer"},
        "spec": {"containers": [{"name": "c", "image": "busybox",
            "command": ["/bin/busybox", "sh", "-c", "echo hi > /data/f && exec /bin/busybox sleep 3600"],
            "volumeMounts": [{"name": "d", "mountPath": "/data"}]}],
            "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}]}}))
    .unwrap();
    pods.create(&pod).await.unwrap();
    eventually(Duration::from_secs(90), "the writer Ready", || async {
        let p = pods.get("writer").await.ok()?;
        rkube_tests::objects::pod_ready(&p).then_some(())
    })
    .await;
    let out = up.ctl(&["exec", "writer", "--", "/bin/busybox", "cat", "/data/f"]);
    assert_eq!(out.trim(), "hi");
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit(')')
            .next()
            .is_some_and(|r| !r.trim_start().starts_with('Z'))
    })
}

fn links_with(tag: &str) -> Vec<String> {
    let out = Command::new("ip").args(["-o", "link"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            l.split(": ")
                .nth(1)
                .map(|n| n.split('@').next().unwrap_or(n).to_string())
        })
        .filter(|n| n.starts_with(tag))
        .collect()
}

fn mounts_under(dir: &Path) -> usize {
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    let d = dir.to_string_lossy().to_string();
    mounts
        .lines()
        .filter(|l| l.split(' ').nth(1).is_some_and(|m| m.starts_with(&d)))
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_members_come_back_and_a_killed_rkube_up_leaves_nothing() {
    assert!(rkube_tests::netns::is_root(), "pod networks need root");
    // Ranges of its own: the other test of this binary starts clusters on the defaults
    // at the same time.
    let mut args = one_node();
    args.extend(
        [
            "--cluster-cidr",
            "10.251.0.0/16",
            "--service-cidr",
            "10.103.0.0/16",
        ]
        .map(String::from),
    );
    let mut up = UpCluster::start(&args);
    pod_ip(&up).await;

    // A member killed is started again by `rkube up`.
    let old = up.pid("n1").unwrap();
    up.kill("n1");
    let new = eventually(Duration::from_secs(30), "n1 started again", || async {
        up.pid("n1").filter(|p| *p != old && alive(*p))
    })
    .await;
    eprintln!("n1: pid {old} killed, {new} started");
    let nodes = Api::<k8s_openapi::api::core::v1::Node>::all(up.client());
    eventually(Duration::from_secs(60), "the API back", || async {
        nodes.list(&Default::default()).await.ok()
    })
    .await;

    // `rkube up --status`: the members with the leader, and the nodes.
    let status = Command::new(rkube_bin())
        .args(["up", "--status", "--dir"])
        .arg(up.cluster_dir())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(status.status.success(), "{text}");
    assert!(text.contains("rkube up: running"), "{text}");
    assert!(text.contains("members (leader: n1)"), "{text}");
    assert!(text.contains(&format!("running (pid {new})")), "{text}");
    let w1 = text
        .lines()
        .find(|l| l.trim_start().starts_with("w1"))
        .unwrap_or("");
    assert!(
        w1.contains("running (pid") && w1.ends_with(" Ready"),
        "{text}"
    );

    // kill -9 of `rkube up`: its children stop, and take their pods and networks along.
    let pids = up.pids();
    let containers = up.node_containers("w1");
    assert!(!containers.is_empty(), "the pod's process runs");
    let bridge_tag = links_with("rk")
        .into_iter()
        .find(|l| l.ends_with("w1"))
        .expect("the node's bridge");
    let runtime = up.cluster_dir().join("w1").join("runtime");
    let netns: Vec<String> = std::fs::read_dir(runtime.join("sandboxes"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v: serde_json::Value =
                serde_json::from_slice(&std::fs::read(e.path().join("sandbox.json")).ok()?).ok()?;
            Some(v["netns"].as_str()?.to_string())
        })
        .collect();
    assert!(!netns.is_empty(), "the pod has a network namespace");
    let egress =
        std::fs::read_to_string(runtime.join("egress-table")).expect("the node's egress table");
    up.kill_up();
    let killed = Instant::now();
    let gone = || {
        let mut left: Vec<String> = pids
            .iter()
            .filter(|(_, p)| alive(*p))
            .map(|(n, p)| format!("{n} (pid {p})"))
            .collect();
        left.extend(
            containers
                .iter()
                .filter(|(p, _)| alive(*p as u32))
                .map(|(p, _)| format!("container pid {p}")),
        );
        left.extend(
            netns
                .iter()
                .filter(|n| Path::new("/run/netns").join(n).exists())
                .cloned(),
        );
        left.extend(links_with(&bridge_tag));
        let tables = Command::new("nft")
            .args(["list", "tables"])
            .output()
            .unwrap();
        if String::from_utf8_lossy(&tables.stdout).contains(egress.trim()) {
            left.push(egress.trim().to_string());
        }
        if mounts_under(&up.cluster_dir()) > 0 {
            left.push("mounts".into());
        }
        left
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let left = gone();
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "left behind after kill -9 of rkube up: {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "everything gone {:?} after kill -9 of rkube up",
        killed.elapsed()
    );
    // The ranges it held on the host are given up by `rkube up --down` (which dropping
    // the cluster runs).
    let dir = up.cluster_dir().to_string_lossy().to_string();
    drop(up);
    let claims = std::env::temp_dir().join("rkube-up");
    let held: Vec<_> = std::fs::read_dir(&claims)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| std::fs::read_to_string(e.path()).is_ok_and(|c| c.contains(&dir)))
        .map(|e| e.path())
        .collect();
    assert!(held.is_empty(), "claims left for {dir}: {held:?}");
}
