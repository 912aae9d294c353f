//! The pod lifecycle every runtime must get right, run against a real node agent: init
//! containers, emptyDir/configMap/secret/hostPath volumes and env, logs (through the
//! apiserver, with tail, timestamps and previous), a crash loop with back-off, liveness
//! and readiness probes, exec, and a graceful delete that delivers SIGTERM.

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use client::{Api, Client};
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use serde_json::{json, Value};

use crate::eventually;

pub fn status(p: &Pod) -> Value {
    serde_json::to_value(p.status.clone().unwrap_or_default()).unwrap()
}

/// The status of container `name` of `p`.
pub fn container(p: &Pod, name: &str) -> Value {
    status(p)["containerStatuses"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == name).cloned())
        .unwrap_or(Value::Null)
}

pub fn running(p: &Pod, name: &str) -> bool {
    container(p, name)["state"]["running"].is_object()
}

pub async fn create(client: &Client, v: Value) -> Pod {
    let pods = Api::<Pod>::namespaced(client.clone(), "default");
    pods.create(&serde_json::from_value(v).unwrap())
        .await
        .unwrap()
}

/// Waits until `pred` holds for pod `name`; returns the pod.
/// Labels namespace `ns` with the privileged Pod Security level, for tests whose pods
/// use host paths or the host network (refused under the default, baseline).
pub async fn allow_privileged(client: &Client, ns: &str) {
    let patch = serde_json::json!({"metadata": {"labels": {
        "pod-security.kubernetes.io/enforce": "privileged"}}});
    Api::<k8s_openapi::api::core::v1::Namespace>::all(client.clone())
        .patch(ns, client::PatchParams::Merge, &patch)
        .await
        .expect("label the namespace privileged");
}

pub async fn wait_pod(client: &Client, name: &str, what: &str, pred: impl Fn(&Pod) -> bool) -> Pod {
    let pods = Api::<Pod>::namespaced(client.clone(), "default");
    eventually(Duration::from_secs(90), what, || async {
        let p = pods.get(name).await.ok()?;
        pred(&p).then_some(p)
    })
    .await
}

/// `rkube ctl --server SERVERS ARGS…`.
pub fn ctl(servers: &str, args: &[&str]) -> Output {
    std::process::Command::new(crate::rkube_bin())
        .arg("ctl")
        .args(crate::client_flags(servers))
        .args(args)
        .output()
        .unwrap()
}

/// The stdout of a `rkube ctl` run that must succeed; a failure panics with its stderr.
pub fn ctl_ok(args: &[&str], out: Output) -> String {
    assert!(
        out.status.success(),
        "rkube ctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_string()
}

/// Runs the scenario on node `node` with image `image`. Containers mount volumes under
/// `mnt` (a path in the container); `flags` is a host directory the test shares with the
/// pods through a hostPath volume.
pub async fn run(client: &Client, servers: &str, node: &str, image: &str, mnt: &str, flags: &Path) {
    allow_privileged(client, "default").await;
    // The cluster DNS Service, which the apiserver makes at start: pods are told its address.
    let dns = Api::<k8s_openapi::api::core::v1::Service>::namespaced(client.clone(), "kube-system");
    let dns_ip = crate::eventually(Duration::from_secs(30), "the kube-dns Service", || async {
        dns.get_opt("kube-dns")
            .await
            .ok()
            .flatten()?
            .spec?
            .cluster_ip
    })
    .await;
    let m = |p: &str| format!("{mnt}/{p}");
    let flags_vol = json!({"name": "flags", "hostPath": {"path": flags.to_string_lossy(), "type": "Directory"}});
    let flags_mount = json!({"name": "flags", "mountPath": m("flags")});

    // Init container, volumes, env from all sources.
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
        "cat {w}/init.txt; echo \"$GREETING\"; cat {c}/greeting; echo; cat {s}/password; echo; echo \"$POD_NAME $PASSWORD\"; grep -q ' {mem} tmpfs ' /proc/mounts && echo tmpfs-ok; cat {sa}/namespace; echo; cat {sa}/token",
        mem = m("mem"),
        sa = "/var/run/secrets/kubernetes.io/serviceaccount",
        w = m("work"),
        c = m("cfg"),
        s = m("sec")
    );
    create(client, json!({"metadata": {"name": "lifecycle"},
        "spec": {"nodeName": node, "restartPolicy": "Never",
            "volumes": [{"name": "work", "emptyDir": {}},
                {"name": "cfg", "configMap": {"name": "cfg"}},
                {"name": "sec", "secret": {"secretName": "sec"}},
                {"name": "mem", "emptyDir": {"medium": "Memory"}}],
            "initContainers": [{"name": "prep", "image": image,
                "command": ["/bin/sh", "-c", format!("echo init > {}/init.txt", m("work"))],
                "volumeMounts": [{"name": "work", "mountPath": m("work")}]}],
            "containers": [{"name": "main", "image": image,
                "command": ["/bin/sh", "-c", script],
                "env": [{"name": "GREETING", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "greeting"}}},
                    {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "password"}}},
                    {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                "volumeMounts": [{"name": "work", "mountPath": m("work")},
                    {"name": "cfg", "mountPath": m("cfg")},
                    {"name": "sec", "mountPath": m("sec"), "readOnly": true},
                    {"name": "mem", "mountPath": m("mem")}]}]}}))
    .await;
    let done = wait_pod(client, "lifecycle", "lifecycle Succeeded", |p| {
        status(p)["phase"] == "Succeeded"
    })
    .await;
    let main = container(&done, "main");
    assert_eq!(main["state"]["terminated"]["exitCode"], 0, "{main}");
    assert_eq!(main["state"]["terminated"]["reason"], "Completed", "{main}");
    let init = &status(&done)["initContainerStatuses"][0];
    assert_eq!(init["state"]["terminated"]["exitCode"], 0, "{init}");
    let st = status(&done);
    assert!(
        st["podIP"].as_str().is_some_and(|ip| !ip.is_empty()),
        "{st}"
    );
    assert!(st["startTime"].is_string(), "{st}");
    // Logs, through the apiserver and the node agent.
    let out = ctl(servers, &["logs", "lifecycle", "-c", "main"]);
    let logs = text(&out.stdout);
    let lines: Vec<&str> = logs.lines().collect();
    assert_eq!(
        lines[..7.min(lines.len())],
        [
            "init",
            "hello",
            "hello",
            "s3cret",
            "lifecycle s3cret",
            "tmpfs-ok",
            "default"
        ],
        "{}",
        text(&out.stderr)
    );
    // The automounted token is the pod's ServiceAccount's.
    let token = lines.get(7).copied().unwrap_or_default();
    let mut cfg = crate::client_config(servers);
    cfg.token = Some(token.to_string());
    // The token alone: a client certificate would authenticate first.
    cfg.cert = None;
    cfg.key = None;
    let who = client::Client::new(cfg).unwrap().who_am_i().await.unwrap();
    let who: Value = serde_json::from_slice(&who.json).unwrap();
    assert_eq!(
        who["status"]["userInfo"]["username"],
        "system:serviceaccount:default:default"
    );
    let out = ctl(
        servers,
        &[
            "logs",
            "pod/lifecycle",
            "-c",
            "main",
            "--tail",
            "2",
            "--timestamps",
        ],
    );
    let t = text(&out.stdout);
    assert!(t.starts_with("20") && t.contains(" default\n"), "{t}");
    let out = ctl(servers, &["logs", "lifecycle"]);
    let err = text(&out.stderr);
    assert!(
        !out.status.success() && err.contains("choose one of: [main prep]"),
        "{err}"
    );

    // A container that keeps failing is restarted with back-off (CrashLoopBackOff).
    create(
        client,
        json!({"metadata": {"name": "crasher"},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": image,
            "command": ["/bin/sh", "-c", "echo boom; exit 3"]}]}}),
    )
    .await;
    let p = wait_pod(
        client,
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
    assert_eq!(
        text(&ctl(servers, &["logs", "crasher", "--previous"]).stdout),
        "boom\n"
    );

    // Liveness failures restart a container; readiness follows its probe; exec runs inside.
    let ready_flag = flags.join("ready");
    create(client, json!({"metadata": {"name": "probed"},
        "spec": {"nodeName": node, "volumes": [flags_vol],
            "containers": [
            {"name": "sick", "image": image, "command": ["/bin/sh", "-c", "sleep 3600"],
             "livenessProbe": {"exec": {"command": ["/bin/false"]}, "periodSeconds": 1, "failureThreshold": 2}},
            {"name": "flappy", "image": image, "command": ["/bin/sh", "-c", "sleep 3600"],
             "volumeMounts": [flags_mount],
             "readinessProbe": {"exec": {"command": ["/bin/sh", "-c", format!("test -f {}", m("flags/ready"))]},
                "periodSeconds": 1}}]}}))
    .await;
    wait_pod(client, "probed", "liveness restarts sick", |p| {
        container(p, "sick")["restartCount"].as_i64().unwrap_or(0) >= 1
    })
    .await;
    let p = wait_pod(client, "probed", "flappy running", |p| running(p, "flappy")).await;
    assert_eq!(container(&p, "flappy")["ready"], false);
    std::fs::write(&ready_flag, "").unwrap();
    wait_pod(client, "probed", "flappy Ready", |p| {
        container(p, "flappy")["ready"] == true
    })
    .await;
    std::fs::remove_file(&ready_flag).unwrap();
    wait_pod(client, "probed", "flappy not Ready again", |p| {
        container(p, "flappy")["ready"] == false
    })
    .await;
    let out = ctl(
        servers,
        &[
            "exec",
            "probed",
            "-c",
            "flappy",
            "--",
            "/bin/sh",
            "-c",
            "echo hi; echo oops >&2; exit 3",
        ],
    );
    assert_eq!(text(&out.stdout), "hi\n");
    assert_eq!(text(&out.stderr), "oops\n");
    assert_eq!(out.status.code(), Some(3));
    // dnsPolicy ClusterFirst (the default): the pod's resolver is the cluster DNS.
    let read = ["/bin/sh", "-c", "cat /etc/resolv.conf"];
    let out = ctl(
        servers,
        &[&["exec", "probed", "-c", "flappy", "--"][..], &read].concat(),
    );
    let conf = text(&out.stdout);
    assert!(conf.contains(&format!("nameserver {dns_ip}\n")), "{conf}");
    assert!(
        conf.contains("search default.svc.cluster.local svc.cluster.local cluster.local"),
        "{conf}"
    );
    assert!(conf.contains("options ndots:5"), "{conf}");

    // downwardAPI volume, envFrom with a prefix, a startup probe, a preStop hook that runs
    // before the container is stopped, and a tcpSocket readiness probe (on a port of this
    // run's own: with the process runtime's host network, the port is the host's).
    let tcp_port = 20_000 + std::process::id() % 20_000;
    create(client, json!({"metadata": {"name": "extras", "labels": {"app": "extras"}},
        "spec": {"nodeName": node, "terminationGracePeriodSeconds": 10,
            "volumes": [{"name": "podinfo", "downwardAPI": {"items": [
                    {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}},
                {"name": "flags", "hostPath": {"path": flags.to_string_lossy()}}],
            "containers": [{"name": "c", "image": image,
                "envFrom": [{"configMapRef": {"name": "cfg"}, "prefix": "CFG_"}],
                "command": ["/bin/sh", "-c", format!("cat {}/labels; echo \"$CFG_greeting\"; sleep 3600", m("podinfo"))],
                "volumeMounts": [{"name": "podinfo", "mountPath": m("podinfo")},
                    {"name": "flags", "mountPath": m("flags")}],
                "startupProbe": {"exec": {"command": ["/bin/true"]}, "periodSeconds": 1},
                "lifecycle": {"preStop": {"exec": {"command": ["/bin/sh", "-c",
                    format!("echo prestop > {}", m("flags/prestop"))]}}}},
                {"name": "tcp", "image": image,
                 "command": ["/bin/busybox", "httpd", "-f", "-p", tcp_port.to_string(), "-h", "/tmp"],
                 "readinessProbe": {"tcpSocket": {"port": tcp_port}, "periodSeconds": 1}}]}}))
    .await;
    let p = wait_pod(client, "extras", "extras started and ready", |p| {
        let c = container(p, "c");
        c["started"] == true && c["ready"] == true && container(p, "tcp")["ready"] == true
    })
    .await;
    assert!(running(&p, "c"));
    let out = ctl(servers, &["logs", "extras", "-c", "c"]);
    assert_eq!(text(&out.stdout), "app=\"extras\"\nhello\n");
    let pods = Api::<Pod>::namespaced(client.clone(), "default");
    pods.delete("extras", None).await.unwrap();
    eventually(Duration::from_secs(30), "extras gone", || async {
        pods.get_opt("extras").await.ok()?.is_none().then_some(())
    })
    .await;
    assert_eq!(
        std::fs::read_to_string(flags.join("prestop"))
            .unwrap_or_default()
            .trim(),
        "prestop",
        "the preStop hook ran"
    );

    // Past activeDeadlineSeconds, the pod is stopped and fails with DeadlineExceeded.
    create(client, json!({"metadata": {"name": "deadline"},
        "spec": {"nodeName": node, "activeDeadlineSeconds": 2, "restartPolicy": "Never",
            "containers": [{"name": "c", "image": image, "command": ["/bin/sh", "-c", "sleep 3600"]}]}}))
    .await;
    let p = wait_pod(client, "deadline", "deadline exceeded", |p| {
        status(p)["phase"] == "Failed"
    })
    .await;
    assert_eq!(status(&p)["reason"], "DeadlineExceeded", "{}", status(&p));

    // A graceful delete sends SIGTERM, and the container's handler gets to run.
    create(client, json!({"metadata": {"name": "graceful"},
        "spec": {"nodeName": node, "terminationGracePeriodSeconds": 20,
            "volumes": [{"name": "flags", "hostPath": {"path": flags.to_string_lossy()}}],
            "containers": [{"name": "c", "image": image,
                "volumeMounts": [{"name": "flags", "mountPath": m("flags")}],
                "command": ["/bin/sh", "-c",
                format!("trap 'echo got-term > {}; exit 0' TERM; while true; do sleep 0.1; done", m("flags/term"))]}]}}))
    .await;
    wait_pod(client, "graceful", "graceful running", |p| running(p, "c")).await;
    let pods = Api::<Pod>::namespaced(client.clone(), "default");
    pods.delete("graceful", None).await.unwrap();
    eventually(Duration::from_secs(30), "graceful gone", || async {
        pods.get_opt("graceful").await.ok()?.is_none().then_some(())
    })
    .await;
    assert_eq!(
        std::fs::read_to_string(flags.join("term"))
            .unwrap_or_default()
            .trim(),
        "got-term",
        "SIGTERM reached the container before any SIGKILL"
    );

    // Deleting the rest: every pod goes, its containers stopped and removed.
    for p in ["lifecycle", "crasher", "probed", "deadline"] {
        pods.delete(p, Some(0)).await.unwrap();
    }
    eventually(Duration::from_secs(60), "every pod gone", || async {
        pods.list(&Default::default())
            .await
            .ok()?
            .items
            .is_empty()
            .then_some(())
    })
    .await;
}
