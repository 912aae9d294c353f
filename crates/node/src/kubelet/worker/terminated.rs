//! Terminated: the pod has stopped. A finished pod that is not deleted stays (its exited
//! containers keep their logs); a deleted one has its sandbox and volumes removed, and
//! then the kubelet removes the pod object, as the last to let go of it.

use client::{Api, DeleteParams};
use k8s_openapi::api::core::v1::Pod;

use super::lifecycle::FromTerminated;
use super::{name, namespace, PodWorker};
use crate::kubelet::volumes::VolumeCtx;

pub async fn step(w: &mut PodWorker) -> FromTerminated {
    w.observe().await;
    if w.pod.metadata.deletion_timestamp.is_none() {
        return FromTerminated::Stay;
    }
    let gone = w.shared.gone.lock().contains(&w.uid);
    if !gone {
        // The final status first, so watchers see how it ended.
        super::status::sync(w).await;
    }
    if let Some(sb) = w.sandbox.take() {
        if let Err(e) = w.shared.runtime.remove_pod_sandbox(&sb.id).await {
            tracing::warn!(pod = %name(&w.pod), error = %e, "removing the sandbox failed");
            w.sandbox = Some(sb);
            return FromTerminated::Stay;
        }
    }
    VolumeCtx::cleanup(&w.pod_dir());
    crate::kubelet::usage::forget(&w.shared, namespace(&w.pod), name(&w.pod)).await;
    if !gone {
        let dp = DeleteParams {
            grace_period_seconds: Some(0),
            precondition_uid: Some(w.uid.clone()),
            ..Default::default()
        };
        match Api::<Pod>::namespaced(w.shared.client.clone(), namespace(&w.pod))
            .delete_with(name(&w.pod), &dp)
            .await
        {
            Ok(_) => {}
            Err(e) if e.is_not_found() || e.is_conflict() => {}
            Err(e) => {
                tracing::warn!(pod = %name(&w.pod), error = %e, "deleting the pod object failed");
                return FromTerminated::Stay;
            }
        }
    }
    w.shared.gone.lock().remove(&w.uid);
    FromTerminated::CleanedUp
}
