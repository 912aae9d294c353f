//! Heartbeats: the node's Lease in `kube-node-lease`, renewed every 10 s, and its
//! conditions (Ready, MemoryPressure, DiskPressure, PIDPressure), written every 10 s.

use std::time::Duration;

use client::{Api, PatchParams};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use serde_json::{json, Value};

use super::Shared;

fn now_micro() -> String {
    client::events::now().to_string()
}

/// (MemoryPressure, DiskPressure, PIDPressure): memory and disk against the hard eviction
/// thresholds, pids over 90% of pid_max.
pub fn pressure(shared: &Shared) -> (bool, bool, bool) {
    let (mem, disk) = super::eviction::pressure(shared);
    let (procs, pid_max) = crate::host::processes();
    (mem, disk, procs * 10 > pid_max * 9)
}

fn condition(
    type_: &str,
    on: bool,
    reason_on: &str,
    reason_off: &str,
    msg: &str,
    now: &str,
    prev: Option<&Value>,
) -> Value {
    let status = if on { "True" } else { "False" };
    let since = prev
        .and_then(|c| {
            (c["status"] == status).then(|| c["lastTransitionTime"].as_str().map(str::to_string))
        })
        .flatten()
        .unwrap_or_else(|| now.to_string());
    json!({"type": type_, "status": status, "reason": if on { reason_on } else { reason_off },
        "message": msg, "lastHeartbeatTime": now, "lastTransitionTime": since})
}

async fn renew_lease(shared: &Shared) -> client::Result<()> {
    let leases = Api::<Lease>::namespaced(shared.client.clone(), "kube-node-lease");
    let n = &shared.cfg.node_name;
    let lease = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": n, "namespace": "kube-node-lease"},
        "spec": {"holderIdentity": n, "leaseDurationSeconds": shared.cfg.lease_duration_seconds,
            "renewTime": now_micro()}});
    match leases.patch(n, PatchParams::Merge, &lease).await {
        Ok(_) => Ok(()),
        Err(e) if e.is_not_found() => {
            let l: Lease = serde_json::from_value(lease).expect("a valid Lease");
            leases.create(&l).await.map(drop)
        }
        Err(e) => Err(e),
    }
}

async fn update_status(shared: &Shared) -> client::Result<()> {
    let api = Api::<Node>::all(shared.client.clone());
    let name = &shared.cfg.node_name;
    let prev = api.get(name).await?;
    if let Some(cidr) = prev.spec.as_ref().and_then(|s| s.pod_cidr.clone()) {
        super::set_pod_cidr(shared, &cidr).await;
    }
    let prev_conds =
        serde_json::to_value(prev.status.and_then(|s| s.conditions).unwrap_or_default())
            .unwrap_or_default();
    let find = |t: &str| {
        prev_conds
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == t))
            .cloned()
    };
    let now = client::events::now().to_string();
    let (mem, disk, pid) = pressure(shared);
    let conds = json!([
        condition(
            "MemoryPressure",
            mem,
            "KubeletHasInsufficientMemory",
            "KubeletHasSufficientMemory",
            "kubelet has sufficient memory available",
            &now,
            find("MemoryPressure").as_ref()
        ),
        condition(
            "DiskPressure",
            disk,
            "KubeletHasDiskPressure",
            "KubeletHasNoDiskPressure",
            "kubelet has no disk pressure",
            &now,
            find("DiskPressure").as_ref()
        ),
        condition(
            "PIDPressure",
            pid,
            "KubeletHasInsufficientPID",
            "KubeletHasSufficientPID",
            "kubelet has sufficient PID available",
            &now,
            find("PIDPressure").as_ref()
        ),
        condition(
            "Ready",
            true,
            "KubeletReady",
            "KubeletNotReady",
            "kubelet is posting ready status",
            &now,
            find("Ready").as_ref()
        ),
    ]);
    let mut st = super::register::status(shared);
    st["conditions"] = conds;
    if let Ok(images) = shared.runtime.list_images().await {
        st["images"] = images
            .into_iter()
            .map(|name| json!({"names": [name], "sizeBytes": 0}))
            .collect::<Vec<_>>()
            .into();
    }
    api.patch_status(name, PatchParams::Merge, &json!({ "status": st }))
        .await
        .map(drop)
}

pub async fn run(shared: std::sync::Arc<Shared>) {
    let mut lease_tick = tokio::time::interval(shared.cfg.lease_renew_interval);
    let mut status_tick = tokio::time::interval(shared.cfg.status_update_interval);
    loop {
        tokio::select! {
            _ = lease_tick.tick() => {
                if let Err(e) = renew_lease(&shared).await {
                    tracing::warn!(error = %e, "renewing the node lease failed");
                }
            }
            _ = status_tick.tick() => {
                if let Err(e) = update_status(&shared).await {
                    tracing::warn!(error = %e, "updating the node status failed");
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}
