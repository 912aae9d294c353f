//! Node registration: the Node object with capacity and allocatable read from the host
//! (cpu, memory, ephemeral-storage, pods), addresses, labels and the runtime's images.

use client::{Api, PatchParams};
use k8s_openapi::api::core::v1::Node;
use serde_json::{json, Value};

use super::Shared;

/// Bytes of physical memory, from /proc/meminfo.
pub fn memory_bytes() -> u64 {
    super::eviction::meminfo("MemTotal").unwrap_or(0)
}

/// Bytes of the filesystem holding `dir`.
pub fn disk_bytes(dir: &std::path::Path) -> u64 {
    rustix::fs::statvfs(dir).map_or(0, |s| s.f_blocks * s.f_frsize)
}

pub fn capacity(shared: &Shared) -> Value {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    json!({
        "cpu": cpus.to_string(),
        "memory": format!("{}Ki", memory_bytes() / 1024),
        "ephemeral-storage": format!("{}Ki", disk_bytes(&shared.cfg.data_dir) / 1024),
        "pods": shared.cfg.max_pods.to_string(),
    })
}

fn node_info(shared: &Shared) -> Value {
    let uname = rustix::system::uname();
    json!({
        "architecture": std::env::consts::ARCH,
        "operatingSystem": "linux",
        "kernelVersion": uname.release().to_string_lossy(),
        "osImage": std::fs::read_to_string("/etc/os-release").ok()
            .and_then(|s| s.lines().find_map(|l| l.strip_prefix("PRETTY_NAME=").map(|v| v.trim_matches('"').to_string())))
            .unwrap_or_else(|| "Linux".into()),
        "containerRuntimeVersion": shared.runtime.version(),
        "kubeletVersion": concat!("v1.32.0-rkube-", env!("CARGO_PKG_VERSION")),
        "kubeProxyVersion": "",
        "machineID": std::fs::read_to_string("/etc/machine-id").unwrap_or_default().trim(),
        "systemUUID": "",
        "bootID": std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default().trim(),
    })
}

/// The node's status apart from conditions.
pub fn status(shared: &Shared) -> Value {
    let cap = capacity(shared);
    let hostname = rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .to_string();
    json!({
        "capacity": cap,
        "allocatable": cap,
        "addresses": [
            {"type": "InternalIP", "address": shared.cfg.node_ip},
            {"type": "Hostname", "address": hostname},
        ],
        "nodeInfo": node_info(shared),
        "daemonEndpoints": {"kubeletEndpoint": {"Port": shared.agent_port}},
    })
}

/// Creates the Node, or takes over an existing one of the same name (labels merged).
pub async fn register(shared: &Shared) -> Result<(), String> {
    let api = Api::<Node>::all(shared.client.clone());
    let name = &shared.cfg.node_name;
    let mut labels = json!({
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": match std::env::consts::ARCH { "x86_64" => "amd64", "aarch64" => "arm64", a => a },
    });
    for (k, v) in &shared.cfg.labels {
        labels[k] = v.clone().into();
    }
    let node = json!({"apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": labels}, "spec": {}});
    let exists = api
        .get_opt(name)
        .await
        .map_err(|e| format!("reading node {name}: {e}"))?;
    if exists.is_some() {
        api.patch(
            name,
            PatchParams::Merge,
            &json!({"metadata": {"labels": labels}}),
        )
        .await
        .map_err(|e| format!("updating node {name}: {e}"))?;
    } else {
        let n: Node = serde_json::from_value(node).map_err(|e| e.to_string())?;
        match api.create(&n).await {
            Ok(_) => {}
            Err(e) if e.is_already_exists() => {}
            Err(e) => return Err(format!("registering node {name}: {e}")),
        }
    }
    api.patch_status(
        name,
        PatchParams::Merge,
        &json!({ "status": status(shared) }),
    )
    .await
    .map_err(|e| format!("node {name} status: {e}"))?;
    Ok(())
}
