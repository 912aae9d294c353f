//! Stock kubectl through the REST API: exec (1.27 over SPDY/3.1, 1.33 over WebSocket,
//! with a terminal), attach with stdin, port-forward, and the audit record of an exec
//! session, which stays open while the session runs.

use std::process::Stdio;
use std::time::Duration;

use rkube_tests::fake_kubelet::cluster_with_nodes_and;
use rkube_tests::netns::is_root;
use rkube_tests::node_agent::NodeAgent;
use rkube_tests::pod_lifecycle::{create, running, wait_pod};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use rkube_tests::kubectl::{cache_dir, CACHE_DIR_ENV};

use super::{echo_pod, free_port, web_pod, DEADLINE};

/// The audit log of a cluster that records exec and attach at level Metadata.
struct AuditLog {
    policy: std::path::PathBuf,
    log: std::path::PathBuf,
}

impl AuditLog {
    fn new(dir: &std::path::Path) -> AuditLog {
        let policy = dir.join("audit-policy.yaml");
        std::fs::write(
            &policy,
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Metadata\n  \
             resources: [{group: \"\", resources: [\"pods/exec\", \"pods/attach\"]}]\n",
        )
        .unwrap();
        let log = dir.join("audit.log");
        AuditLog { policy, log }
    }

    fn flags(&self) -> Vec<&'static str> {
        let flag = |name: &str, p: &std::path::Path| -> &'static str {
            format!("--{name}={}", p.display()).leak()
        };
        vec![
            flag("audit-policy-file", &self.policy),
            flag("audit-log-path", &self.log),
        ]
    }

    fn events(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// The newest event `pick` finds, waiting up to ten seconds for it.
    async fn wait_for(
        &self,
        what: &str,
        pick: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(e) = self.events().into_iter().rev().find(|e| pick(e)) {
                return e;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no audit event: {what}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// An exec session is recorded when it starts (101) and completes only when it ends:
/// while `cat` runs, a later exec completes and the first is still open. `tag` marks
/// this call's commands apart from other calls'.
async fn exec_is_audited_while_it_runs(
    bin: &std::path::Path,
    cfg: &str,
    audit: &AuditLog,
    tag: &str,
) {
    let mut cat = tokio::process::Command::new(bin)
        .env(CACHE_DIR_ENV, cache_dir(cfg.as_ref()))
        .args([
            "--kubeconfig",
            cfg,
            "exec",
            "-i",
            "web",
            "--",
            "/bin/sh",
            "-c",
            "cat",
            tag,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut input = cat.stdin.take().unwrap();
    input.write_all(b"ping\n").await.unwrap();
    let mut lines = BufReader::new(cat.stdout.take().unwrap()).lines();
    assert_eq!(lines.next_line().await.unwrap().as_deref(), Some("ping"));
    let is_cat = |e: &serde_json::Value| {
        e["requestURI"]
            .as_str()
            .is_some_and(|u| u.contains(&format!("command=cat&command={tag}")))
    };
    let started = audit
        .wait_for("cat started", |e| {
            is_cat(e) && e["stage"] == "ResponseStarted"
        })
        .await;
    assert_eq!(started["responseStatus"]["code"], 101, "{started}");
    let (code, _, err) = run(
        cfg,
        bin,
        &["--kubeconfig", cfg, "exec", "web", "--", "true", tag],
        b"",
    )
    .await;
    assert_eq!(code, 0, "{err}");
    audit
        .wait_for("a later exec completed", |e| {
            e["requestURI"]
                .as_str()
                .is_some_and(|u| u.contains(&format!("command=true&command={tag}")))
                && e["stage"] == "ResponseComplete"
        })
        .await;
    let id = started["auditID"].clone();
    let done = |e: &serde_json::Value| e["auditID"] == id && e["stage"] == "ResponseComplete";
    assert!(
        !audit.events().iter().any(done),
        "exec recorded complete while it ran"
    );
    drop(input);
    assert_eq!(cat.wait().await.unwrap().code(), Some(0));
    audit.wait_for("cat completed", done).await;
}

/// Runs `program` (kubectl, or a wrapper that runs it) with its own cache beside `cfg`.
async fn run(
    cfg: &str,
    program: &std::path::Path,
    args: &[&str],
    stdin: &[u8],
) -> (i32, String, String) {
    let mut child = tokio::process::Command::new(program)
        .env(CACHE_DIR_ENV, cache_dir(cfg.as_ref()))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin).await.unwrap();
    drop(input);
    let out = child.wait_with_output().await.unwrap();
    let text = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
    (
        out.status.code().unwrap_or(-1),
        text(out.stdout),
        text(out.stderr),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn kubectl_exec_attach_and_port_forward_through_the_rest_api() {
    assert!(
        is_root(),
        "the process runtime's exec enters namespaces as root"
    );
    let www = tempfile::tempdir().unwrap();
    let audit = AuditLog::new(www.path());
    let (cluster, client, _fake) = cluster_with_nodes_and(1, &[], &audit.flags()).await;
    let node = NodeAgent::start(&cluster.node_access("w1"), "w1", &[]);
    node.wait_ready(&client).await;
    let dir = www.path().join("www").to_string_lossy().into_owned();
    let port = free_port();
    web_pod(&client, &dir, port).await;
    let cfg = rkube_tests::kubectl::admin_kubeconfig(&cluster, www.path());
    let cfg = cfg.to_string_lossy().into_owned();
    tokio::time::timeout(DEADLINE, async {
        for v in ["1.27", "1.33"] {
            let bin = rkube_tests::kubectl::kubectl_bin(v);
            let args = [
                "--kubeconfig",
                &cfg,
                "exec",
                "web",
                "--",
                "/bin/sh",
                "-c",
                "echo out; exit 7",
            ];
            let (code, out, err) = run(&cfg, &bin, &args, b"").await;
            assert_eq!((code, out.as_str()), (7, "out\n"), "kubectl {v}: {err}");
            exec_is_audited_while_it_runs(&bin, &cfg, &audit, &format!("v{}", v.replace('.', "-")))
                .await;
            let inner = format!(
                "{} --kubeconfig {cfg} exec -it web -- /bin/sh -c 'read x; stty size; echo x=$x'",
                bin.display()
            );
            let (code, out, err) = run(
                &cfg,
                std::path::Path::new("script"),
                &["-qec", &inner, "/dev/null"],
                b"typed\r",
            )
            .await;
            assert_eq!(code, 0, "kubectl {v}: {out} {err}");
            assert!(out.contains("x=typed"), "kubectl {v}: {out:?}");
            let pod = format!("once-{}", v.replace('.', ""));
            create(&client, echo_pod(&pod, "busybox", true)).await;
            wait_pod(&client, &pod, "running", |p| running(p, "c")).await;
            let args = ["--kubeconfig", &cfg, "attach", "-i", &pod];
            let (code, out, err) = run(&cfg, &bin, &args, b"hello\n").await;
            assert_eq!(
                (code, out.as_str()),
                (0, "got hello\neof\n"),
                "kubectl {v}: {err}"
            );
            let local = free_port();
            let mut pf = tokio::process::Command::new(&bin)
                .env(CACHE_DIR_ENV, cache_dir(cfg.as_ref()))
                .args([
                    "--kubeconfig",
                    &cfg,
                    "port-forward",
                    "pod/web",
                    &format!("{local}:{port}"),
                ])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .unwrap();
            let mut lines = BufReader::new(pf.stdout.take().unwrap()).lines();
            let first = lines.next_line().await.unwrap().unwrap_or_default();
            assert!(
                first.starts_with("Forwarding from 127.0.0.1"),
                "kubectl {v}: {first}"
            );
            let addr: std::net::SocketAddr = format!("127.0.0.1:{local}").parse().unwrap();
            let body = rkube_tests::http_get(addr, "/index.html").await.unwrap();
            assert!(body.contains("hello-from-pod"), "kubectl {v}: {body}");
            pf.kill().await.unwrap();
        }
    })
    .await
    .expect("kubectl finishes within the deadline");
}
