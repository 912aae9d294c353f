//! The pod's security context on the process runtime, against a real control plane and
//! node agent running as root: runAsUser/runAsGroup/supplementalGroups, capabilities
//! (none by default, added ones kept by a non-root user), allowPrivilegeEscalation,
//! runAsNonRoot refusing a container that would run as root, readOnlyRootFilesystem with
//! a writable emptyDir, the node's secrets hidden from unprivileged containers (but not
//! from privileged ones), and a subPath through a planted symbolic link refused.

use std::path::Path;

use client::{Api, Client, PatchParams};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use rkube_tests::fake_kubelet::cluster_with_nodes;
use rkube_tests::netns::is_root;
use rkube_tests::node_agent::NodeAgent;
use rkube_tests::pod_lifecycle::{container, create, ctl, running, wait_pod};
use serde_json::{json, Value};

const BUSYBOX: &str = "/bin/busybox";

/// A pod on `w1` that runs `script` once.
fn pod(name: &str, script: &str, spec: Value, sc: Value) -> Value {
    let mut c = json!({"name": "c", "image": "busybox",
        "command": [BUSYBOX, "sh", "-c", script], "securityContext": sc});
    let mut spec = spec;
    if let Some(mounts) = spec.get_mut("volumeMounts").map(Value::take) {
        c["volumeMounts"] = mounts;
        spec.as_object_mut().unwrap().remove("volumeMounts");
    }
    spec["nodeName"] = "w1".into();
    spec["restartPolicy"] = "Never".into();
    spec["containers"] = json!([c]);
    json!({"metadata": {"name": name}, "spec": spec})
}

/// Runs pod `name` to its end; returns what its container wrote.
async fn output(client: &Client, node: &NodeAgent, p: Value) -> Vec<String> {
    let name = p["metadata"]["name"].as_str().unwrap().to_string();
    create(client, p).await;
    let done = wait_pod(client, &name, &format!("{name} finished"), |p| {
        container(p, "c")["state"]["terminated"].is_object()
    })
    .await;
    let t = &container(&done, "c")["state"]["terminated"];
    let uid = done.metadata.uid.clone().unwrap();
    let lines = node.logs("default", &name, &uid, "c");
    assert_eq!(t["exitCode"], 0, "{name}: {t}; output {lines:?}");
    lines
}

/// The value of `field` in /proc/self/status lines.
fn status_field<'a>(lines: &'a [String], field: &str) -> &'a str {
    lines
        .iter()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .map(str::trim)
        .unwrap_or_else(|| panic!("{field} in {lines:?}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_process_runtime_enforces_the_security_context() {
    if !is_root() {
        eprintln!("skipping: the process runtime enforces security contexts only as root");
        return;
    }
    let (cluster, client, _fake) = cluster_with_nodes(1, &[]).await;
    // The pods below use privileged and host paths, which the default Pod Security
    // level (baseline) refuses: this test is about what the node does with them.
    let privileged = json!({"metadata": {"labels": {
        "pod-security.kubernetes.io/enforce": "privileged"}}});
    Api::<Namespace>::all(client.clone())
        .patch("default", PatchParams::Merge, &privileged)
        .await
        .expect("label the default namespace privileged");
    let node = NodeAgent::start(&cluster.node_access("w1"), "w1", &[]);
    node.wait_ready(&client).await;
    let tmp = tempfile::tempdir().unwrap();
    let mnt = tmp.path().join("mnt").to_string_lossy().to_string();
    let status = "grep -E '^(CapEff|CapPrm|NoNewPrivs):' /proc/self/status";

    // Credentials: uid, gid and groups as asked; no capabilities for a root process
    // by default; an added one survives the change to a non-root uid.
    let ids = output(
        &client,
        &node,
        pod(
            "ids",
            &format!("id -u; id -g; id -G; {status}"),
            json!({"securityContext": {"runAsUser": 1000, "runAsGroup": 3000,
                "supplementalGroups": [4000]}}),
            json!({"capabilities": {"add": ["KILL"]}, "allowPrivilegeEscalation": false}),
        ),
    )
    .await;
    assert_eq!(ids[..2], ["1000", "3000"], "{ids:?}");
    let groups: Vec<&str> = ids[2].split_whitespace().collect();
    assert!(
        groups.contains(&"4000") && groups.contains(&"3000"),
        "{ids:?}"
    );
    assert!(!groups.contains(&"0"), "root's groups are gone: {ids:?}");
    // CAP_KILL is capability 5.
    assert_eq!(status_field(&ids, "CapEff"), "0000000000000020", "{ids:?}");
    assert_eq!(status_field(&ids, "NoNewPrivs"), "1", "{ids:?}");
    let root = output(
        &client,
        &node,
        pod("rootcaps", status, json!({}), json!({})),
    )
    .await;
    assert_eq!(
        status_field(&root, "CapEff"),
        "0000000000000000",
        "{root:?}"
    );
    assert_eq!(status_field(&root, "NoNewPrivs"), "0", "{root:?}");

    // runAsNonRoot without runAsUser: the process would run as root; it never starts.
    create(
        &client,
        pod(
            "nonroot",
            "echo started",
            json!({"securityContext": {"runAsNonRoot": true}}),
            json!({}),
        ),
    )
    .await;
    let p = wait_pod(&client, "nonroot", "nonroot refused", |p| {
        container(p, "c")["state"]["waiting"]["reason"] == "CreateContainerConfigError"
    })
    .await;
    let msg = container(&p, "c")["state"]["waiting"]["message"].clone();
    assert!(
        msg.as_str()
            .unwrap_or_default()
            .contains("runAsNonRoot and image will run as root"),
        "{msg}"
    );
    assert!(
        container(&p, "c")["containerID"].is_null(),
        "no container was made"
    );

    read_only_root(&client, &node, &mnt).await;
    exec_as_the_container(&client, &cluster.api_access(), &mnt).await;
    secrets_hidden(&client, &node).await;
    subpath_link_refused(&client, &mnt).await;
    traversal_past_validation_refused(&cluster, &client).await;
}

/// A pod whose configMap item path climbs out of its volume, written straight through
/// the etcd API so that validation never saw it: the kubelet refuses to mount it, and
/// nothing appears at the path it aimed for.
async fn traversal_past_validation_refused(cluster: &rkube_tests::Cluster, client: &Client) {
    use k8s_openapi::api::core::v1::ConfigMap;
    use rkube_proto::etcd::PutRequest;
    Api::<ConfigMap>::namespaced(client.clone(), "default")
        .create(
            &serde_json::from_value(json!({"metadata": {"name": "cm"}, "data": {"k": "escaped"}}))
                .unwrap(),
        )
        .await
        .unwrap();
    let target = std::env::temp_dir().join(format!("rkube-escape-{}", std::process::id()));
    let climb = format!(
        "{}{}",
        "../".repeat(24),
        target.display().to_string().trim_start_matches('/')
    );
    let pod = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "climber", "namespace": "default",
            "uid": "00000000-0000-4000-8000-00000000c11b",
            "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"nodeName": "w1", "restartPolicy": "Never",
            "volumes": [{"name": "v", "configMap": {"name": "cm", "items": [{"key": "k", "path": climb}]}}],
            "containers": [{"name": "c", "image": "busybox", "command": [BUSYBOX, "true"],
                "volumeMounts": [{"name": "v", "mountPath": "/mnt-climb"}]}]},
        "status": {"phase": "Pending"}});
    cluster
        .clients(0)
        .kv
        .put(PutRequest {
            key: "/registry/core/pods/default/climber".into(),
            value: serde_json::to_vec(&pod).unwrap().into(),
            ..Default::default()
        })
        .await
        .expect("write the pod through the etcd API");
    let refused = wait_pod(client, "climber", "the climbing pod refused", |p: &Pod| {
        container(p, "c")["state"]["waiting"]["reason"] == "CreateContainerConfigError"
    })
    .await;
    let msg = container(&refused, "c")["state"]["waiting"]["message"].clone();
    assert!(msg.as_str().unwrap_or_default().contains(".."), "{msg}");
    assert!(
        !target.exists(),
        "a file was written outside the volume: {}",
        target.display()
    );
}

/// readOnlyRootFilesystem: the host's files cannot be written; an emptyDir can.
async fn read_only_root(client: &Client, node: &NodeAgent, mnt: &str) {
    let probe = format!("/etc/rkube-read-only-test-{}", std::process::id());
    let scratch = format!("{mnt}/scratch");
    let script =
        format!("touch {probe} 2>&1 || echo refused; echo hello > {scratch}/f && cat {scratch}/f");
    let out = output(
        client,
        node,
        pod(
            "readonly",
            &script,
            json!({"volumes": [{"name": "scratch", "emptyDir": {}}],
                "volumeMounts": [{"name": "scratch", "mountPath": scratch}]}),
            json!({"readOnlyRootFilesystem": true}),
        ),
    )
    .await;
    let leaked = Path::new(&probe).exists();
    let _ = std::fs::remove_file(&probe);
    assert!(!leaked, "the container wrote {probe} on the host");
    assert_eq!(out.len(), 3, "{out:?}");
    assert!(out[0].ends_with("Read-only file system"), "{out:?}");
    assert_eq!(out[1..], ["refused", "hello"]);
}

/// `exec` runs with the container's credentials, in its mount namespace.
async fn exec_as_the_container(client: &Client, servers: &str, mnt: &str) {
    let scratch = format!("{mnt}/exec-scratch");
    let mut p = pod(
        "execd",
        &format!("echo mine > {scratch}/f; exec sleep 3600"),
        json!({"volumes": [{"name": "scratch", "emptyDir": {}}],
            "volumeMounts": [{"name": "scratch", "mountPath": scratch}]}),
        json!({"readOnlyRootFilesystem": true, "runAsUser": 1000}),
    );
    p["spec"]["terminationGracePeriodSeconds"] = 0.into();
    create(client, p).await;
    wait_pod(client, "execd", "execd running", |p| running(p, "c")).await;
    let script =
        format!("id -u; cat {scratch}/f; touch /tmp 2>&1 || true; grep ^CapEff: /proc/self/status");
    let args = ["exec", "execd", "--", BUSYBOX, "sh", "-c", &script];
    let out = rkube_tests::pod_lifecycle::ctl_ok(&args, ctl(servers, &args));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[..2], ["1000", "mine"], "{out}");
    assert!(lines[2].ends_with("Read-only file system"), "{out}");
    assert!(lines[3].ends_with("0000000000000000"), "{out}");
    Api::<Pod>::namespaced(client.clone(), "default")
        .delete("execd", Some(0))
        .await
        .expect("delete execd");
}

/// /root, /etc/shadow and the node's data directory are hidden from an unprivileged
/// container; a privileged one sees them.
async fn secrets_hidden(client: &Client, node: &NodeAgent) {
    let data = node.data_dir().to_string_lossy().to_string();
    assert!(std::fs::read_dir(&data).unwrap().next().is_some());
    assert!(std::fs::metadata("/etc/shadow").map_or(true, |m| m.len() > 0));
    let script = format!(
        "echo data $(ls -A {data} | wc -l); echo root $(ls -A /root | wc -l); \
         echo shadow $(cat /etc/shadow 2>/dev/null | wc -c)"
    );
    let seen = output(client, node, pod("snoop", &script, json!({}), json!({}))).await;
    assert_eq!(seen, ["data 0", "root 0", "shadow 0"]);
    let privileged = output(
        client,
        node,
        pod(
            "privileged",
            &script,
            json!({}),
            json!({"privileged": true}),
        ),
    )
    .await;
    assert_ne!(privileged[0], "data 0", "{privileged:?}");
    let host_root = std::fs::read_dir("/root").map_or(0, |d| d.count());
    assert_eq!(privileged[1], format!("root {host_root}"), "{privileged:?}");
}

/// A subPath through a link a container planted in its emptyDir would leave the
/// volume: the container waits with CreateContainerConfigError, nothing is mounted.
async fn subpath_link_refused(client: &Client, mnt: &str) {
    let plant = format!("{mnt}/plant");
    let mut p = pod(
        "subpath",
        "echo started",
        json!({"volumes": [{"name": "v", "emptyDir": {}}],
            "volumeMounts": [{"name": "v", "mountPath": format!("{mnt}/victim"), "subPath": "evil"}],
            "initContainers": [{"name": "plant", "image": "busybox",
                "command": [BUSYBOX, "ln", "-s", "/etc", format!("{plant}/evil")],
                "volumeMounts": [{"name": "v", "mountPath": plant}]}]}),
        json!({}),
    );
    p["spec"]["restartPolicy"] = "Always".into();
    create(client, p).await;
    let refused = wait_pod(client, "subpath", "subpath refused", |p: &Pod| {
        container(p, "c")["state"]["waiting"]["reason"] == "CreateContainerConfigError"
    })
    .await;
    let msg = container(&refused, "c")["state"]["waiting"]["message"].clone();
    let text = msg.as_str().unwrap_or_default();
    assert!(text.contains("evil") && text.contains("/etc"), "{msg}");
    assert!(container(&refused, "c")["containerID"].is_null());
}
