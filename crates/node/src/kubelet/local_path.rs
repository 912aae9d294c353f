//! Volumes of the built-in `rkube.io/local-path` provisioner on this node. Before it makes
//! a volume's directory, the kubelet records the volume (`<data-dir>/local-path/<name>`,
//! holding the path) and puts its finalizer on it, so the volume cannot go before its
//! directory. [`sweep`] removes the directory of a volume being deleted, then the
//! finalizer, then the record. The node may read and finalize these volumes (and change
//! nothing else of them) because they live on it.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use client::{Api, Client};
use k8s_openapi::api::core::v1::PersistentVolume;

pub(super) const PROVISIONED_BY: &str = "pv.kubernetes.io/provisioned-by";
pub(super) const PROVISIONER: &str = "rkube.io/local-path";
/// Held by the node while the volume's directory exists.
pub(super) const FINALIZER: &str = "rkube.io/local-path-directory";
/// How often [`sweep`] looks at the recorded volumes.
const SWEEP_EVERY: Duration = Duration::from_secs(3);

/// Where the node records the volumes whose directories it made.
pub(super) fn records(data_dir: &Path) -> PathBuf {
    data_dir.join("local-path")
}

/// Volume `pv`'s directory at `path`: recorded, finalized and made on first use, writable
/// by any user (pods of any uid share it, as the local-path provisioner's volumes are).
pub(super) async fn dir(
    client: &Client,
    data_dir: &Path,
    pv: &PersistentVolume,
    path: &str,
) -> Result<PathBuf, String> {
    let name = pv.metadata.name.as_deref().unwrap_or_default();
    let dir = PathBuf::from(path);
    let fail = |e: &dyn std::fmt::Display| format!("local-path volume {name:?} at {path:?}: {e}");
    let records = records(data_dir);
    std::fs::create_dir_all(&records).map_err(|e| fail(&e))?;
    std::fs::write(records.join(name), path).map_err(|e| fail(&e))?;
    if !has_finalizer(pv) {
        set_finalizer(client, name, true)
            .await
            .map_err(|e| fail(&e))?;
    }
    if !dir.is_dir() {
        std::fs::create_dir_all(&dir).map_err(|e| fail(&e))?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777))
            .map_err(|e| fail(&e))?;
    }
    Ok(dir)
}

fn has_finalizer(pv: &PersistentVolume) -> bool {
    pv.metadata
        .finalizers
        .as_ref()
        .is_some_and(|f| f.iter().any(|f| f == FINALIZER))
}

/// Adds (`on`) or removes the node's finalizer, retrying on conflicting writes. A volume
/// that is gone (or no longer this node's to read) cannot get one.
async fn set_finalizer(client: &Client, name: &str, on: bool) -> Result<(), String> {
    let api = Api::<PersistentVolume>::all(client.clone());
    for _ in 0..5 {
        let mut pv = match api.get_opt(name).await {
            Ok(Some(pv)) => pv,
            Ok(None) if !on => return Ok(()),
            Ok(None) => return Err("the volume is gone".into()),
            Err(e) => return Err(e.to_string()),
        };
        if has_finalizer(&pv) == on {
            return Ok(());
        }
        let list = pv.metadata.finalizers.get_or_insert_with(Vec::new);
        if on {
            list.push(FINALIZER.to_string());
        } else {
            list.retain(|f| f != FINALIZER);
        }
        match api.replace(&pv).await {
            Ok(_) => return Ok(()),
            Err(e) if e.is_conflict() => continue,
            Err(e) => return Err(e.to_string()),
        }
    }
    Err("the volume kept changing (5 conflicting writes)".into())
}

/// Removes the directories of recorded volumes that are being deleted, every few seconds.
pub(super) async fn run(client: Client, data_dir: PathBuf) {
    let mut tick = tokio::time::interval(SWEEP_EVERY);
    loop {
        tick.tick().await;
        sweep(&client, &records(&data_dir)).await;
    }
}

/// One pass over the recorded volumes. A volume being deleted loses its directory, then
/// the finalizer, then its record. One that cannot be read (its finalizer was taken off
/// by someone else, so it may be gone) keeps its directory: only an unmade one's record
/// goes.
pub(super) async fn sweep(client: &Client, records: &Path) {
    let Ok(entries) = std::fs::read_dir(records) else {
        return;
    };
    let api = Api::<PersistentVolume>::all(client.clone());
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let Ok(path) = std::fs::read_to_string(e.path()) else {
            continue;
        };
        let path = PathBuf::from(path);
        match api.get_opt(&name).await {
            Ok(Some(pv)) if pv.metadata.deletion_timestamp.is_some() => {
                if let Err(e) = remove(client, &pv, &path).await {
                    tracing::warn!(volume = %name, error = %e, "removing a local-path volume");
                    continue;
                }
                tracing::info!(volume = %name, path = %path.display(), "local-path volume removed");
                let _ = std::fs::remove_file(e.path());
            }
            Ok(Some(_)) => {}
            // Gone, or no longer this node's: without a directory there is nothing to keep.
            Ok(None) if !path.exists() => {
                let _ = std::fs::remove_file(e.path());
            }
            Err(err) if err.is_forbidden() && !path.exists() => {
                let _ = std::fs::remove_file(e.path());
            }
            Ok(None) => {
                tracing::warn!(volume = %name, path = %path.display(),
                    "a local-path volume went without its directory being removed; keeping it");
            }
            Err(e) => tracing::debug!(volume = %name, error = %e, "reading a local-path volume"),
        }
    }
}

/// Removes the directory of `pv` (only the one its spec names), then the finalizer.
async fn remove(client: &Client, pv: &PersistentVolume, path: &Path) -> Result<(), String> {
    let named = pv
        .spec
        .as_ref()
        .and_then(|s| s.local.as_ref())
        .map(|l| PathBuf::from(&l.path));
    if named.as_deref() != Some(path) {
        return Err(format!(
            "the volume names {named:?}, not the recorded {}",
            path.display()
        ));
    }
    match std::fs::remove_dir_all(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("{}: {e}", path.display())),
    }
    let name = pv.metadata.name.as_deref().unwrap_or_default();
    set_finalizer(client, name, false)
        .await
        .map_err(|e| format!("removing the finalizer: {e}"))
}
