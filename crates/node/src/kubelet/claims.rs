//! Volumes from PersistentVolumeClaims: where the volume a pod's claim is bound to is on
//! this node — a hostPath or local volume's directory, a `rkube.io/local-path` one's (made
//! here), or a provider's volume attached and mounted here. Only the claim a volume is
//! bound to may use it.

use std::path::{Path, PathBuf};

use client::Api;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};

use super::local_path;
use super::volumes::VolumeCtx;

impl VolumeCtx<'_> {
    /// Where the volume bound to claim `name` is on this node: a hostPath or local
    /// PersistentVolume's directory, or a provider's volume attached here and mounted
    /// ([`super::attached`]). An unbound claim waits for its binding.
    pub(super) async fn claim_path(&self, name: &str) -> Result<PathBuf, String> {
        let claim = Api::<PersistentVolumeClaim>::namespaced(self.client.clone(), self.ns())
            .get_opt(name)
            .await
            .map_err(|e| format!("persistentvolumeclaim {name:?}: {e}"))?
            .ok_or_else(|| format!("persistentvolumeclaim {name:?} not found"))?;
        let volume = claim
            .spec
            .as_ref()
            .and_then(|s| s.volume_name.clone())
            .filter(|v| !v.is_empty())
            .ok_or_else(|| format!("persistentvolumeclaim {name:?} is not bound"))?;
        let pv = Api::<PersistentVolume>::all(self.client.clone())
            .get_opt(&volume)
            .await
            .map_err(|e| format!("persistentvolume {volume:?}: {e}"))?
            .ok_or_else(|| format!("persistentvolume {volume:?} not found"))?;
        let spec = pv.spec.clone().unwrap_or_default();
        // Only the claim the volume is bound to may use it: a claim naming someone
        // else's volume gets nothing (as the kubelet checks the volume's claimRef).
        let bound_to_this = spec.claim_ref.as_ref().is_some_and(|r| {
            r.namespace.as_deref() == Some(self.ns())
                && r.name.as_deref() == Some(name)
                && (r.uid.is_none() || r.uid == claim.metadata.uid)
        });
        if !bound_to_this {
            return Err(format!(
                "persistentvolume {volume:?} is not bound to persistentvolumeclaim {name:?}"
            ));
        }
        if let Some(hp) = &spec.host_path {
            return super::volumes::host_path(hp);
        }
        if let Some(csi) = &spec.csi {
            let node = self.pod.spec.as_ref().and_then(|s| s.node_name.as_deref());
            let target = self.pod_dir.join("volumes").join(format!("csi-{volume}"));
            let node = node.ok_or("the pod is not bound to a node")?;
            return super::attached::mount(self.client, node, &volume, csi, &target).await;
        }
        let provisioned = pv
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(local_path::PROVISIONED_BY));
        match spec.local {
            Some(l) if provisioned.is_some_and(|p| p == local_path::PROVISIONER) => {
                local_path::dir(self.client, self.data_dir, &pv, &l.path).await
            }
            Some(l) if Path::new(&l.path).is_dir() => Ok(PathBuf::from(l.path)),
            Some(l) => Err(format!("local volume {:?} is not a directory", l.path)),
            None => Err(format!(
                "persistentvolume {volume:?}: only hostPath and local volumes are supported"
            )),
        }
    }
}
