//! Test harness of rkube: starts real `rkube` (and, for comparison, `etcd`) processes on
//! loopback ports with temporary data directories, and kills every one of them when the
//! harness is dropped — also when a test fails.
//!
//! The `rkube` binary is taken from `RKUBE_BIN`, or from the target directory this test
//! binary was built into (`cargo build --bin rkube` first).

pub mod chaos;
pub mod check_perf;
pub mod clients;
pub mod cloud_conformance;
pub mod cluster;
pub mod cluster_dns;
pub mod component;
pub mod containerd;
pub mod dns;
pub mod fake_kubelet;
pub mod fault_proxy;
pub mod kubectl;
pub mod linearizability;
pub mod local_cloud;
pub mod machines;
pub mod net;
pub mod netns;
pub mod node_agent;
pub mod objects;
pub mod pki;
pub mod pod_lifecycle;
pub mod ports;
pub mod process;
pub mod service_proxy;
pub mod up;
pub mod webhook_server;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

pub use cluster::{Clients, Cluster, Flavor};
pub use ports::{free_addr, free_port};

/// Scheduler leader election for tests: a 3 s Lease, so a takeover takes seconds.
pub const FAST_SCHEDULER_LEASE: &[&str] = &[
    "--leader-elect-lease-duration-ms",
    "3000",
    "--leader-elect-renew-deadline-ms",
    "2000",
    "--leader-elect-retry-period-ms",
    "200",
];

/// Controller-manager leader election for tests, as [`FAST_SCHEDULER_LEASE`].
pub const FAST_CM_LEASE: &[&str] = &[
    "--cm-leader-elect-lease-duration-ms",
    "3000",
    "--cm-leader-elect-renew-deadline-ms",
    "2000",
    "--cm-leader-elect-retry-period-ms",
    "200",
];

/// Path of the `rkube` binary under test.
pub fn rkube_bin() -> PathBuf {
    if let Ok(p) = std::env::var("RKUBE_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current exe");
    // Tests run from target/<profile>/deps/, binaries from target/<profile>/.
    let dir = exe.parent().expect("exe dir");
    let candidates = [
        dir.join("rkube"),
        dir.parent().expect("target dir").join("rkube"),
    ];
    candidates
        .iter()
        .find(|p| p.exists())
        .cloned()
        .unwrap_or_else(|| {
            panic!(
                "{} is missing: run `cargo build --bin rkube` first, or set RKUBE_BIN",
                candidates[1].display()
            )
        })
}

/// The etcd range end that makes `[prefix, end)` cover every key starting with `prefix`.
pub fn prefix_end(prefix: &str) -> bytes::Bytes {
    let mut end = prefix.as_bytes().to_vec();
    *end.last_mut().expect("a non-empty prefix") += 1;
    end.into()
}

/// An object envelope for the rkube API: the type, the namespace, and the object's JSON.
pub fn api_object(
    api_version: &str,
    kind: &str,
    ns: &str,
    v: serde_json::Value,
) -> rkube_proto::api::Object {
    rkube_proto::api::Object {
        r#type: Some(rkube_proto::api::TypeRef {
            api_version: api_version.into(),
            kind: kind.into(),
        }),
        namespace: ns.into(),
        json: serde_json::to_vec(&v).expect("JSON").into(),
        ..Default::default()
    }
}

/// One HTTP/1.1 GET; the whole response, headers included.
pub async fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await?;
    let mut out = String::new();
    s.read_to_string(&mut out).await?;
    Ok(out)
}

/// The flags that point an `rkube` command at a cluster: `--config FILE` when `access` is
/// a client configuration file ([`Cluster::api_access`]), else `--server ENDPOINTS`.
pub fn client_flags(access: &str) -> [String; 2] {
    let flag = if std::path::Path::new(access).is_file() {
        "--config"
    } else {
        "--server"
    };
    [flag.to_string(), access.to_string()]
}

/// The client configuration `access` names: a configuration file, or endpoints.
pub fn client_config(access: &str) -> client::ClientConfig {
    if std::path::Path::new(access).is_file() {
        client::ClientConfig::load(std::path::Path::new(access)).expect("client config")
    } else {
        client::ClientConfig::from_servers(access)
    }
}

/// Polls `f` until it returns `Some`, failing with `what` after `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
