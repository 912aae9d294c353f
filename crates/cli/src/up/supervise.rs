//! `rkube up` once the cluster is up: it starts again, with back-off, every member, node
//! or provider that exits, and says so; it stops on SIGINT, SIGTERM or SIGHUP. Its
//! children get SIGTERM from the kernel if `rkube up` itself dies (a parent-death
//! signal), so a `kill -9` of it leaves nothing running.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;

use super::plan::{self, State};
use super::{log_path, spawn, Exit};

/// The first wait before a restart; it doubles while a process keeps failing.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A process that ran this long before it exited starts again after the first wait.
const STABLE: Duration = Duration::from_secs(60);

/// Completes on SIGINT, SIGTERM or SIGHUP.
pub async fn stop_signal() {
    let (Ok(mut term), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) else {
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
        _ = hup.recv() => {}
    }
}

/// The next wait before starting a process again, given the last one and how long it ran.
pub fn next_backoff(last: Option<Duration>, ran: Duration) -> Duration {
    match last {
        Some(d) if ran < STABLE => (d * 2).min(MAX_BACKOFF),
        _ => FIRST_BACKOFF,
    }
}

/// Keeps the cluster's processes running (`restart`) or reports their exits, until a
/// stop signal.
pub async fn run(
    dir: &Path,
    state: &mut State,
    tx: &mpsc::UnboundedSender<Exit>,
    exits: &mut mpsc::UnboundedReceiver<Exit>,
    restart: bool,
) -> anyhow::Result<()> {
    let exe = std::env::current_exe()?;
    let (restart_tx, mut restarts) = mpsc::unbounded_channel::<String>();
    let mut backoff: HashMap<String, Duration> = HashMap::new();
    let mut started: HashMap<String, Instant> = HashMap::new();
    let stop = stop_signal();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => return Ok(()),
            Some(e) = exits.recv() => {
                if !restart {
                    let log = log_path(dir, &e.name);
                    println!("{} exited ({}); see {}", e.name, e.status, log.display());
                    continue;
                }
                let ran = started.get(&e.name).map_or(STABLE, Instant::elapsed);
                let wait = next_backoff(backoff.get(&e.name).copied(), ran);
                backoff.insert(e.name.clone(), wait);
                println!(
                    "{} exited ({}); starting it again in {} s; see {}",
                    e.name,
                    e.status,
                    wait.as_secs(),
                    log_path(dir, &e.name).display()
                );
                let (tx, name) = (restart_tx.clone(), e.name);
                tokio::spawn(async move {
                    tokio::time::sleep(wait).await;
                    let _ = tx.send(name);
                });
            }
            Some(name) = restarts.recv() => {
                let all = state.members.iter_mut().chain(state.nodes.iter_mut());
                let Some(p) = all.chain(state.provider.iter_mut()).find(|p| p.name == name) else {
                    continue;
                };
                match spawn(&exe, dir, p, tx) {
                    Ok(()) => {
                        started.insert(name.clone(), Instant::now());
                        println!("{name} started again (pid {})", p.pid.unwrap_or_default());
                    }
                    Err(e) => {
                        // As if it had exited at once: the next try backs off further.
                        let _ = tx.send(Exit { name, status: format!("{e:#}") });
                    }
                }
                plan::save(dir, state)?;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn back_off_doubles_while_failing_and_resets_after_a_stable_run() {
        let s = Duration::from_secs;
        assert_eq!(next_backoff(None, s(1)), s(1));
        assert_eq!(next_backoff(Some(s(1)), s(2)), s(2));
        assert_eq!(next_backoff(Some(s(16)), s(2)), s(30));
        assert_eq!(next_backoff(Some(s(30)), s(2)), s(30));
        assert_eq!(next_backoff(Some(s(30)), s(61)), s(1));
    }
}
