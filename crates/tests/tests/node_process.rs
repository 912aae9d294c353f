//! The node agent on the process runtime, against a real control plane: registration,
//! init containers, volumes and env, restart policies with crash-loop back-off, probes,
//! graceful termination, and a kubelet restart that leaves running pods alone. Containers
//! run as real processes (root: volumes are bind-mounted in a private mount namespace).

use std::time::Duration;

use client::metrics::PodMetrics;
use client::{Api, Client};
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use rkube_tests::eventually;
use rkube_tests::fake_kubelet::cluster_with_nodes;
use rkube_tests::netns::is_root;
use rkube_tests::node_agent::{alive, NodeAgent};
use serde_json::{json, Value};

fn status(p: &Pod) -> Value {
    serde_json::to_value(p.status.clone().unwrap_or_default()).unwrap()
}

fn container(p: &Pod, name: &str) -> Value {
    status(p)["containerStatuses"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == name).cloned())
        .unwrap_or(Value::Null)
}

async fn create(client: &Client, v: Value) -> Pod {
    let pods = Api::<Pod>::namespaced(client.clone(), "default");
    pods.create(&serde_json::from_value(v).unwrap())
        .await
        .unwrap()
}

/// Waits until `pred` holds for pod `name`; returns the pod.
async fn wait_pod(client: &Client, name: &str, what: &str, pred: impl Fn(&Pod) -> bool) -> Pod {
    let pods = Api::<Pod>::namespaced(client.clone(), "default");
    eventually(Duration::from_secs(60), what, || async {
        let p = pods.get(name).await.ok()?;
        pred(&p).then_some(p)
    })
    .await
}

fn phase(p: &Pod) -> String {
    status(p)["phase"].as_str().unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn pods_run_for_real_on_the_process_runtime() {
    assert!(is_root(), "the node tests mount volumes and need root");
    let (cluster, client, _fake) = cluster_with_nodes(1, &[]).await;
    let mut node = NodeAgent::start(&cluster.endpoints(), "w1", &[]);
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
    let mnt = tempfile::tempdir().unwrap();
    let m = |p: &str| mnt.path().join(p).to_string_lossy().to_string();

    // Init container, emptyDir, configMap and secret volumes, env from all sources.
    Api::<ConfigMap>::namespaced(client.clone(), "default")
        .create(
            &serde_json::from_value(
                json!({"metadata": {"name": "cfg"}, "data": {"greeting": "hello"}}),
            )
            .unwrap(),
        )
        .await
        .unwrap();
    Api::<Secret>::namespaced(client.clone(), "default")
        .create(
            &serde_json::from_value(
                json!({"metadata": {"name": "sec"}, "stringData": {"password": "s3cret"}}),
            )
            .unwrap(),
        )
        .await
        .unwrap();
    let script = format!(
        "cat {w}/init.txt; echo \"$GREETING\"; cat {c}/greeting; echo; cat {s}/password; echo; echo \"$POD_NAME $PASSWORD\"",
        w = m("work"),
        c = m("cfg"),
        s = m("sec")
    );
    let p = create(&client, json!({"metadata": {"name": "lifecycle"},
        "spec": {"nodeName": "w1", "restartPolicy": "Never",
            "volumes": [{"name": "work", "emptyDir": {}},
                {"name": "cfg", "configMap": {"name": "cfg"}},
                {"name": "sec", "secret": {"secretName": "sec"}}],
            "initContainers": [{"name": "prep", "image": "busybox",
                "command": ["/bin/sh", "-c", format!("echo init > {}/init.txt", m("work"))],
                "volumeMounts": [{"name": "work", "mountPath": m("work")}]}],
            "containers": [{"name": "main", "image": "busybox",
                "command": ["/bin/sh", "-c", script],
                "env": [{"name": "GREETING", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "greeting"}}},
                    {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "password"}}},
                    {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                "volumeMounts": [{"name": "work", "mountPath": m("work")},
                    {"name": "cfg", "mountPath": m("cfg")},
                    {"name": "sec", "mountPath": m("sec"), "readOnly": true}]}]}}))
    .await;
    let uid = p.metadata.uid.clone().unwrap();
    let done = wait_pod(&client, "lifecycle", "lifecycle Succeeded", |p| {
        phase(p) == "Succeeded"
    })
    .await;
    let main = container(&done, "main");
    assert_eq!(main["state"]["terminated"]["exitCode"], 0, "{main}");
    assert_eq!(main["state"]["terminated"]["reason"], "Completed", "{main}");
    let init = &status(&done)["initContainerStatuses"][0];
    assert_eq!(init["state"]["terminated"]["exitCode"], 0, "{init}");
    assert_eq!(
        node.logs("default", "lifecycle", &uid, "main"),
        ["init", "hello", "hello", "s3cret", "lifecycle s3cret"]
    );
    // Logs through the apiserver and the node agent, as kubectl logs reads them.
    let eps = cluster.endpoints();
    let ctl = |args: &[&str]| {
        std::process::Command::new(rkube_tests::rkube_bin())
            .args(["ctl", "--server", &eps])
            .args(args)
            .output()
            .unwrap()
    };
    let out = ctl(&["logs", "lifecycle", "-c", "main"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "init\nhello\nhello\ns3cret\nlifecycle s3cret\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = ctl(&[
        "logs",
        "pod/lifecycle",
        "-c",
        "main",
        "--tail",
        "1",
        "--timestamps",
    ]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        text.starts_with("20") && text.ends_with(" lifecycle s3cret\n"),
        "{text}"
    );
    let out = ctl(&["logs", "lifecycle"]);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        !out.status.success() && err.contains("choose one of: [main prep]"),
        "{err}"
    );
    let st = status(&done);
    assert_eq!(st["podIP"], "127.0.0.1");
    assert_eq!(st["hostIP"], "127.0.0.1");
    assert!(st["startTime"].is_string());

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
    let top = std::process::Command::new(rkube_tests::rkube_bin())
        .args(["ctl", "--server", &cluster.endpoints(), "top", "pods"])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&top.stdout);
    assert!(top.status.success() && out.contains("busy"), "{out}");
    Api::<Pod>::namespaced(client.clone(), "default")
        .delete("busy", Some(0))
        .await
        .unwrap();

    // A container that keeps failing is restarted with back-off (CrashLoopBackOff).
    create(
        &client,
        json!({"metadata": {"name": "crasher"},
        "spec": {"nodeName": "w1", "containers": [{"name": "c", "image": "busybox",
            "command": ["/bin/sh", "-c", "echo boom; exit 3"]}]}}),
    )
    .await;
    let p = wait_pod(
        &client,
        "crasher",
        "crasher in CrashLoopBackOff after 2 restarts",
        |p| {
            let c = container(p, "c");
            c["restartCount"].as_i64().unwrap_or(0) >= 2
                && c["state"]["waiting"]["reason"] == "CrashLoopBackOff"
        },
    )
    .await;
    let c = container(&p, "c");
    assert_eq!(c["lastState"]["terminated"]["exitCode"], 3, "{c}");
    assert_eq!(c["ready"], false);
    let out = ctl(&["logs", "crasher", "--previous"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "boom\n");

    // A failing liveness probe restarts the container; readiness follows its probe.
    let flag = m("ready-flag");
    create(
        &client,
        json!({"metadata": {"name": "probed"},
        "spec": {"nodeName": "w1", "containers": [
            {"name": "sick", "image": "busybox", "command": ["/bin/sh", "-c", "sleep 3600"],
             "livenessProbe": {"exec": {"command": ["/bin/false"]},
                "periodSeconds": 1, "failureThreshold": 2}},
            {"name": "flappy", "image": "busybox", "command": ["/bin/sh", "-c", "sleep 3600"],
             "readinessProbe": {"exec": {"command": ["/usr/bin/test", "-f", flag]},
                "periodSeconds": 1}}]}}),
    )
    .await;
    wait_pod(&client, "probed", "liveness restarts sick", |p| {
        container(p, "sick")["restartCount"].as_i64().unwrap_or(0) >= 1
    })
    .await;
    let p = Api::<Pod>::namespaced(client.clone(), "default")
        .get("probed")
        .await
        .unwrap();
    assert_eq!(container(&p, "flappy")["ready"], false);
    std::fs::write(&flag, "").unwrap();
    wait_pod(&client, "probed", "flappy Ready", |p| {
        container(p, "flappy")["ready"] == true
    })
    .await;
    std::fs::remove_file(&flag).unwrap();
    wait_pod(&client, "probed", "flappy not Ready again", |p| {
        container(p, "flappy")["ready"] == false
    })
    .await;

    // A graceful delete sends SIGTERM, and the container's handler gets to run.
    let p = create(&client, json!({"metadata": {"name": "graceful"},
        "spec": {"nodeName": "w1", "terminationGracePeriodSeconds": 20, "containers": [
            {"name": "c", "image": "busybox", "command": ["/bin/sh", "-c",
                format!("trap 'echo got-term > {}; exit 0' TERM; while true; do sleep 0.1; done", m("term"))]}]}}))
    .await;
    let guid = p.metadata.uid.clone().unwrap();
    wait_pod(&client, "graceful", "graceful running", |p| {
        container(p, "c")["state"]["running"].is_object()
    })
    .await;
    let pods = Api::<Pod>::namespaced(client.clone(), "default");
    pods.delete("graceful", None).await.unwrap();
    eventually(Duration::from_secs(30), "graceful gone", || async {
        pods.get_opt("graceful").await.ok()?.is_none().then_some(())
    })
    .await;
    assert_eq!(
        std::fs::read_to_string(m("term"))
            .unwrap_or_default()
            .trim(),
        "got-term",
        "SIGTERM reached the container before any SIGKILL"
    );
    assert!(
        node.logs("default", "graceful", &guid, "c").is_empty(),
        "the deleted pod's logs are removed with its sandbox"
    );

    // A kubelet restart leaves running pods alone: same process, same container.
    create(
        &client,
        json!({"metadata": {"name": "steady"},
        "spec": {"nodeName": "w1", "containers": [{"name": "c", "image": "busybox",
            "command": ["/bin/sh", "-c", "sleep 3600"]}]}}),
    )
    .await;
    let before = wait_pod(&client, "steady", "steady running", |p| {
        container(p, "c")["state"]["running"].is_object()
    })
    .await;
    let id_before = container(&before, "c")["containerID"].clone();
    // exec runs in the container and returns its output and exit code.
    let out = ctl(&[
        "exec",
        "steady",
        "--",
        "/bin/sh",
        "-c",
        "echo hi; echo oops >&2; exit 3",
    ]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "oops\n");
    assert_eq!(out.status.code(), Some(3));
    // The node agent answers the apiserver alone.
    let n = Api::<k8s_openapi::api::core::v1::Node>::all(client.clone())
        .get("w1")
        .await
        .unwrap();
    let port = n
        .status
        .unwrap()
        .daemon_endpoints
        .unwrap()
        .kubelet_endpoint
        .unwrap()
        .port;
    let mut direct = rkube_proto::api::node_agent_client::NodeAgentClient::connect(format!(
        "http://127.0.0.1:{port}"
    ))
    .await
    .unwrap();
    let denied = direct
        .exec(rkube_proto::api::ExecRequest {
            namespace: "default".into(),
            pod: "steady".into(),
            command: vec!["/bin/true".into()],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(denied.code(), tonic::Code::Unauthenticated);
    // logs -f streams lines as the container writes them.
    create(&client, json!({"metadata": {"name": "ticker"},
        "spec": {"nodeName": "w1", "containers": [{"name": "c", "image": "busybox",
            "command": ["/bin/sh", "-c", "i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.2; done"]}]}}))
    .await;
    wait_pod(&client, "ticker", "ticker running", |p| {
        container(p, "c")["state"]["running"].is_object()
    })
    .await;
    let mut follow = std::process::Command::new(rkube_tests::rkube_bin())
        .args(["ctl", "--server", &eps, "logs", "-f", "ticker"])
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
    let procs_before = node.container_pids();
    let live_before: Vec<_> = procs_before.iter().filter(|(p, t)| alive(*p, *t)).collect();
    let adopted_before = node.log().matches("adopted a running pod").count();
    node.restart();
    node.wait_ready(&client).await;
    // The new kubelet takes the running pods over ("probed" and "steady").
    eventually(
        Duration::from_secs(30),
        "the new kubelet adopts its pods",
        || async {
            (node.log().matches("adopted a running pod").count() >= adopted_before + 2)
                .then_some(())
        },
    )
    .await;
    let after = pods.get("steady").await.unwrap();
    assert_eq!(container(&after, "c")["containerID"], id_before);
    assert_eq!(container(&after, "c")["restartCount"], 0);
    for (pid, t) in live_before {
        assert!(
            alive(*pid, *t),
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
        &cluster.endpoints(),
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
        container(p, "c")["state"]["running"].is_object()
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
