//! Volumes of the built-in `rkube.io/local-path` provisioner on this node: the directory
//! a volume names is made on first use. The directory is left behind when the volume is
//! deleted (the node may not read volumes it does not use, so it cannot tell a deleted
//! one from another node's).

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

pub(super) const PROVISIONED_BY: &str = "pv.kubernetes.io/provisioned-by";
pub(super) const PROVISIONER: &str = "rkube.io/local-path";

/// A `rkube.io/local-path` volume's directory, made on first use, writable by any user
/// (pods of any uid share it, as the local-path provisioner's volumes are). The directory
/// is left behind when the volume is deleted.
pub(super) fn dir(path: &str) -> Result<PathBuf, String> {
    let dir = PathBuf::from(path);
    if !dir.is_dir() {
        std::fs::create_dir_all(&dir).map_err(|e| format!("local-path volume {path:?}: {e}"))?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777))
            .map_err(|e| format!("local-path volume {path:?}: {e}"))?;
    }
    Ok(dir)
}
