//! The Debian etcdctl (3.4) against a three-member `rkube store` cluster, over TLS with
//! the admin client certificate (`--cacert`, `--cert`, `--key`).

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use rkube_tests::{eventually, Cluster, Flavor};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

/// The CA and the admin certificate of the one cluster this test starts.
static CREDENTIALS: OnceLock<[PathBuf; 3]> = OnceLock::new();

fn etcdctl(endpoints: &str) -> Command {
    let mut c = Command::new("etcdctl");
    if let Some([ca, cert, key]) = CREDENTIALS.get() {
        c.env("ETCDCTL_CACERT", ca)
            .env("ETCDCTL_CERT", cert)
            .env("ETCDCTL_KEY", key);
    }
    c.env("ETCDCTL_API", "3")
        .args(["--endpoints", endpoints, "--command-timeout", "10s"])
        .stdin(Stdio::null())
        .kill_on_drop(true);
    c
}

/// Runs etcdctl and returns stdout, failing the test with stderr if it fails.
async fn run(endpoints: &str, args: &[&str]) -> String {
    let out = etcdctl(endpoints)
        .args(args)
        .output()
        .await
        .expect("run etcdctl");
    assert!(
        out.status.success(),
        "etcdctl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

async fn run_err(endpoints: &str, args: &[&str]) -> String {
    let out = etcdctl(endpoints)
        .args(args)
        .output()
        .await
        .expect("run etcdctl");
    assert!(!out.status.success(), "etcdctl {args:?} should fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Starts `etcdctl watch` and returns its output lines until `n` lines arrived.
async fn watch_lines(
    endpoints: &str,
    args: &[&str],
    n: usize,
    trigger: impl std::future::Future<Output = ()>,
) -> Vec<String> {
    let mut child = etcdctl(endpoints)
        .arg("watch")
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .expect("etcdctl watch");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    trigger.await;
    let mut out = Vec::new();
    while out.len() < n {
        let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("etcdctl watch {args:?}: timed out; got {out:?}"))
            .expect("read")
            .unwrap_or_else(|| panic!("etcdctl watch {args:?} ended; got {out:?}"));
        out.push(line);
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn etcdctl_works_against_rkube_store() {
    tokio::time::timeout(Duration::from_secs(120), scenario())
        .await
        .expect("etcdctl scenario within 120 s");
}

async fn scenario() {
    let c = Cluster::start(Flavor::Rkube, 3, &[]).await;
    let p = &c.pki;
    let creds = [p.ca_file.clone(), p.admin.cert.clone(), p.admin.key.clone()];
    CREDENTIALS.set(creds).expect("one cluster per test binary");
    let all = c.endpoints();
    let one = |i: usize| c.members[i].client.to_string();

    // Writes through each member, reads through another.
    assert_eq!(run(&one(0), &["put", "foo", "bar"]).await, "OK\n");
    assert_eq!(run(&one(1), &["put", "foo2", "baz"]).await, "OK\n");
    assert_eq!(
        run(&one(2), &["get", "--prefix", "foo"]).await,
        "foo\nbar\nfoo2\nbaz\n"
    );
    assert_eq!(run(&one(0), &["del", "foo2"]).await, "1\n");
    assert_eq!(run(&all, &["get", "--prefix", "foo"]).await, "foo\nbar\n");

    // txn in etcdctl's interactive form: compares, blank line, success ops, blank, failure ops.
    let mut txn = etcdctl(&all)
        .args(["txn"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    txn.stdin
        .take()
        .unwrap()
        .write_all(b"value(\"foo\") = \"bar\"\n\nput foo changed\n\nput foo failed\n\n")
        .await
        .unwrap();
    let out = txn.wait_with_output().await.unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "SUCCESS\n\nOK\n");
    assert_eq!(
        run(&all, &["get", "foo", "--print-value-only"]).await,
        "changed\n"
    );

    // watch from a past revision replays history; a live watch sees a new put.
    let history = watch_lines(&one(2), &["--rev", "1", "--prefix", "foo"], 12, async {}).await;
    assert_eq!(
        history,
        [
            "PUT", "foo", "bar", "PUT", "foo2", "baz", "DELETE", "foo2", "", "PUT", "foo",
            "changed"
        ]
    );
    let ep = one(1);
    let live = watch_lines(&one(0), &["live"], 3, async {
        // Wait until the watch is registered, by retrying the put until an event arrives.
        tokio::time::sleep(Duration::from_millis(300)).await;
        run(&ep, &["put", "live", "v1"]).await;
    })
    .await;
    assert_eq!(live, ["PUT", "live", "v1"]);

    // Leases: a key attached to a lease goes away when the lease expires.
    let granted = run(&all, &["lease", "grant", "2"]).await;
    let id = granted
        .split_whitespace()
        .nth(1)
        .expect("lease id")
        .to_string();
    assert!(granted.ends_with("granted with TTL(2s)\n"), "{granted}");
    run(&all, &["put", "--lease", &id, "leased", "v"]).await;
    let ttl = run(&all, &["lease", "timetolive", &id, "--keys"]).await;
    assert!(ttl.contains("attached keys([leased])"), "{ttl}");
    eventually(
        Duration::from_secs(15),
        "the leased key to expire",
        || async { run(&all, &["get", "leased"]).await.is_empty().then_some(()) },
    )
    .await;
    let expired = run(&all, &["lease", "timetolive", &id]).await;
    assert!(expired.contains("already expired"), "{expired}");

    // Cluster and maintenance.
    let members = run(&all, &["member", "list"]).await;
    assert_eq!(members.lines().count(), 3, "{members}");
    for (i, m) in c.members.iter().enumerate() {
        let line = members
            .lines()
            .find(|l| l.contains(&format!(", {}, ", m.name)))
            .unwrap_or_else(|| panic!("{members}"));
        assert!(
            line.contains("started")
                && line.contains(&m.peer.to_string())
                && line.contains(&one(i)),
            "{line}"
        );
    }
    let status = run(&all, &["endpoint", "status"]).await;
    assert_eq!(status.lines().count(), 3, "{status}");
    assert_eq!(
        status
            .lines()
            .filter(|l| l.contains(", true, false,"))
            .count(),
        1,
        "one leader: {status}"
    );
    // etcdctl 3.4 prints health results on stderr.
    let out = etcdctl(&all)
        .args(["endpoint", "health"])
        .output()
        .await
        .expect("etcdctl");
    assert!(out.status.success());
    let health =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert_eq!(health.matches("is healthy").count(), 3, "{health}");

    let defrag = run(&all, &["defrag"]).await;
    assert_eq!(
        defrag.matches("Finished defragmenting etcd member").count(),
        3,
        "{defrag}"
    );

    // Compaction: history below the compaction revision is gone, with etcd's error.
    let rev: i64 = run(&all, &["get", "foo", "-w", "fields"])
        .await
        .lines()
        .find(|l| l.starts_with("\"Revision\""))
        .and_then(|l| l.split(':').nth(1))
        .and_then(|v| v.trim().parse().ok())
        .expect("revision");
    assert_eq!(
        run(&all, &["compaction", &rev.to_string()]).await,
        format!("compacted revision {rev}\n")
    );
    let err = run_err(&all, &["get", "foo", "--rev", "1"]).await;
    assert!(
        err.contains("required revision has been compacted"),
        "{err}"
    );
    let out = tokio::time::timeout(
        Duration::from_secs(10),
        etcdctl(&one(0))
            .args(["watch", "--rev", "1", "foo"])
            .output(),
    )
    .await
    .expect("a watch from a compacted revision ends")
    .expect("etcdctl");
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("required revision has been compacted"),
        "{text}"
    );
}
