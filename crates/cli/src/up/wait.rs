//! Waiting for the processes of `rkube up`: each wait polls until its condition holds,
//! and fails at once when a process exits meanwhile.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Node;
use tokio::sync::mpsc;

use super::plan::Proc;
use super::{log_path, Exit};

/// The status line of one HTTPS GET.
async fn https_status(
    addr: SocketAddr,
    path: &str,
    tls: &Arc<pki::rustls::ClientConfig>,
) -> Option<String> {
    let out = pki::https_get(addr, path, tls.clone()).await.ok()?;
    out.lines().next().map(str::to_string)
}

/// Polls `f` every 100 ms until it gives `Some`, for at most `limit`; fails early if a
/// process exits meanwhile.
async fn wait_for<T, F, Fut>(
    what: &str,
    limit: Duration,
    exits: &mut mpsc::UnboundedReceiver<Exit>,
    dir: &Path,
    mut f: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return Ok(v);
        }
        if let Ok(e) = exits.try_recv() {
            anyhow::bail!(
                "{} exited ({}) while waiting for {what}; see {}",
                e.name,
                e.status,
                log_path(dir, &e.name).display()
            );
        }
        anyhow::ensure!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the cloud provider listens on `socket`; fails if a process exits first.
/// (Its exit is learned from `exits`: a process just started may show no command line in
/// /proc yet, so asking /proc whether it runs would be wrong.)
pub(super) async fn wait_provider(
    socket: &Path,
    exits: &mut mpsc::UnboundedReceiver<Exit>,
    dir: &Path,
) -> anyhow::Result<()> {
    let what = format!("the cloud provider to listen on {}", socket.display());
    wait_for(&what, Duration::from_secs(20), exits, dir, || async {
        tokio::net::UnixStream::connect(socket).await.ok().map(drop)
    })
    .await
}

/// Waits until member `m` answers 200 on `path`; its API address.
pub(super) async fn wait_member_ok(
    m: &Proc,
    path: &str,
    what: &str,
    exits: &mut mpsc::UnboundedReceiver<Exit>,
    dir: &Path,
    tls: &Arc<pki::rustls::ClientConfig>,
) -> anyhow::Result<SocketAddr> {
    let api = m.api.expect("members have an API address");
    wait_for(what, Duration::from_secs(60), exits, dir, || async {
        https_status(api, path, tls)
            .await
            .filter(|s| s.contains(" 200"))
    })
    .await?;
    Ok(api)
}

/// Waits until the members have elected a leader; its name.
pub(super) async fn wait_leader(
    client: &client::Client,
    exits: &mut mpsc::UnboundedReceiver<Exit>,
    dir: &Path,
) -> anyhow::Result<String> {
    wait_for("a leader", Duration::from_secs(60), exits, dir, || async {
        let r = client.members().await.ok()?;
        r.members
            .iter()
            .find(|m| m.id == r.leader_id && r.leader_id != 0)
            .map(|m| m.name.clone())
    })
    .await
}

/// Waits until Node `name` has the Ready condition.
pub(super) async fn wait_node_ready(
    nodes: &client::Api<Node>,
    name: &str,
    exits: &mut mpsc::UnboundedReceiver<Exit>,
    dir: &Path,
) -> anyhow::Result<()> {
    wait_for(
        &format!("node {name} Ready"),
        Duration::from_secs(60),
        exits,
        dir,
        || async move {
            let node = nodes.get(name).await.ok()?;
            let ready = node
                .status?
                .conditions?
                .into_iter()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            ready.then_some(())
        },
    )
    .await
}
