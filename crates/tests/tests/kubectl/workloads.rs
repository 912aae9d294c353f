//! kubectl on built-in kinds: tables, output formats, apply (client- and server-side),
//! diff, edit, label, annotate, scale, rollouts, logs, exec, port-forward, tokens and auth.

use std::time::{Duration, Instant};

use rkube_tests::kubectl::{text, Kubectl};

/// Polls `f` until it is true, for at most `secs`.
pub fn wait(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(secs),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn deployment(ns: &str, replicas: u32, version: &str) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: {ns}
  labels: {{app: web}}
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      containers:
      - name: main
        image: busybox:1.36
        command: ["sh", "-c", "echo started {version}; exec sleep 3600"]
        env:
        - {{name: VERSION, value: "{version}"}}
"#
    )
}

pub fn check(k: &Kubectl, ns: &str) {
    tables_and_formats(k, ns);
    apply_diff_edit(k, ns);
    rollouts(k, ns);
    server_side_apply(k, ns);
    logs_and_exec(k, ns);
    auth(k, ns);
    discovery(k);
}

fn tables_and_formats(k: &Kubectl, ns: &str) {
    for name in ["b-cm", "a-cm"] {
        k.ok(&["create", "configmap", name, "-n", ns, "--from-literal=x=1"]);
    }
    let sorted = k.ok(&[
        "get",
        "cm",
        "-n",
        ns,
        "--sort-by=.metadata.name",
        "-o",
        "name",
    ]);
    let a = sorted.find("a-cm").expect("a-cm listed");
    let b = sorted.find("b-cm").expect("b-cm listed");
    assert!(a < b, "--sort-by orders by name:\n{sorted}");
    let table = k.ok(&["get", "cm", "a-cm", "-n", ns]);
    assert!(
        table
            .lines()
            .next()
            .is_some_and(|h| h.contains("NAME") && h.contains("DATA") && h.contains("AGE")),
        "ConfigMap table columns:\n{table}"
    );
    let yaml = k.ok(&["get", "cm", "a-cm", "-n", ns, "-o", "yaml"]);
    assert!(
        yaml.contains("kind: ConfigMap") && yaml.contains("x: \"1\""),
        "{yaml}"
    );
    let nodes = k.ok(&["get", "nodes", "-o", "wide"]);
    let header = nodes.lines().next().unwrap_or("");
    for col in ["STATUS", "ROLES", "VERSION", "INTERNAL-IP"] {
        assert!(header.contains(col), "nodes -o wide has {col}:\n{nodes}");
    }
    assert!(nodes.contains("Ready"), "{nodes}");
    // -w prints the change as it happens.
    let mut watch = k
        .command(&["get", "cm", "-n", ns, "-w", "--request-timeout=20s"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("kubectl get -w");
    std::thread::sleep(Duration::from_millis(800));
    k.ok(&["create", "configmap", "watched-cm", "-n", ns]);
    std::thread::sleep(Duration::from_millis(1500));
    let _ = watch.kill();
    let out = watch.wait_with_output().expect("watch output");
    assert!(
        text(&out.stdout).contains("watched-cm"),
        "get -w saw the new ConfigMap:\n{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    k.ok(&[
        "delete",
        "cm",
        "a-cm",
        "b-cm",
        "watched-cm",
        "-n",
        ns,
        "--wait",
    ]);
    let left = k.ok(&["get", "cm", "-n", ns, "-o", "name"]);
    assert!(!left.contains("a-cm"), "deleted:\n{left}");
}

fn apply_diff_edit(k: &Kubectl, ns: &str) {
    let first = k.apply_stdin(&deployment(ns, 1, "1"), &[]);
    assert!(first.status.success(), "{}", text(&first.stderr));
    assert!(
        text(&first.stdout).contains("created"),
        "{}",
        text(&first.stdout)
    );
    let again = k.apply_stdin(&deployment(ns, 1, "1"), &[]);
    assert!(
        text(&again.stdout).contains("unchanged"),
        "{}",
        text(&again.stdout)
    );
    // diff against the change, then apply it as a patch.
    let file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(file.path(), deployment(ns, 2, "1")).expect("write manifest");
    let path = file.path().to_str().expect("utf-8 path");
    let diff = k.run(&["diff", "-f", path]);
    assert_eq!(
        diff.status.code(),
        Some(1),
        "diff finds a change: {}",
        text(&diff.stderr)
    );
    assert!(
        text(&diff.stdout).contains("replicas: 2"),
        "{}",
        text(&diff.stdout)
    );
    let replicas = k.ok(&[
        "get",
        "deploy",
        "web",
        "-n",
        ns,
        "-o",
        "jsonpath={.spec.replicas}",
    ]);
    assert_eq!(replicas, "1", "diff (a dry run) stored nothing");
    let applied = k.ok(&["apply", "-f", path]);
    assert!(applied.contains("configured"), "{applied}");
    k.ok(&["label", "deploy", "web", "-n", ns, "tier=front"]);
    k.ok(&["annotate", "deploy", "web", "-n", ns, "note=hello"]);
    k.ok(&["scale", "deploy", "web", "-n", ns, "--replicas=3"]);
    let got = k.ok(&[
        "get",
        "deploy",
        "web",
        "-n",
        ns,
        "-o",
        "jsonpath={.spec.replicas} {.metadata.labels.tier} {.metadata.annotations.note}",
    ]);
    assert_eq!(got, "3 front hello");
    let out = k
        .command(&["edit", "deploy", "web", "-n", ns])
        .env("KUBE_EDITOR", "sed -i s/note:\\ hello/note:\\ edited/")
        .output()
        .expect("kubectl edit");
    assert!(out.status.success(), "edit: {}", text(&out.stderr));
    let note = k.ok(&[
        "get",
        "deploy",
        "web",
        "-n",
        ns,
        "-o",
        "jsonpath={.metadata.annotations.note}",
    ]);
    assert_eq!(note, "edited");
    let describe = k.ok(&["describe", "deploy", "web", "-n", ns]);
    assert!(
        describe.contains("Replicas:") && describe.contains("tier=front"),
        "{describe}"
    );
}

fn rollouts(k: &Kubectl, ns: &str) {
    k.ok(&["rollout", "status", "deploy/web", "-n", ns, "--timeout=90s"]);
    k.ok(&[
        "set",
        "env",
        "deploy/web",
        "-n",
        ns,
        "-c",
        "main",
        "VERSION=2",
    ]);
    k.ok(&["rollout", "status", "deploy/web", "-n", ns, "--timeout=90s"]);
    k.ok(&["rollout", "undo", "deploy/web", "-n", ns]);
    wait(60, "the undone template", || {
        k.ok(&[
            "get",
            "deploy",
            "web",
            "-n",
            ns,
            "-o",
            "jsonpath={.spec.template.spec.containers[0].env[0].value}",
        ]) == "1"
    });
    k.ok(&["rollout", "restart", "deploy/web", "-n", ns]);
    let restarted = k.ok(&[
        "get",
        "deploy",
        "web",
        "-n",
        ns,
        "-o",
        "jsonpath={.spec.template.metadata.annotations.kubectl\\.kubernetes\\.io/restartedAt}",
    ]);
    assert!(!restarted.is_empty(), "rollout restart stamps the template");
    k.ok(&["rollout", "status", "deploy/web", "-n", ns, "--timeout=90s"]);
    let all = k.ok(&["get", "all", "-n", ns]);
    assert!(
        all.contains("deployment.apps/web") && all.contains("pod/web-"),
        "{all}"
    );
    let pods = k.ok(&["get", "pods", "-n", ns, "-o", "wide"]);
    let header = pods.lines().next().unwrap_or("");
    for col in ["READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE"] {
        assert!(header.contains(col), "pods -o wide has {col}:\n{pods}");
    }
    assert!(pods.contains("Running"), "{pods}");
}

fn server_side_apply(k: &Kubectl, ns: &str) {
    let cm = |v: &str| {
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\n  namespace: {ns}\ndata:\n  owned: \"{v}\"\n")
    };
    let one = k.apply_stdin(&cm("a"), &["--server-side", "--field-manager=one"]);
    assert!(one.status.success(), "{}", text(&one.stderr));
    let two = k.apply_stdin(&cm("b"), &["--server-side", "--field-manager=two"]);
    assert!(!two.status.success(), "a second manager conflicts");
    let err = text(&two.stderr);
    assert!(
        err.contains("conflict") && err.contains(".data.owned"),
        "{err}"
    );
    let forced = k.apply_stdin(
        &cm("b"),
        &["--server-side", "--field-manager=two", "--force-conflicts"],
    );
    assert!(forced.status.success(), "{}", text(&forced.stderr));
    let managed = k.ok(&[
        "get",
        "cm",
        "ssa",
        "-n",
        ns,
        "-o",
        "jsonpath={.data.owned} {.metadata.managedFields[*].manager}",
        "--show-managed-fields",
    ]);
    assert!(
        managed.starts_with("b ") && managed.contains("two"),
        "{managed}"
    );
}

fn logs_and_exec(k: &Kubectl, ns: &str) {
    let script = "echo one; echo two; sleep 2; echo three";
    let run = [
        "run",
        "talker",
        "-n",
        ns,
        "--image=busybox:1.36",
        "--restart=Never",
        "--command",
        "--",
        "sh",
        "-c",
        script,
    ];
    k.ok(&run);
    let started = "jsonpath={.status.containerStatuses[0].state.running.startedAt}\
                   {.status.containerStatuses[0].state.terminated.reason}";
    wait(60, "talker started", || {
        !k.ok(&["get", "pod", "talker", "-n", ns, "-o", started])
            .is_empty()
    });
    let t = Instant::now();
    let logs = k.ok(&["logs", "-f", "talker", "-n", ns]);
    let el = t.elapsed();
    if logs.lines().count() != 3 {
        std::thread::sleep(Duration::from_secs(3));
        let later = k.ok(&["logs", "talker", "-n", ns]);
        let st = k.ok(&["get", "pod", "talker", "-n", ns, "-o", "jsonpath={.status}"]);
        panic!("logs -f after {el:?}: {logs:?}; later {later:?}; {st}");
    }
    assert_eq!(k.ok(&["logs", "talker", "-n", ns, "--tail=1"]), "three\n");
    assert_eq!(
        k.ok(&["logs", "talker", "-n", ns, "--since=1h"])
            .lines()
            .count(),
        3
    );
    // Every line is over two seconds old now.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(k.ok(&["logs", "talker", "-n", ns, "--since=1s"]), "");
    let pod = k.ok(&[
        "get",
        "pods",
        "-n",
        ns,
        "-l",
        "app=web",
        "-o",
        "jsonpath={.items[0].metadata.name}",
    ]);
    let out = k.run(&["exec", &pod, "-n", ns, "--", "sh", "-c", "echo out; exit 3"]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "exec returns the exit code: {}",
        text(&out.stderr)
    );
    assert_eq!(text(&out.stdout), "out\n");
    // cp both ways (tar through exec). The process runtime's containers see the host's
    // files, so the copy goes to a directory this test owns and removes.
    let dir = tempfile::tempdir().expect("temp dir");
    let src = dir.path().join("in.txt");
    std::fs::write(&src, "copied\n").expect("write");
    let remote = dir.path().join("remote.txt");
    let (src, remote) = (
        src.to_str().expect("utf-8"),
        remote.to_str().expect("utf-8"),
    );
    k.ok(&["cp", src, &format!("{pod}:{remote}"), "-n", ns]);
    assert_eq!(
        k.ok(&["exec", &pod, "-n", ns, "--", "cat", remote]),
        "copied\n"
    );
    let back = dir.path().join("back.txt");
    let back_s = back.to_str().expect("utf-8");
    k.ok(&["cp", &format!("{pod}:{remote}"), back_s, "-n", ns]);
    assert_eq!(
        std::fs::read_to_string(&back).expect("copied back"),
        "copied\n"
    );
}

fn auth(k: &Kubectl, ns: &str) {
    let token = k.ok(&["create", "token", "default", "-n", ns]);
    assert_eq!(token.trim().split('.').count(), 3, "a JWT: {token}");
    let who = k.ok(&["auth", "whoami"]);
    assert!(who.contains("system:masters"), "{who}");
    assert_eq!(
        k.ok(&["auth", "can-i", "create", "pods", "-n", ns]).trim(),
        "yes"
    );
    let no = k.run(&["auth", "can-i", "create", "pods", "-n", ns, "--as=nobody"]);
    assert_eq!(text(&no.stdout).trim(), "no");
}

fn discovery(k: &Kubectl) {
    let r = k.ok(&["api-resources"]);
    assert!(
        r.lines()
            .any(|l| l.starts_with("deployments") && l.contains("deploy") && l.contains("apps/v1")),
        "{r}"
    );
    let metrics = k.ok(&["get", "--raw", "/metrics"]);
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("apiserver_request_total{")
                && l.contains("verb=\"LIST\"")
                && l.contains("resource=\"pods\"")
                && l.contains("code=\"200\"")),
        "REST requests are counted"
    );
    assert!(metrics.contains("apiserver_request_duration_seconds_bucket{"));
    let explain = k.ok(&["explain", "deployment.spec.strategy"]);
    assert!(explain.contains("rollingUpdate"), "{explain}");
}
