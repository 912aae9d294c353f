//! The mounts of a container: each volumeMount resolved to its volume's place on the
//! node, and a `subPath` below it opened (and made when missing) without leaving the
//! volume, so a link a container planted there cannot redirect the mount.

use std::collections::BTreeMap;
use std::path::PathBuf;

use k8s_openapi::api::core::v1::Container;

use crate::runtime::beneath;
use crate::runtime::Mount;

/// The mounts of a container: each volumeMount resolved to its volume's place (and
/// `subPath` below it).
pub fn mounts_for(
    c: &Container,
    prepared: &BTreeMap<String, PathBuf>,
) -> Result<Vec<Mount>, String> {
    c.volume_mounts
        .iter()
        .flatten()
        .map(|vm| {
            let base = prepared
                .get(&vm.name)
                .ok_or_else(|| format!("volumeMount {:?}: no such volume", vm.name))?;
            let (host_path, volume_root) = match vm.sub_path.as_deref().filter(|s| !s.is_empty()) {
                Some(sp) => {
                    // Made if missing, as the kubelet does; the runtime opens it again
                    // the same way when it mounts it.
                    beneath::check_relative(sp)
                        .and_then(|()| beneath::open_beneath(base, sp, true))
                        .map_err(|e| {
                            format!(
                                "failed to prepare subPath for volumeMount {:?} of container {:?}: {e}",
                                vm.name, c.name
                            )
                        })?;
                    (base.join(sp), Some(base.clone()))
                }
                None => (base.clone(), None),
            };
            Ok(Mount {
                host_path,
                container_path: vm.mount_path.clone(),
                read_only: vm.read_only == Some(true),
                volume_root,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use serde_json::json;

    use super::*;

    fn container(sub_path: &str) -> Container {
        serde_json::from_value(json!({"name": "c", "volumeMounts": [
            {"name": "v", "mountPath": "/m", "subPath": sub_path}]}))
        .unwrap()
    }

    #[test]
    fn sub_paths_stay_inside_their_volume() {
        let tmp = tempfile::tempdir().unwrap();
        let vol = tmp.path().join("v");
        std::fs::create_dir_all(&vol).unwrap();
        symlink("/etc", vol.join("evil")).unwrap();
        let prepared = BTreeMap::from([("v".to_string(), vol.clone())]);
        for bad in ["/abs", "..", "a/../../x", "evil", "evil/sub"] {
            let e = mounts_for(&container(bad), &prepared).unwrap_err();
            assert!(e.contains("failed to prepare subPath"), "{bad}: {e}");
        }
        let m = mounts_for(&container("new/dir"), &prepared).unwrap();
        assert_eq!(m[0].host_path, vol.join("new/dir"));
        assert_eq!(m[0].volume_root.as_deref(), Some(vol.as_path()));
        assert!(vol.join("new/dir").is_dir(), "a missing subPath is made");
    }
}
