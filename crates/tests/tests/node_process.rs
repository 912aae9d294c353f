//! The node agent on the process runtime, against a real control plane: registration, the
//! shared pod lifecycle scenario, cgroup limits and usage, `logs -f`, the agent API's
//! authentication, a kubelet restart that leaves running pods alone, and static pods.
//! Containers run as real processes (root: volumes are bind-mounted in a private mount
//! namespace).

use std::time::Duration;

use client::metrics::PodMetrics;
use client::Api;
use k8s_openapi::api::core::v1::{Node, Pod};
use rkube_tests::eventually;
use rkube_tests::fake_kubelet::cluster_with_nodes;
use rkube_tests::netns::is_root;
use rkube_tests::node_agent::{alive, NodeAgent};
use rkube_tests::pod_lifecycle::{container, create, ctl, running, wait_pod};
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn pods_run_for_real_on_the_process_runtime() {
    assert!(is_root(), "the node tests mount volumes and need root");
    let (cluster, client, _fake) = cluster_with_nodes(1, &[]).await;
    let eps = cluster.api_access();
    let mut node = NodeAgent::start(&cluster.node_access("w1"), "w1", &[]);
    let n = node.wait_ready(&client).await;
    let st = n.status.unwrap();
    let cpus = std::thread::available_parallelism()
        .unwrap()
        .get()
        .to_string();
    assert_eq!(st.capacity.as_ref().unwrap()["cpu"].0, cpus);
    assert_eq!(st.capacity.as_ref().unwrap()["pods"].0, "110");
    assert!(st.capacity.as_ref().unwrap().contains_key("memory"));
    assert_eq!(n.metadata.labels.unwrap()["kubernetes.io/hostname"], "w1");
    let conds: Vec<String> = st
        .conditions
        .unwrap()
        .into_iter()
        .map(|c| c.type_)
        .collect();
    for c in ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"] {
        assert!(conds.contains(&c.to_string()), "{c} in {conds:?}");
    }

    let tmp = tempfile::tempdir().unwrap();
    let flags = tmp.path().join("flags");
    std::fs::create_dir_all(&flags).unwrap();
    let mnt = tmp.path().join("mnt").to_string_lossy().to_string();
    rkube_tests::pod_lifecycle::run(&client, &eps, "w1", "busybox", &mnt, &flags).await;

    // cgroup limits hold, and usage is published: a busy loop limited to 200m uses at
    // most that (a 500 ms sample spans at most six 100 ms quota periods: 240m).
    create(
        &client,
        json!({"metadata": {"name": "busy"},
        "spec": {"nodeName": "w1", "containers": [{"name": "spin", "image": "busybox",
            "command": ["/bin/sh", "-c", "while :; do :; done"],
            "resources": {"limits": {"cpu": "200m", "memory": "64Mi"}}}]}}),
    )
    .await;
    let metrics = Api::<PodMetrics>::namespaced(client.clone(), "default");
    let samples = std::sync::Arc::new(std::sync::Mutex::new(Vec::<(String, i64, i64)>::new()));
    eventually(
        Duration::from_secs(30),
        "three usage samples of busy",
        || {
            let metrics = &metrics;
            let samples = samples.clone();
            async move {
                let m = metrics.get("busy").await.ok()?;
                let c = m.containers.iter().find(|c| c.name == "spin")?;
                let cpu = client::quantity::parse_milli(&c.usage.get("cpu")?.0)?;
                let mem = client::quantity::parse(&c.usage.get("memory")?.0)?;
                let ts = m.timestamp.clone()?;
                let mut seen = samples.lock().unwrap();
                if seen.last().map(|s| &s.0) != Some(&ts) {
                    seen.push((ts, cpu, mem));
                }
                (seen.len() >= 3).then_some(())
            }
        },
    )
    .await;
    let seen = samples.lock().unwrap().clone();
    eprintln!("usage of busy (limit 200m): {seen:?}");
    for (_, cpu, mem) in &seen {
        assert!(*cpu <= 300, "cpu {cpu}m over a 200m limit: {seen:?}");
        assert!(*mem > 0, "{seen:?}");
    }
    assert!(seen.iter().any(|(_, cpu, _)| *cpu > 0), "{seen:?}");
    let top = ctl(&eps, &["top", "pods"]);
    let out = String::from_utf8_lossy(&top.stdout);
    assert!(top.status.success() && out.contains("busy"), "{out}");
    let pods = Api::<Pod>::namespaced(client.clone(), "default");
    pods.delete("busy", Some(0)).await.unwrap();

    // No command: the process runtime cannot run an image's entrypoint, and says so.
    create(
        &client,
        json!({"metadata": {"name": "nocmd"},
        "spec": {"nodeName": "w1", "containers": [{"name": "c", "image": "busybox"}]}}),
    )
    .await;
    let p = wait_pod(&client, "nocmd", "nocmd waiting", |p| {
        container(p, "c")["state"]["waiting"]["reason"] == "CreateContainerError"
    })
    .await;
    let msg = container(&p, "c")["state"]["waiting"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(msg.contains("cannot run an image's entrypoint"), "{msg}");
    pods.delete("nocmd", Some(0)).await.unwrap();

    // Over its memory limit, a container is OOM-killed, and its status says so.
    create(&client, json!({"metadata": {"name": "hog"},
        "spec": {"nodeName": "w1", "restartPolicy": "Never", "containers": [{"name": "c",
            "image": "busybox",
            "command": ["/bin/sh", "-c", "x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo survived"],
            "resources": {"limits": {"memory": "32Mi"}}}]}}))
    .await;
    let hog = wait_pod(&client, "hog", "hog killed", |p| {
        container(p, "c")["state"]["terminated"].is_object()
    })
    .await;
    let t = container(&hog, "c")["state"]["terminated"].clone();
    assert_eq!(t["reason"], "OOMKilled", "{t}");
    assert_eq!(t["exitCode"], 137, "{t}");
    pods.delete("hog", Some(0)).await.unwrap();

    // logs -f streams lines as the container writes them.
    create(&client, json!({"metadata": {"name": "ticker"},
        "spec": {"nodeName": "w1", "containers": [{"name": "c", "image": "busybox",
            "command": ["/bin/sh", "-c", "i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.2; done"]}]}}))
    .await;
    wait_pod(&client, "ticker", "ticker running", |p| running(p, "c")).await;
    let mut follow = std::process::Command::new(rkube_tests::rkube_bin())
        .args(["ctl", "--config", &eps, "logs", "-f", "ticker"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = follow.stdout.take().unwrap();
    let lines = tokio::task::spawn_blocking(move || {
        use std::io::BufRead;
        std::io::BufReader::new(stdout)
            .lines()
            .take(15)
            .collect::<Result<Vec<_>, _>>()
    });
    let lines = tokio::time::timeout(Duration::from_secs(30), lines).await;
    let _ = follow.kill();
    let _ = follow.wait();
    let lines = lines.expect("15 lines within 30 s").unwrap().unwrap();
    assert_eq!(lines[0], "tick 1");
    assert_eq!(lines[14], "tick 15", "{lines:?}");
    pods.delete("ticker", Some(0)).await.unwrap();

    // The node agent answers the apiserver alone.
    let n = Api::<Node>::all(client.clone()).get("w1").await.unwrap();
    let port = n
        .status
        .unwrap()
        .daemon_endpoints
        .unwrap()
        .kubelet_endpoint
        .unwrap()
        .port;
    let exec = rkube_proto::api::ExecRequest {
        namespace: "default".into(),
        pod: "ticker".into(),
        command: vec!["/bin/true".into()],
        ..Default::default()
    };
    // Over TLS only: a plaintext caller gets nothing.
    let plain = async {
        let mut c = rkube_proto::api::node_agent_client::NodeAgentClient::connect(format!(
            "http://127.0.0.1:{port}"
        ))
        .await
        .map_err(|e| e.to_string())?;
        c.exec(exec.clone()).await.map_err(|e| e.to_string())
    };
    let plain = tokio::time::timeout(Duration::from_secs(10), plain).await;
    assert!(matches!(plain, Ok(Err(_))), "plaintext call: {plain:?}");
    // Its certificate names the node and its address; a node's own client certificate
    // is verified but may not call.
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let other = cluster
        .pki
        .issue("system:node:w2", &["system:nodes"], pki::Usage::Client, &[]);
    let expected = pki::Expected {
        ca_pem: cluster.pki.ca.cert_pem(),
        identity: (&other.cert_pem, &other.key_pem),
        common_name: "system:node:w1",
    };
    let ch = pki::dial_verified(addr, expected, Duration::from_secs(5))
        .await
        .unwrap();
    let denied = rkube_proto::api::node_agent_client::NodeAgentClient::new(ch)
        .exec(exec)
        .await
        .unwrap_err();
    assert_eq!(denied.code(), tonic::Code::PermissionDenied, "{denied}");

    // A kubelet restart leaves running pods alone: same process, same container.
    create(
        &client,
        json!({"metadata": {"name": "steady"},
        "spec": {"nodeName": "w1", "containers": [{"name": "c", "image": "busybox",
            "command": ["/bin/sh", "-c", "sleep 3600"]}]}}),
    )
    .await;
    eventually(Duration::from_secs(30), "only steady left", || async {
        (pods.list(&Default::default()).await.ok()?.items.len() == 1).then_some(())
    })
    .await;
    let before = wait_pod(&client, "steady", "steady running", |p| running(p, "c")).await;
    let id_before = container(&before, "c")["containerID"].clone();
    let live_before: Vec<_> = node
        .container_pids()
        .into_iter()
        .filter(|(p, t)| alive(*p, *t))
        .collect();
    assert!(!live_before.is_empty());
    let adopted_before = node.log().matches("adopted a running pod").count();
    node.restart();
    node.wait_ready(&client).await;
    eventually(
        Duration::from_secs(30),
        "the new kubelet adopts steady",
        || async {
            (node.log().matches("adopted a running pod").count() > adopted_before).then_some(())
        },
    )
    .await;
    let after = pods.get("steady").await.unwrap();
    assert_eq!(container(&after, "c")["containerID"], id_before);
    assert_eq!(container(&after, "c")["restartCount"], 0);
    for (pid, t) in live_before {
        assert!(
            alive(pid, t),
            "container process {pid} survived the kubelet restart"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn static_pods_run_and_are_mirrored() {
    assert!(
        is_root(),
        "the node tests run real containers and need root"
    );
    let (cluster, client, _fake) = cluster_with_nodes(1, &[]).await;
    let manifests = tempfile::tempdir().unwrap();
    let path = manifests.path().join("static-web.yaml");
    std::fs::write(
        &path,
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: static-web\nspec:\n  containers:\n  - name: c\n    image: busybox\n    command: [/bin/sh, -c, 'sleep 3600']\n",
    )
    .unwrap();
    let dir = manifests.path().to_string_lossy().to_string();
    let node = NodeAgent::start(
        &cluster.node_access("w1"),
        "w1",
        &[
            "--pod-manifest-path",
            &dir,
            "--file-check-frequency-ms",
            "300",
        ],
    );
    node.wait_ready(&client).await;
    // The mirror pod shows the static pod, running.
    let mirror = wait_pod(&client, "static-web-w1", "mirror pod running", |p| {
        running(p, "c")
    })
    .await;
    let a = mirror.metadata.annotations.clone().unwrap();
    assert!(a.contains_key("kubernetes.io/config.mirror"), "{a:?}");
    assert_eq!(a["kubernetes.io/config.source"], "file");
    let owner = &mirror.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!((owner.kind.as_str(), owner.name.as_str()), ("Node", "w1"));
    let id = container(&mirror, "c")["containerID"].clone();

    // Deleting the mirror does not stop the pod: the mirror comes back, same container.
    let pods = Api::<Pod>::namespaced(client.clone(), "default");
    pods.delete("static-web-w1", Some(0)).await.unwrap();
    let again = wait_pod(&client, "static-web-w1", "mirror pod re-created", |p| {
        p.metadata.uid != mirror.metadata.uid && container(p, "c")["containerID"] == id
    })
    .await;
    assert_eq!(container(&again, "c")["restartCount"], 0);

    // Removing the manifest stops the pod and removes its mirror.
    let procs: Vec<_> = node.container_pids();
    assert!(!procs.is_empty());
    std::fs::remove_file(&path).unwrap();
    eventually(Duration::from_secs(30), "mirror pod gone", || async {
        pods.get_opt("static-web-w1")
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;
    eventually(
        Duration::from_secs(30),
        "the static pod's process stopped",
        || async { procs.iter().all(|(p, t)| !alive(*p, *t)).then_some(()) },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn disk_pressure_evicts_best_effort_pods_first() {
    assert!(
        is_root(),
        "the node tests run real containers and need root"
    );
    let (cluster, client, _fake) = cluster_with_nodes(1, &[]).await;
    // The node's filesystem is a 64 MiB tmpfs; below 16 MiB free it is under pressure.
    let node = NodeAgent::start_with(
        &cluster.node_access("w1"),
        "w1",
        &[
            "--eviction-hard",
            "nodefs.available<16Mi",
            "--eviction-interval-ms",
            "3000",
        ],
        Some("64m"),
    );
    node.wait_ready(&client).await;
    let sleeper = |name: &str, resources: serde_json::Value| {
        json!({"metadata": {"name": name}, "spec": {"nodeName": "w1", "containers": [
            {"name": "c", "image": "busybox", "command": ["/bin/sh", "-c", "sleep 3600"],
             "resources": resources}]}})
    };
    create(
        &client,
        sleeper(
            "guaranteed",
            json!({"requests": {"cpu": "100m", "memory": "64Mi"},
        "limits": {"cpu": "100m", "memory": "64Mi"}}),
        ),
    )
    .await;
    create(&client, sleeper("besteffort", json!({}))).await;
    wait_pod(&client, "guaranteed", "guaranteed running", |p| {
        running(p, "c")
    })
    .await;
    wait_pod(&client, "besteffort", "besteffort running", |p| {
        running(p, "c")
    })
    .await;

    // Fill the disk: the BestEffort pod is evicted, the Guaranteed one is not (yet).
    let filler = node.data_dir().join("filler");
    std::fs::write(&filler, vec![0u8; 52 << 20]).unwrap();
    let evicted = wait_pod(&client, "besteffort", "besteffort evicted", |p| {
        rkube_tests::pod_lifecycle::status(p)["reason"] == "Evicted"
    })
    .await;
    let pods = Api::<Pod>::namespaced(client.clone(), "default");
    let g = pods.get("guaranteed").await.unwrap();
    assert!(
        running(&g, "c"),
        "the Guaranteed pod still runs when the BestEffort one is evicted"
    );
    let st = rkube_tests::pod_lifecycle::status(&evicted);
    assert_eq!(st["phase"], "Failed");
    assert_eq!(
        st["message"],
        "The node was low on resource: ephemeral-storage."
    );
    let n = Api::<Node>::all(client.clone()).get("w1").await.unwrap();
    let disk = n
        .status
        .unwrap()
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "DiskPressure")
        .unwrap();
    assert_eq!(disk.status, "True");
    // Space freed: no more evictions; the Guaranteed pod keeps running.
    std::fs::remove_file(&filler).unwrap();
    eventually(Duration::from_secs(30), "DiskPressure cleared", || async {
        let n = Api::<Node>::all(client.clone()).get("w1").await.ok()?;
        let c = n
            .status?
            .conditions?
            .into_iter()
            .find(|c| c.type_ == "DiskPressure")?;
        (c.status == "False").then_some(())
    })
    .await;
    assert!(running(&pods.get("guaranteed").await.unwrap(), "c"));
}

#[tokio::test(flavor = "multi_thread")]
async fn pods_get_their_own_network_from_the_node_pod_cidr() {
    assert!(is_root(), "pod networks need root");
    // A cluster CIDR and bridge of this test's own.
    let n = 200 + std::process::id() % 50;
    let cidr = format!("10.{n}.0.0/16");
    let bridge = format!("rkp{}", std::process::id() % 100_000);
    let (cluster, client, _fake) =
        rkube_tests::fake_kubelet::cluster_with_nodes_and(1, &[], &["--cluster-cidr", &cidr]).await;
    let node = NodeAgent::start(
        &cluster.node_access("w1"),
        "w1",
        &["--pod-network", "cni", "--cni-bridge", &bridge],
    );
    let nd = node.wait_ready(&client).await;
    let pod_cidr = nd.spec.unwrap().pod_cidr.unwrap();
    assert!(pod_cidr.starts_with(&format!("10.{n}.")), "{pod_cidr}");
    let prefix = pod_cidr.trim_end_matches("0/24").to_string();

    let www = tempfile::tempdir().unwrap();
    let w = www.path().join("www").to_string_lossy().to_string();
    create(&client, json!({"metadata": {"name": "web"},
        "spec": {"nodeName": "w1", "volumes": [{"name": "www", "emptyDir": {}}],
            "containers": [{"name": "c", "image": "busybox",
                "command": ["/bin/sh", "-c", format!("echo hello-from-pod > {w}/index.html; exec /bin/busybox httpd -f -p 8080 -h {w}")],
                "volumeMounts": [{"name": "www", "mountPath": w}],
                "readinessProbe": {"httpGet": {"path": "/index.html", "port": 8080}, "periodSeconds": 1}}]}}))
    .await;
    rkube_tests::pod_lifecycle::allow_privileged(&client, "default").await;
    create(
        &client,
        json!({"metadata": {"name": "hostnet"},
        "spec": {"nodeName": "w1", "hostNetwork": true, "containers": [{"name": "c",
            "image": "busybox", "command": ["/bin/sh", "-c", "sleep 3600"]}]}}),
    )
    .await;
    let web = wait_pod(&client, "web", "web Ready", |p| {
        container(p, "c")["ready"] == true
    })
    .await;
    let ip = rkube_tests::pod_lifecycle::status(&web)["podIP"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(ip.starts_with(&prefix), "pod IP {ip} in {pod_cidr}");
    let addr: std::net::SocketAddr = format!("{ip}:8080").parse().unwrap();
    let body = rkube_tests::http_get(addr, "/index.html").await.unwrap();
    assert!(body.contains("hello-from-pod"), "{body}");
    let h = wait_pod(&client, "hostnet", "hostnet running", |p| running(p, "c")).await;
    assert_eq!(rkube_tests::pod_lifecycle::status(&h)["podIP"], "127.0.0.1");

    // Deleting the pod removes its network namespace.
    let netns = || {
        std::fs::read_dir("/var/run/netns")
            .map(|d| {
                d.flatten()
                    .filter(|e| e.file_name().to_string_lossy().starts_with("rkube-"))
                    .count()
            })
            .unwrap_or(0)
    };
    let before = netns();
    assert!(before >= 1);
    let pods = Api::<Pod>::namespaced(client.clone(), "default");
    pods.delete("web", Some(0)).await.unwrap();
    eventually(Duration::from_secs(30), "web's netns removed", || async {
        (pods.get_opt("web").await.ok()?.is_none() && netns() == before - 1).then_some(())
    })
    .await;
}
