//! The cloud of an `rkube up` cluster: the built-in `local` provider as one process of
//! the cluster, on a unix socket in the cluster's directory, which the
//! cloud-controller-manager in every member dials (only the one holding the Lease acts).
//! Its inventory lists the cluster's nodes, and its load balancers take loopback
//! addresses, so a `type: LoadBalancer` Service is reachable from the host. As root, its
//! volumes (files under `<dir>/volumes`, attached as loop devices) back the cluster's
//! default StorageClass, `local`.

use std::path::{Path, PathBuf};

use k8s_openapi::api::storage::v1::StorageClass;

use super::plan::Proc;
use super::UpArgs;

/// The provider's socket in the cluster at `dir`.
pub fn socket(dir: &Path) -> PathBuf {
    dir.join("provider.sock")
}

fn inventory(dir: &Path) -> PathBuf {
    dir.join("inventory.yaml")
}

/// The load balancer pool: `--lb-pool`, or a /24 of 127.0.0.0/8 that depends on the
/// cluster's directory, so clusters in other directories on the host take other
/// addresses. It stays clear of 127.0.0.0/16 and of the non-root Service range
/// (127.96.0.0/16).
pub fn lb_pool(a: &UpArgs) -> String {
    if let Some(p) = &a.lb_pool {
        return p.clone();
    }
    let abs = std::fs::canonicalize(&a.dir).unwrap_or_else(|_| a.dir.clone());
    let h = node::proxy::hash(&abs.to_string_lossy());
    format!("127.{}.{}.0/24", 200 + h % 50, (h >> 8) % 256)
}

/// The provider's process, when the cluster has one (`--cloud-provider local`).
pub fn provider_proc(a: &UpArgs) -> anyhow::Result<Option<Proc>> {
    match a.cloud_provider.as_str() {
        "none" => return Ok(None),
        "local" => {}
        other => anyhow::bail!("--cloud-provider {other:?}: supported values: \"local\", \"none\""),
    }
    let dir = &a.dir;
    let path = |p: PathBuf| p.to_string_lossy().into_owned();
    let args = [
        "cloud-provider".to_string(),
        "local".into(),
        "--socket".into(),
        path(socket(dir)),
        "--inventory".into(),
        path(inventory(dir)),
        "--lb-pool".into(),
        lb_pool(a),
        "--lb-state".into(),
        path(dir.join("load-balancers.json")),
        "--volume-pool".into(),
        path(volume_pool(dir)),
    ];
    Ok(Some(Proc {
        name: "cloud-provider".into(),
        role: "provider".into(),
        args: args.to_vec(),
        api: None,
        pid: None,
    }))
}

/// Where the provider keeps the cluster's volumes.
pub fn volume_pool(dir: &Path) -> PathBuf {
    dir.join("volumes")
}

/// The cluster's default StorageClass: volumes of the `local` provider (a file on the
/// pod's node, attached as a loop device), made when the first pod that uses a claim is
/// scheduled, deleted with the claim. An existing one is left as it is.
pub async fn default_storage_class(client: &client::Client) -> anyhow::Result<()> {
    let class: StorageClass = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "local",
            "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
        "provisioner": "local",
        "volumeBindingMode": "WaitForFirstConsumer",
        "reclaimPolicy": "Delete",
    }))?;
    match client::Api::<StorageClass>::all(client.clone())
        .create(&class)
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if e.is_already_exists() => Ok(()),
        Err(e) => Err(anyhow::anyhow!("creating the default StorageClass: {e}")),
    }
}

/// The flags a member runs its cloud-controller-manager with.
pub fn member_flags(dir: &Path) -> Vec<String> {
    let socket = socket(dir);
    vec![
        "--cloud-plugin".into(),
        format!("unix://{}", socket.to_string_lossy()),
    ]
}

/// Writes the inventory: every node of the cluster is a running machine.
pub fn write_inventory(dir: &Path, nodes: &[Proc]) -> anyhow::Result<()> {
    let mut text = String::from("region: local\nmachines:\n");
    for n in nodes {
        text.push_str(&format!(
            "  - name: {}\n    zone: {}\n    state: running\n",
            n.name, n.name
        ));
    }
    let path = inventory(dir);
    let tmp = path.with_extension("yaml.tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, &path)?;
    Ok(())
}
