//! etcd's own load test, `etcdctl check perf`, against a cluster (rkube over TLS with the
//! admin certificate, or etcd): its verdict and numbers, its errors, and how many
//! elections the members went through while it ran (the growth of the highest Raft term
//! any member reports).

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::Cluster;

/// One run of `etcdctl check perf`.
#[derive(Clone, Debug, Default)]
pub struct PerfRun {
    /// etcdctl's verdict: every check passed and it exited 0.
    pub passed: bool,
    /// "Throughput is N writes/s".
    pub writes_per_sec: Option<f64>,
    /// "Slowest request took N s", in ms.
    pub slowest_ms: Option<f64>,
    /// "Stddev is N s", in ms.
    pub stddev_ms: Option<f64>,
    /// Lines naming an error or a failed check.
    pub errors: Vec<String>,
    /// Terms the cluster went through during the run.
    pub elections: u64,
    pub took: Duration,
}

/// The highest Raft term any member answers with.
pub async fn highest_term(c: &Cluster) -> u64 {
    let mut best = 0;
    for i in 0..c.members.len() {
        let mut m = c.clients(i).maintenance;
        let answer = tokio::time::timeout(
            Duration::from_secs(2),
            m.status(rkube_proto::etcd::StatusRequest {}),
        )
        .await;
        if let Ok(Ok(r)) = answer {
            best = best.max(r.into_inner().raft_term);
        }
    }
    best
}

/// The number after `prefix` in `text`, up to the next space (`s` suffix dropped).
fn number_after(text: &str, prefix: &str) -> Option<f64> {
    let rest = &text[text.find(prefix)? + prefix.len()..];
    let word = rest.split_whitespace().next()?;
    word.trim_end_matches("s").parse().ok()
}

/// Reads etcdctl's report.
pub fn parse(out: &str, success: bool) -> PerfRun {
    let errors = out
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("FAIL") || l.starts_with("Error"))
        .map(str::to_string)
        .collect::<Vec<_>>();
    PerfRun {
        passed: success && errors.is_empty() && out.lines().any(|l| l.trim() == "PASS"),
        writes_per_sec: number_after(out, "Throughput is ")
            .or_else(|| number_after(out, "Throughput too low: ")),
        slowest_ms: number_after(out, "Slowest request took ")
            .or_else(|| number_after(out, "Slowest request took too long: "))
            .map(|s| s * 1000.0),
        stddev_ms: number_after(out, "Stddev is ")
            .or_else(|| number_after(out, "Stddev too high: "))
            .map(|s| s * 1000.0),
        errors,
        ..Default::default()
    }
}

/// Runs `etcdctl check perf --load=<load>` against every member of `c`.
pub async fn run(c: &Cluster, load: &str) -> PerfRun {
    let before = highest_term(c).await;
    let mut cmd = tokio::process::Command::new("etcdctl");
    cmd.env("ETCDCTL_API", "3")
        .args(["--endpoints", &c.endpoints(), "check", "perf"])
        .arg(format!("--load={load}"))
        .stdin(Stdio::null())
        .kill_on_drop(true);
    if c.etcd_tls().is_some() {
        let p = &c.pki;
        cmd.env("ETCDCTL_CACERT", &p.ca_file)
            .env("ETCDCTL_CERT", &p.admin.cert)
            .env("ETCDCTL_KEY", &p.admin.key);
    }
    let start = Instant::now();
    let out = match cmd.output().await {
        Ok(o) => o,
        Err(e) => {
            return PerfRun {
                errors: vec![format!("running etcdctl: {e}")],
                ..Default::default()
            }
        }
    };
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let mut run = parse(&text, out.status.success());
    run.took = start.elapsed();
    run.elections = highest_term(c).await.saturating_sub(before);
    run
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_passing_and_a_failing_report() {
        let ok = " 60 / 60 Boooo 100.00% 1m0s\nPASS: Throughput is 3390 writes/s\n\
                  PASS: Slowest request took 0.135406s\nPASS: Stddev is 0.016254s\nPASS\n";
        let r = parse(ok, true);
        assert!(r.passed, "{r:?}");
        assert_eq!(r.writes_per_sec, Some(3390.0));
        assert_eq!(r.slowest_ms.map(|m| m.round()), Some(135.0));
        assert_eq!(r.stddev_ms.map(|m| m.round()), Some(16.0));
        let bad = " 12 / 60 Boo\nError: etcdserver: request timed out\n";
        let r = parse(bad, false);
        assert!(!r.passed);
        assert_eq!(r.errors, vec!["Error: etcdserver: request timed out"]);
        let slow =
            "FAIL: Throughput too low: 900 writes/s\nPASS: Slowest request took 0.1s\nFAIL\n";
        let r = parse(slow, true);
        assert!(!r.passed);
        assert_eq!(r.writes_per_sec, Some(900.0));
    }
}
