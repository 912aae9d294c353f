//! Volumes a cloud provider attaches (a PersistentVolume with a `csi` source whose driver
//! is the provider): the kubelet waits for the VolumeAttachment of (volume, this node) to
//! be attached, then mounts what its `attachmentMetadata` names into the pod's volume
//! directory: a block device (`devicePath`; given a filesystem, `fsType` or ext4, when it
//! has none yet) or a directory (`path`, bind-mounted). The mount is undone with the
//! pod's other volumes when the pod is gone ([`super::volumes::VolumeCtx::cleanup`]).

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use client::{Api, Client};
use k8s_openapi::api::core::v1::CSIPersistentVolumeSource;
use k8s_openapi::api::storage::v1::VolumeAttachment;

/// Where the attached volume is, as the provider's publish context says.
#[derive(Debug, PartialEq, Eq)]
enum Source {
    Device { path: String, fs_type: String },
    Directory(String),
}

/// A path from the provider: absolute, with no `..`.
fn clean(field: &str, p: &str) -> Result<String, String> {
    let ok = p.starts_with('/') && !Path::new(p).components().any(|c| c.as_os_str() == "..");
    match ok {
        true => Ok(p.to_string()),
        false => Err(format!(
            "attachmentMetadata.{field}: {p:?} is not an absolute path"
        )),
    }
}

fn source(meta: &BTreeMap<String, String>) -> Result<Source, String> {
    if let Some(dev) = meta.get("devicePath") {
        let path = clean("devicePath", dev)?;
        if !path.starts_with("/dev/") {
            return Err(format!(
                "attachmentMetadata.devicePath: {dev:?} is not under /dev"
            ));
        }
        let fs_type = meta.get("fsType").map_or("ext4", String::as_str);
        if fs_type.is_empty() || !fs_type.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(format!(
                "attachmentMetadata.fsType: {fs_type:?} is not a filesystem type"
            ));
        }
        return Ok(Source::Device {
            path,
            fs_type: fs_type.to_string(),
        });
    }
    if let Some(dir) = meta.get("path") {
        return Ok(Source::Directory(clean("path", dir)?));
    }
    Err("attachmentMetadata: Required value: devicePath or path".into())
}

fn run(cmd: &str, args: &[&str]) -> Result<std::process::ExitStatus, String> {
    std::process::Command::new(cmd)
        .args(args)
        .status()
        .map_err(|e| format!("{cmd}: {e}"))
}

fn must(cmd: &str, args: &[&str]) -> Result<(), String> {
    match run(cmd, args)? {
        s if s.success() => Ok(()),
        s => Err(format!("{cmd} {}: {s}", args.join(" "))),
    }
}

/// Mounts volume `volume` (a PersistentVolume of source `csi`) for a pod of this node at
/// `target`, once it is attached here.
pub(super) async fn mount(
    client: &Client,
    node: &str,
    volume: &str,
    csi: &CSIPersistentVolumeSource,
    target: &Path,
) -> Result<PathBuf, String> {
    let name = client::storage::attachment_name(&csi.volume_handle, &csi.driver, node);
    // A node may read only the attachments to itself, so one not made yet is Forbidden
    // rather than NotFound: both mean "not attached yet".
    let va = match Api::<VolumeAttachment>::all(client.clone())
        .get_opt(&name)
        .await
    {
        Ok(va) => va,
        Err(e) if e.is_forbidden() => None,
        Err(e) => return Err(format!("volumeattachment {name:?}: {e}")),
    };
    let status = va.and_then(|va| va.status).filter(|s| s.attached);
    let Some(status) = status else {
        return Err(format!(
            "persistentvolume {volume:?} is not attached to node {node:?} yet"
        ));
    };
    let src = source(&status.attachment_metadata.unwrap_or_default())
        .map_err(|e| format!("volumeattachment {name:?}: {e}"))?;
    if super::volumes::is_mountpoint(target) {
        return Ok(target.to_path_buf());
    }
    std::fs::create_dir_all(target).map_err(|e| format!("{}: {e}", target.display()))?;
    let t = target.to_string_lossy();
    match src {
        Source::Device { path, fs_type } => {
            // blkid exits 2 when it finds no filesystem: a new volume.
            let fresh = run("blkid", &["-p", &path])?.code() == Some(2);
            if fresh {
                must(&format!("mkfs.{fs_type}"), &["-q", &path])?;
            }
            must("mount", &["-t", &fs_type, &path, &t])?;
            if fresh {
                // Pods of any uid share it, as a fresh emptyDir is.
                std::fs::set_permissions(target, std::fs::Permissions::from_mode(0o777))
                    .map_err(|e| format!("{}: {e}", target.display()))?;
            }
        }
        Source::Directory(dir) => must("mount", &["--bind", &dir, &t])?,
    }
    tracing::info!(%volume, target = %target.display(), "mounted an attached volume");
    Ok(target.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn only_devices_and_directories_the_provider_names_cleanly_are_mounted() {
        let dev = |p: &str, fs: &str| Source::Device {
            path: p.into(),
            fs_type: fs.into(),
        };
        let ok = [
            (
                meta(&[("devicePath", "/dev/loop3")]),
                dev("/dev/loop3", "ext4"),
            ),
            (
                meta(&[("devicePath", "/dev/vdb"), ("fsType", "xfs")]),
                dev("/dev/vdb", "xfs"),
            ),
            (
                meta(&[("path", "/pool/w1/v")]),
                Source::Directory("/pool/w1/v".into()),
            ),
        ];
        for (m, want) in ok {
            assert_eq!(source(&m).unwrap(), want, "{m:?}");
        }
        let bad = [
            (meta(&[]), "attachmentMetadata: Required value"),
            (meta(&[("devicePath", "/etc/passwd")]), "devicePath"),
            (meta(&[("devicePath", "/dev/../etc/x")]), "devicePath"),
            (meta(&[("devicePath", "loop3")]), "devicePath"),
            (
                meta(&[("devicePath", "/dev/loop3"), ("fsType", "ext4 -o x")]),
                "fsType",
            ),
            (meta(&[("path", "relative")]), "path"),
            (meta(&[("path", "/a/../../etc")]), "path"),
        ];
        for (m, field) in bad {
            let e = source(&m).unwrap_err();
            assert!(e.contains(field), "{m:?}: {e}");
        }
    }
}
