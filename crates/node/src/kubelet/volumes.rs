//! Pod volumes on the node: emptyDir (tmpfs for `medium: Memory` when root), hostPath,
//! configMap, secret, downwardAPI, projected (with ServiceAccount tokens from a
//! TokenRequest bound to the pod), and persistentVolumeClaim ([`super::claims`]). Each
//! lives under the pod's directory and is mounted into containers by the runtime. Every file name a pod or its sources give (`items[].path`,
//! data keys, `subPath`) stays inside its volume ([`crate::runtime::beneath`]); with an
//! fsGroup, the volumes the kubelet makes belong to that group.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use client::{Api, Client};
use k8s_openapi::api::core::v1::{
    ConfigMap, DownwardAPIVolumeFile, HostPathVolumeSource, KeyToPath, Pod, Secret, Volume,
    VolumeProjection,
};
use rkube_proto::api::CreateTokenRequest;
use serde_json::json;

use super::env::field_ref;
use crate::runtime::beneath::{self, PathError};

/// Why a volume could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    /// A file name would leave the volume: the pod cannot start until it, or the object
    /// the volume is made from, changes.
    #[error("volume {volume:?}: {source}")]
    UnsafePath {
        volume: String,
        #[source]
        source: PathError,
    },
    /// Anything else (a missing source, a failed mount); retried on the next sync.
    #[error("{0}")]
    Setup(String),
}

/// The files of one volume: relative path → (content, mode).
type Files = BTreeMap<String, (Vec<u8>, u32)>;

pub struct VolumeCtx<'a> {
    pub client: &'a Client,
    pub pod: &'a Pod,
    pub pod_dir: &'a Path,
    /// The kubelet's data directory.
    pub data_dir: &'a Path,
    pub root: bool,
}

/// The files of a configMap or secret: all keys, or the listed ones (a missing key is an
/// error unless the source is optional).
fn items(
    data: BTreeMap<String, Vec<u8>>,
    items: Option<&Vec<KeyToPath>>,
    default_mode: u32,
    what: &str,
    optional: bool,
) -> Result<Files, String> {
    let mut out = Files::new();
    match items {
        Some(list) if !list.is_empty() => {
            for it in list {
                let Some(v) = data.get(&it.key) else {
                    if optional {
                        continue;
                    }
                    return Err(format!("{what}: key {:?} not found", it.key));
                };
                out.insert(
                    it.path.clone(),
                    (v.clone(), it.mode.map_or(default_mode, |m| m as u32)),
                );
            }
        }
        _ => {
            for (k, v) in data {
                out.insert(k, (v, default_mode));
            }
        }
    }
    Ok(out)
}

impl VolumeCtx<'_> {
    pub(super) fn ns(&self) -> &str {
        self.pod.metadata.namespace.as_deref().unwrap_or("default")
    }

    async fn config_map(
        &self,
        name: &str,
        optional: bool,
    ) -> Result<BTreeMap<String, Vec<u8>>, String> {
        match Api::<ConfigMap>::namespaced(self.client.clone(), self.ns())
            .get_opt(name)
            .await
            .map_err(|e| format!("configmap {name:?}: {e}"))?
        {
            Some(cm) => {
                let mut d: BTreeMap<String, Vec<u8>> = cm
                    .data
                    .into_iter()
                    .flatten()
                    .map(|(k, v)| (k, v.into_bytes()))
                    .collect();
                d.extend(cm.binary_data.into_iter().flatten().map(|(k, v)| (k, v.0)));
                Ok(d)
            }
            None if optional => Ok(BTreeMap::new()),
            None => Err(format!("configmap {name:?} not found")),
        }
    }

    async fn secret(
        &self,
        name: &str,
        optional: bool,
    ) -> Result<BTreeMap<String, Vec<u8>>, String> {
        match Api::<Secret>::namespaced(self.client.clone(), self.ns())
            .get_opt(name)
            .await
            .map_err(|e| format!("secret {name:?}: {e}"))?
        {
            Some(s) => Ok(s
                .data
                .into_iter()
                .flatten()
                .map(|(k, v)| (k, v.0))
                .collect()),
            None if optional => Ok(BTreeMap::new()),
            None => Err(format!("secret {name:?} not found")),
        }
    }

    fn downward(&self, files: &[DownwardAPIVolumeFile], mode: u32) -> Result<Files, String> {
        let mut out = Files::new();
        for f in files {
            let text = if let Some(r) = &f.field_ref {
                match r.field_path.as_str() {
                    "metadata.labels" | "metadata.annotations" => {
                        let m = if r.field_path == "metadata.labels" {
                            &self.pod.metadata.labels
                        } else {
                            &self.pod.metadata.annotations
                        };
                        m.iter()
                            .flatten()
                            .map(|(k, v)| format!("{k}={v:?}\n"))
                            .collect()
                    }
                    p => field_ref(self.pod, p, "", "")?,
                }
            } else {
                String::new()
            };
            out.insert(
                f.path.clone(),
                (text.into_bytes(), f.mode.map_or(mode, |m| m as u32)),
            );
        }
        Ok(out)
    }

    async fn token(
        &self,
        audience: Option<&str>,
        expiration: Option<i64>,
    ) -> Result<Vec<u8>, String> {
        let pod = &self.pod.metadata;
        let sa = self
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_else(|| "default".into());
        let spec = json!({"spec": {
            "audiences": audience.map(|a| vec![a]).unwrap_or_default(),
            "expirationSeconds": expiration.unwrap_or(3600),
            "boundObjectRef": {"kind": "Pod", "apiVersion": "v1",
                "name": pod.name, "uid": pod.uid}}});
        let resp = self
            .client
            .create_token(CreateTokenRequest {
                namespace: self.ns().to_string(),
                name: sa.clone(),
                json: serde_json::to_vec(&spec).unwrap_or_default().into(),
                secret_name: String::new(),
            })
            .await
            .map_err(|e| format!("token for serviceaccount {sa:?}: {e}"))?;
        let v: serde_json::Value = serde_json::from_slice(&resp.json).map_err(|e| e.to_string())?;
        Ok(v["status"]["token"]
            .as_str()
            .unwrap_or_default()
            .as_bytes()
            .to_vec())
    }

    async fn projected(&self, sources: &[VolumeProjection], mode: u32) -> Result<Files, String> {
        let mut out = Files::new();
        for s in sources {
            if let Some(cm) = &s.config_map {
                let opt = cm.optional == Some(true);
                let d = self.config_map(&cm.name, opt).await?;
                out.extend(items(d, cm.items.as_ref(), mode, "configmap", opt)?);
            }
            if let Some(sec) = &s.secret {
                let opt = sec.optional == Some(true);
                let d = self.secret(&sec.name, opt).await?;
                out.extend(items(d, sec.items.as_ref(), mode, "secret", opt)?);
            }
            if let Some(d) = &s.downward_api {
                out.extend(self.downward(d.items.as_deref().unwrap_or_default(), mode)?);
            }
            if let Some(t) = &s.service_account_token {
                let token = self
                    .token(t.audience.as_deref(), t.expiration_seconds)
                    .await?;
                out.insert(t.path.clone(), (token, mode));
            }
        }
        Ok(out)
    }

    fn fs_group(&self) -> Option<u32> {
        let sc = self.pod.spec.as_ref()?.security_context.as_ref()?;
        sc.fs_group.and_then(|g| u32::try_from(g).ok())
    }

    /// Makes volume `v` ready on the node; returns where it is.
    pub async fn prepare(&self, v: &Volume) -> Result<PathBuf, VolumeError> {
        let (dir, files, read_only) = self.files(v).await.map_err(VolumeError::Setup)?;
        let Some(files) = files else {
            return Ok(dir);
        };
        let unsafe_path = |source| VolumeError::UnsafePath {
            volume: v.name.clone(),
            source,
        };
        for rel in files.keys() {
            beneath::check_relative(rel).map_err(unsafe_path)?;
        }
        write_files(&dir, &files).map_err(|e| match e {
            PathError::Io { source, .. } => {
                VolumeError::Setup(format!("volume {:?}: {source}", v.name))
            }
            e => unsafe_path(e),
        })?;
        if let Some(gid) = self.fs_group().filter(|_| self.root) {
            beneath::set_group_beneath(&dir, gid, read_only).map_err(|e| {
                VolumeError::Setup(format!("volume {:?}: fsGroup {gid}: {e}", v.name))
            })?;
        }
        Ok(dir)
    }

    /// Where volume `v` is, made ready, with the files to write in it (none for hostPath
    /// and emptyDir) and whether they are read-only data (configMap, secret, …).
    async fn files(&self, v: &Volume) -> Result<(PathBuf, Option<Files>, bool), String> {
        let dir = self.pod_dir.join("volumes").join(&v.name);
        if let Some(hp) = &v.host_path {
            return Ok((host_path(hp)?, None, false));
        }
        if let Some(c) = &v.persistent_volume_claim {
            return Ok((self.claim_path(&c.claim_name).await?, None, false));
        }
        let fresh = !dir.exists();
        std::fs::create_dir_all(&dir).map_err(|e| format!("volume {:?}: {e}", v.name))?;
        let files = if let Some(ed) = &v.empty_dir {
            if ed.medium.as_deref() == Some("Memory") {
                let size = ed
                    .size_limit
                    .as_ref()
                    .map(|l| client::quantity::parse(&l.0).unwrap_or(0).max(0) as u64);
                self.tmpfs(&dir, &v.name, size, 0o777)?;
            }
            if fresh || is_mountpoint(&dir) {
                // As Kubernetes makes them: any user of the pod may write there.
                std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777))
                    .map_err(|e| format!("volume {:?}: {e}", v.name))?;
                if let Some(gid) = self.fs_group().filter(|_| self.root) {
                    beneath::set_group_beneath(&dir, gid, false)
                        .map_err(|e| format!("volume {:?}: fsGroup {gid}: {e}", v.name))?;
                }
            }
            return Ok((dir, None, false));
        } else if let Some(cm) = &v.config_map {
            let opt = cm.optional == Some(true);
            let d = self.config_map(&cm.name, opt).await?;
            let mode = cm.default_mode.unwrap_or(0o644) as u32;
            items(d, cm.items.as_ref(), mode, "configmap", opt)?
        } else if let Some(s) = &v.secret {
            let name = s.secret_name.clone().unwrap_or_default();
            let opt = s.optional == Some(true);
            let d = self.secret(&name, opt).await?;
            // Secrets never touch the node's disk, and only their owner reads them unless
            // the pod asks for another mode.
            self.tmpfs(&dir, &v.name, Some(SECRET_TMPFS_BYTES), 0o755)?;
            let mode = s.default_mode.unwrap_or(0o600) as u32;
            items(d, s.items.as_ref(), mode, "secret", opt)?
        } else if let Some(d) = &v.downward_api {
            self.downward(
                d.items.as_deref().unwrap_or_default(),
                d.default_mode.unwrap_or(0o644) as u32,
            )?
        } else if let Some(p) = &v.projected {
            // Projected volumes carry ServiceAccount tokens and secrets.
            self.tmpfs(&dir, &v.name, Some(SECRET_TMPFS_BYTES), 0o755)?;
            self.projected(
                p.sources.as_deref().unwrap_or_default(),
                p.default_mode.unwrap_or(0o644) as u32,
            )
            .await?
        } else {
            return Err(format!(
                "volume {:?}: only emptyDir, hostPath, configMap, secret, downwardAPI, projected and persistentVolumeClaim volumes are supported",
                v.name
            ));
        };
        Ok((dir, Some(files), true))
    }

    /// Mounts a tmpfs of at most `size` bytes on `dir` (as root, once); without root the
    /// directory stays on disk.
    fn tmpfs(&self, dir: &Path, volume: &str, size: Option<u64>, mode: u32) -> Result<(), String> {
        if !self.root || is_mountpoint(dir) {
            return Ok(());
        }
        let mut c = std::process::Command::new("mount");
        c.args(["-t", "tmpfs", "-o"])
            .arg(format!("mode={mode:04o}"));
        if let Some(size) = size {
            c.arg("-o").arg(format!("size={size}"));
        }
        let st = c
            .arg("tmpfs")
            .arg(dir)
            .status()
            .map_err(|e| format!("mounting tmpfs: {e}"))?;
        if !st.success() {
            return Err(format!("mounting tmpfs for volume {volume:?} failed"));
        }
        Ok(())
    }

    /// Releases what [`prepare`](Self::prepare) set up (the tmpfs of memory emptyDirs).
    pub fn cleanup(pod_dir: &Path) {
        let vols = pod_dir.join("volumes");
        for e in std::fs::read_dir(&vols).into_iter().flatten().flatten() {
            if is_mountpoint(&e.path()) {
                let _ = std::process::Command::new("umount").arg(e.path()).status();
            }
        }
        let _ = std::fs::remove_dir_all(pod_dir);
    }
}

/// Room for the files of one secret or projected volume in memory.
const SECRET_TMPFS_BYTES: u64 = 16 << 20;

/// A hostPath's directory or file, checked (or made) as its `type` says.
pub(super) fn host_path(hp: &HostPathVolumeSource) -> Result<PathBuf, String> {
    let p = PathBuf::from(&hp.path);
    match hp.type_.as_deref() {
        Some("DirectoryOrCreate") => {
            std::fs::create_dir_all(&p).map_err(|e| format!("hostPath {:?}: {e}", hp.path))?
        }
        Some("Directory") if !p.is_dir() => {
            return Err(format!("hostPath {:?} is not a directory", hp.path))
        }
        Some("File") if !p.is_file() => {
            return Err(format!("hostPath {:?} is not a file", hp.path))
        }
        _ => {}
    }
    Ok(p)
}

/// Writes the files of a volume, replacing what was there, so an update shows whole;
/// never outside `dir`, whatever links were planted in it.
fn write_files(dir: &Path, files: &Files) -> Result<(), PathError> {
    let io = |source| PathError::Io {
        path: String::new(),
        base: dir.to_path_buf(),
        source,
    };
    for e in std::fs::read_dir(dir).map_err(io)?.flatten() {
        let keep = files
            .keys()
            .any(|k| k.split('/').next() == Some(&*e.file_name().to_string_lossy()));
        if !keep {
            let p = e.path();
            let _ = if p.is_dir() {
                std::fs::remove_dir_all(p)
            } else {
                std::fs::remove_file(p)
            };
        }
    }
    for (rel, (content, mode)) in files {
        beneath::write_beneath(dir, rel, content, *mode)?;
    }
    Ok(())
}

pub(super) fn is_mountpoint(p: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let want = p.to_string_lossy();
    text.lines().any(|l| l.split(' ').nth(4) == Some(&want))
}

/// Unmounts (lazily) everything mounted below `dir`, deepest first: the volumes of pods
/// that an agent killed mid-life never tore down.
pub fn unmount_under(dir: &Path) {
    let dir = &std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let mut mounts: Vec<String> = std::fs::read_to_string("/proc/self/mounts")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1).map(str::to_string))
        .filter(|m| Path::new(m).starts_with(dir) && Path::new(m) != dir)
        .collect();
    mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
    for m in mounts {
        let _ = std::process::Command::new("umount")
            .args(["-l", &m])
            .status();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_files_are_written_inside_only() {
        let tmp = tempfile::tempdir().unwrap();
        let vol = tmp.path().join("v");
        std::fs::create_dir_all(&vol).unwrap();
        let files = |k: &str| Files::from([(k.to_string(), (b"x".to_vec(), 0o644))]);
        write_files(&vol, &files("..data")).unwrap();
        assert!(vol.join("..data").is_file());
        for bad in ["../x", "/abs", "a/../../x"] {
            assert!(write_files(&vol, &files(bad)).is_err(), "{bad}");
        }
        assert!(!tmp.path().join("x").exists());
    }
}
