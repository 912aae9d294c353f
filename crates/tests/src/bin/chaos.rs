//! The chaos suite's long runs: scenarios on a 3-member cluster in network namespaces
//! (root), with the checks of `rkube_tests::chaos` at the end of each.
//!
//! `cargo build --release --bin rkube && cargo run --release -p rkube-tests --bin chaos -- --scenario all --kills 100`

use clap::Parser;
use rkube_tests::chaos::{self, Config, Scenario};

#[derive(Parser)]
struct Args {
    /// a..f (kill-leader, kill-all, isolate-leader, c2 = one-way-drop, pause-leader,
    /// rolling-restart, replace-member), comma-separated, or `all`.
    #[arg(long, default_value = "all")]
    scenario: String,
    /// Leader kills of scenario (a).
    #[arg(long, default_value_t = 100)]
    kills: usize,
    #[arg(long, default_value_t = 8)]
    etcd_clients: usize,
    #[arg(long, default_value_t = 4)]
    api_clients: usize,
    #[arg(long, default_value_t = 4)]
    keys: u32,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Per-operation client timeout in ms; a timed-out operation's outcome is unknown.
    #[arg(long, default_value_t = 3000)]
    op_timeout_ms: u64,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let scenarios: Vec<Scenario> = if args.scenario == "all" {
        Scenario::ALL.to_vec()
    } else {
        args.scenario
            .split(',')
            .map(|s| Scenario::parse(s).unwrap_or_else(|| panic!("unknown scenario {s:?}")))
            .collect()
    };
    let cfg = Config {
        etcd_clients: args.etcd_clients,
        api_clients: args.api_clients,
        keys: args.keys,
        kills: args.kills,
        seed: args.seed,
        op_timeout: std::time::Duration::from_millis(args.op_timeout_ms),
        ..Config::default()
    };
    let mut failed = false;
    for s in scenarios {
        let t = std::time::Instant::now();
        match chaos::run(s, &cfg).await {
            Ok(r) => {
                print!(
                    "{:<15} ok   faults {:>3}  ops {:>7}  acked writes {:>6}  watch events {:>6}  {:.0}s",
                    r.scenario,
                    r.faults,
                    r.operations,
                    r.acknowledged_writes,
                    r.watch_events,
                    t.elapsed().as_secs_f64()
                );
                if let Some((p50, p99, max)) = r.failover_percentiles() {
                    print!(
                        "  kill→next ack p50 {p50:.0} ms  p99 {p99:.0} ms  max {max:.0} ms (n={})",
                        r.failover_ms.len()
                    );
                }
                println!();
                if r.failover_ms.len() >= 10 {
                    let mut v = r.failover_ms.clone();
                    v.sort_by(|a, b| a.total_cmp(b));
                    let p90 = v[v.len() * 9 / 10];
                    let top: Vec<String> =
                        v.iter().rev().take(5).map(|x| format!("{x:.0}")).collect();
                    println!(
                        "{:<15}      kill→next ack p90 {p90:.0} ms; slowest: {} ms",
                        "",
                        top.join(", ")
                    );
                }
            }
            Err(e) => {
                failed = true;
                println!("{s:?} FAILED: {e}");
            }
        }
    }
    if failed {
        std::process::exit(1);
    }
}
