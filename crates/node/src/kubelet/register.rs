//! Node registration: the Node object with capacity and allocatable read from the host
//! (cpu, memory, ephemeral-storage, pods), addresses, labels and the runtime's images.

use client::{Api, PatchParams};
use k8s_openapi::api::core::v1::Node;
use serde_json::{json, Value};

use super::Shared;
use crate::{host, Error};

pub fn capacity(shared: &Shared) -> Value {
    let disk = host::filesystem(&shared.cfg.data_dir).map_or(0, |f| f.total);
    json!({
        "cpu": host::cpus().to_string(),
        "memory": format!("{}Ki", host::memory_bytes() / 1024),
        "ephemeral-storage": format!("{}Ki", disk / 1024),
        "pods": shared.cfg.max_pods.to_string(),
    })
}

fn node_info(shared: &Shared, id: &host::Identity) -> Value {
    json!({
        "architecture": std::env::consts::ARCH,
        "operatingSystem": "linux",
        "kernelVersion": id.kernel,
        "osImage": id.os_image,
        "containerRuntimeVersion": shared.runtime.version(),
        "kubeletVersion": concat!("v1.32.0-rkube-", env!("CARGO_PKG_VERSION")),
        "kubeProxyVersion": "",
        "machineID": id.machine_id,
        "systemUUID": "",
        "bootID": id.boot_id,
    })
}

/// The node's status apart from conditions.
pub fn status(shared: &Shared) -> Value {
    let cap = capacity(shared);
    let id = host::identity();
    json!({
        "capacity": cap,
        "allocatable": cap,
        "addresses": [
            {"type": "InternalIP", "address": shared.cfg.node_ip},
            {"type": "Hostname", "address": id.hostname},
        ],
        "nodeInfo": node_info(shared, &id),
        "daemonEndpoints": {"kubeletEndpoint": {"Port": shared.agent_port}},
    })
}

/// The taint of a node a cloud-controller-manager has yet to initialize.
const UNINITIALIZED: &str = "node.cloudprovider.kubernetes.io/uninitialized";

/// Creates the Node, or takes over an existing one of the same name (labels merged).
pub async fn register(shared: &Shared) -> crate::Result<()> {
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
    // As the kubelet's --register-with-taints: only when the Node is created.
    let spec = match shared.cfg.cloud_provider_external {
        true => {
            json!({"taints": [{"key": UNINITIALIZED, "value": "true", "effect": "NoSchedule"}]})
        }
        false => json!({}),
    };
    let node = json!({"apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": labels}, "spec": spec});
    let exists = api
        .get_opt(name)
        .await
        .map_err(|e| Error::request(format!("reading node {name}"), e))?;
    if exists.is_some() {
        api.patch(
            name,
            PatchParams::Merge,
            &json!({"metadata": {"labels": labels}}),
        )
        .await
        .map_err(|e| Error::request(format!("updating node {name}"), e))?;
    } else {
        let n: Node =
            serde_json::from_value(node).map_err(|e| Error::invalid("--node-labels", e))?;
        match api.create(&n).await {
            Ok(_) => {}
            Err(e) if e.is_already_exists() => {}
            Err(e) => return Err(Error::request(format!("registering node {name}"), e)),
        }
    }
    api.patch_status(
        name,
        PatchParams::Merge,
        &json!({ "status": status(shared) }),
    )
    .await
    .map_err(|e| Error::request(format!("node {name} status"), e))?;
    Ok(())
}
