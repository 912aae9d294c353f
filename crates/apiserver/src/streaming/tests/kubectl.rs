//! Stock kubectl 1.27 to 1.33 against the handlers: exec and attach over SPDY/3.1 up to
//! 1.29 and over WebSocket (v5) from 1.30; port-forward over SPDY up to 1.30 and through
//! the WebSocket tunnel from 1.31 (each test checks which one was used). The binaries
//! are `kubectl.<version>` next to the `kubectl` on PATH.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

use super::fake::{self, Server};

const VERSIONS: [&str; 7] = ["1.27", "1.28", "1.29", "1.30", "1.31", "1.32", "1.33"];
const DEADLINE: Duration = Duration::from_secs(60);

pub(super) fn kubectl(version: &str) -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("kubectl"))
        .find(|p| p.exists())
        .expect("kubectl is on PATH");
    let dir = std::fs::canonicalize(&on_path)
        .expect("kubectl resolves")
        .parent()
        .map(Path::to_path_buf)
        .expect("kubectl has a directory");
    let bin = dir.join(format!("kubectl.{version}"));
    assert!(bin.exists(), "{} is missing", bin.display());
    bin
}

/// The transport kubectl `version` upgrades to: WebSocket from minor `since` on (1.30 for
/// exec and attach, 1.31 for port-forward), SPDY/3.1 before.
pub(super) fn transport(version: &str, since: u32) -> &'static str {
    let minor: u32 = version
        .split('.')
        .nth(1)
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    if minor >= since {
        "websocket"
    } else {
        "spdy/3.1"
    }
}

fn kubeconfig(dir: &Path, server: &Server) -> PathBuf {
    let path = dir.join("kubeconfig");
    let cfg = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: http://{}\n\
         contexts:\n- name: c\n  context:\n    cluster: c\n    user: u\n    namespace: ns\n\
         current-context: c\nusers:\n- name: u\n  user: {{}}\n",
        server.addr
    );
    std::fs::write(&path, cfg).unwrap();
    path
}

/// Runs `kubectl --kubeconfig CFG <args>` with `stdin`; its exit code, stdout and stderr.
pub(super) async fn run(
    bin: &Path,
    cfg: &Path,
    args: &[&str],
    stdin: &[u8],
) -> (i32, String, String) {
    let cfg = cfg.display().to_string();
    let args = [&["--kubeconfig", cfg.as_str()], args].concat();
    run_program(bin, &args, stdin).await
}

/// Runs `program <args>` with `stdin`; its exit code, stdout and stderr.
async fn run_program(program: &Path, args: &[&str], stdin: &[u8]) -> (i32, String, String) {
    let mut child = Command::new(program)
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
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn kubectl_exec_returns_output_and_exit_codes() {
    tokio::time::timeout(DEADLINE, async {
        let server = Server::start().await;
        let dir = tempfile::tempdir().unwrap();
        let cfg = kubeconfig(dir.path(), &server);
        for v in VERSIONS {
            let bin = kubectl(v);
            let (code, out, err) = run(&bin, &cfg, &["exec", "p", "--", "hello", "5"], b"").await;
            assert_eq!(
                (code, out.as_str()),
                (5, "hello from c\n"),
                "kubectl {v}: {err}"
            );
            assert_eq!(server.last_upgrade(), transport(v, 30), "kubectl {v}");
            let (code, out, err) = run(
                &bin,
                &cfg,
                &["exec", "-i", "p", "--", "cat", "0"],
                b"from stdin",
            )
            .await;
            assert_eq!(
                (code, out.as_str()),
                (0, "from stdin"),
                "kubectl {v}: {err}"
            );
            assert!(err.contains("stdin closed"), "kubectl {v}: {err}");
            let (code, _, err) = run(&bin, &cfg, &["exec", "p", "-c", "x", "--", "ls"], b"").await;
            assert_ne!(code, 0);
            assert!(
                err.contains("container x is not valid for pod p"),
                "kubectl {v}: {err}"
            );
        }
    })
    .await
    .expect("kubectl finishes within the deadline");
}

#[tokio::test]
async fn kubectl_attach_streams_the_containers_output() {
    tokio::time::timeout(DEADLINE, async {
        let server = Server::start().await;
        let dir = tempfile::tempdir().unwrap();
        let cfg = kubeconfig(dir.path(), &server);
        for v in VERSIONS {
            let (code, out, err) = run(&kubectl(v), &cfg, &["attach", "p"], b"").await;
            assert_eq!(
                (code, out.as_str()),
                (0, "attached to c (stdin=false)\n"),
                "kubectl {v}: {err}"
            );
            assert_eq!(server.last_upgrade(), transport(v, 30), "kubectl {v}");
        }
    })
    .await
    .expect("kubectl finishes within the deadline");
}

#[tokio::test]
async fn kubectl_exec_it_runs_through_a_terminal() {
    tokio::time::timeout(DEADLINE, async {
        let server = Server::start().await;
        let dir = tempfile::tempdir().unwrap();
        let cfg = kubeconfig(dir.path(), &server);
        for v in VERSIONS {
            let bin = kubectl(v);
            let inner = format!(
                "{} --kubeconfig {} exec -it p -- tty",
                bin.display(),
                cfg.display()
            );
            let (code, out, err) = run_program(
                Path::new("script"),
                &["-qec", &inner, "/dev/null"],
                b"hello\rexit\r",
            )
            .await;
            assert_eq!(code, 0, "kubectl {v}: {out} {err}");
            assert!(out.contains("tty=true size="), "kubectl {v}: {out:?}");
            assert!(out.contains("echo:hello"), "kubectl {v}: {out:?}");
            assert_eq!(server.last_upgrade(), transport(v, 30), "kubectl {v}");
        }
    })
    .await
    .expect("kubectl finishes within the deadline");
}

#[tokio::test]
async fn kubectl_port_forward_carries_http() {
    tokio::time::timeout(DEADLINE, async {
        let server = Server::start().await;
        let http = fake::http_server().await;
        let dir = tempfile::tempdir().unwrap();
        let cfg = kubeconfig(dir.path(), &server);
        for v in VERSIONS {
            let local = fake::closed_port();
            let mut child = Command::new(kubectl(v))
                .arg("--kubeconfig")
                .arg(&cfg)
                .args(["port-forward", "pod/p", &format!("{local}:{http}")])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .unwrap();
            let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
            let first = lines.next_line().await.unwrap().unwrap_or_default();
            assert!(
                first.starts_with("Forwarding from 127.0.0.1"),
                "kubectl {v}: {first}"
            );
            for _ in 0..2 {
                let out = Command::new("curl")
                    .args([
                        "-sS",
                        "--max-time",
                        "20",
                        &format!("http://127.0.0.1:{local}/"),
                    ])
                    .output()
                    .await
                    .unwrap();
                assert_eq!(
                    String::from_utf8_lossy(&out.stdout),
                    "hello from the pod",
                    "kubectl {v}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            assert_eq!(server.last_upgrade(), transport(v, 31), "kubectl {v}");
            child.kill().await.unwrap();
        }
    })
    .await
    .expect("kubectl and curl finish within the deadline");
}

#[tokio::test]
async fn an_idle_session_outlives_the_heartbeat_deadline() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let server = Server::start().await;
        let dir = tempfile::tempdir().unwrap();
        let cfg = kubeconfig(dir.path(), &server);
        let runs = VERSIONS.iter().map(|v| {
            let script = format!(
                "(sleep 70; printf late) | {} --kubeconfig {} exec -i p -- cat 0",
                kubectl(v).display(),
                cfg.display()
            );
            async move { (v, run_program(Path::new("sh"), &["-c", &script], b"").await) }
        });
        for (v, (code, out, err)) in futures::future::join_all(runs).await {
            assert_eq!((code, out.as_str()), (0, "late"), "kubectl {v}: {err}");
        }
    })
    .await
    .expect("the sessions end within the deadline");
}
