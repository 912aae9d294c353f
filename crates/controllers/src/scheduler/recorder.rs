//! What the scheduler writes besides bindings: the PodScheduled=False condition, Events
//! (FailedScheduling, Preempted), `status.nominatedNodeName`, and the Failed status of pods
//! whose deadline passed while pending.

use client::state::EventType;
use client::{Api, Client, PatchParams};
use k8s_openapi::api::core::v1::{Event, Pod};
use serde_json::json;

use super::pod_info::PodInfo;

pub(crate) const COMPONENT: &str = "default-scheduler";

/// Now; the clock is read through std (jiff's clock feature is off in k8s-openapi).
pub(crate) use client::events::now;

fn now_rfc3339() -> String {
    now().to_string()
}

/// Records, logging failures: none of these writes may stop scheduling.
#[derive(Clone)]
pub(crate) struct Recorder {
    client: Client,
    component: String,
}

impl Recorder {
    pub(crate) fn new(client: Client, scheduler_name: &str) -> Self {
        Recorder {
            client,
            component: scheduler_name.to_string(),
        }
    }

    pub(crate) async fn event(&self, pod: &PodInfo, type_: EventType, reason: &str, message: &str) {
        let ev = crate::events::event_for(
            pod.pod.as_ref(),
            &self.component,
            type_,
            reason,
            message.to_string(),
        );
        let api = Api::<Event>::namespaced(self.client.clone(), &pod.namespace);
        if let Err(e) = api.create(&ev).await {
            tracing::debug!(pod = %pod.key, error = %e, "recording an event failed");
        }
    }

    /// PodScheduled=False with the reason, and a FailedScheduling event; also
    /// `status.nominatedNodeName` when preemption chose a node.
    pub(crate) async fn unschedulable(
        &self,
        pod: &PodInfo,
        message: &str,
        nominated: Option<&str>,
    ) {
        let api = Api::<Pod>::namespaced(self.client.clone(), &pod.namespace);
        let mut status = json!({"conditions": [{
            "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
            "message": message, "lastProbeTime": null, "lastTransitionTime": now_rfc3339(),
        }]});
        if let Some(n) = nominated {
            status["nominatedNodeName"] = n.into();
        }
        let patch = json!({"metadata": {"uid": pod.uid}, "status": status});
        if let Err(e) = api
            .patch_status(&pod.key.name, PatchParams::Strategic, &patch)
            .await
        {
            tracing::debug!(pod = %pod.key, error = %e, "setting PodScheduled=False failed");
        }
        self.event(pod, EventType::Warning, "FailedScheduling", message)
            .await;
    }

    /// Evicts a preemption victim: a graceful delete, and a Preempted event.
    pub(crate) async fn preempt(&self, victim: &PodInfo, by: &PodInfo, node: &str) {
        let api = Api::<Pod>::namespaced(self.client.clone(), &victim.namespace);
        match api.delete(&victim.key.name, None).await {
            Ok(_) => {
                let msg = format!("Preempted by pod {} on node {node}", by.uid);
                self.event(victim, EventType::Normal, "Preempted", &msg)
                    .await;
            }
            Err(e) if e.is_not_found() => {}
            Err(e) => tracing::warn!(pod = %victim.key, error = %e, "evicting a victim failed"),
        }
    }

    /// A pending pod whose activeDeadlineSeconds passed: Failed / DeadlineExceeded.
    pub(crate) async fn deadline_exceeded(&self, pod: &PodInfo) {
        let api = Api::<Pod>::namespaced(self.client.clone(), &pod.namespace);
        let message = format!(
            "Pod was pending longer than its activeDeadlineSeconds ({}s)",
            pod.spec().active_deadline_seconds.unwrap_or(0)
        );
        let patch = json!({"metadata": {"uid": pod.uid}, "status": {
            "phase": "Failed", "reason": "DeadlineExceeded", "message": message}});
        match api
            .patch_status(&pod.key.name, PatchParams::Merge, &patch)
            .await
        {
            Ok(_) => {
                self.event(pod, EventType::Warning, "DeadlineExceeded", &message)
                    .await
            }
            Err(e) => tracing::warn!(pod = %pod.key, error = %e, "failing a pod failed"),
        }
    }
}
