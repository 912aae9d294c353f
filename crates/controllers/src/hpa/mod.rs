//! HorizontalPodAutoscaler controller (autoscaling/v2): every sync period, each HPA reads
//! its target's scale, asks every metric for a replica count (cpu and memory, as a
//! utilization of requests or an average value, from the PodMetrics kubelets publish),
//! takes the largest, applies the scaling behavior and min/max, and sets the target's
//! `spec.replicas`.
//!
//! [`plan`] decides, from the HPA, its target's pods and their metrics; the controller
//! gathers the inputs and makes the calls.

mod behavior;
mod metrics;
mod plan;
mod replicas;
mod status;
#[cfg(test)]
mod testing;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use client::informer::Change;
use client::reflector::ObjectKey;
use client::runtime::{backoff, key_of, Action};
use client::selectors::selector_matches;
use client::state::EventType;
use client::{Api, PatchParams};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::ReplicationController;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use parking_lot::Mutex;
use serde_json::json;

use crate::context::Ctx;
use behavior::History;
use plan::{Plan, World};
use status::Outcome;

/// The controller's settings, as kube-controller-manager's `--horizontal-pod-autoscaler-*`.
#[derive(Clone, Debug)]
pub struct HpaConfig {
    pub sync_period: Duration,
    pub tolerance: f64,
    /// The default scale-down stabilization window.
    pub downscale_stabilization: Duration,
    pub cpu_initialization_period: Duration,
    pub initial_readiness_delay: Duration,
}

impl Default for HpaConfig {
    fn default() -> Self {
        HpaConfig {
            sync_period: Duration::from_secs(15),
            tolerance: 0.1,
            downscale_stabilization: Duration::from_secs(300),
            cpu_initialization_period: Duration::from_secs(300),
            initial_readiness_delay: Duration::from_secs(30),
        }
    }
}

/// The scale of a target: its replicas and pod selector.
struct Scale {
    replicas: i32,
    selector: LabelSelector,
}

fn scale_of(ctx: &Ctx, ns: &str, kind: &str, name: &str) -> Result<Option<Scale>, String> {
    let key = ObjectKey {
        namespace: ns.into(),
        name: name.into(),
    };
    Ok(match kind {
        "Deployment" => ctx.deployments.get(&key).map(|d| Scale {
            replicas: d.spec.replicas.unwrap_or(1),
            selector: d.spec.selector.clone(),
        }),
        "ReplicaSet" => ctx.replicasets.get(&key).map(|r| Scale {
            replicas: r.spec.replicas.unwrap_or(1),
            selector: r.spec.selector.clone(),
        }),
        "ReplicationController" => ctx.replication_controllers.get(&key).map(|r| {
            let spec = r.spec.clone().unwrap_or_default();
            Scale {
                replicas: spec.replicas.unwrap_or(1),
                selector: LabelSelector {
                    match_labels: spec.selector,
                    ..Default::default()
                },
            }
        }),
        other => return Err(format!("scaling {other} is not supported")),
    })
}

async fn set_replicas(ctx: &Ctx, ns: &str, kind: &str, name: &str, n: i32) -> client::Result<()> {
    let patch = json!({"spec": {"replicas": n}});
    let c = ctx.client.clone();
    match kind {
        "Deployment" => Api::<Deployment>::namespaced(c, ns)
            .patch(name, PatchParams::Merge, &patch)
            .await
            .map(drop),
        "ReplicaSet" => Api::<ReplicaSet>::namespaced(c, ns)
            .patch(name, PatchParams::Merge, &patch)
            .await
            .map(drop),
        _ => Api::<ReplicationController>::namespaced(c, ns)
            .patch(name, PatchParams::Merge, &patch)
            .await
            .map(drop),
    }
}

pub(crate) struct Controller {
    ctx: Arc<Ctx>,
    cfg: HpaConfig,
    histories: Mutex<HashMap<String, History>>,
}

pub(crate) async fn run(ctx: Arc<Ctx>, cfg: HpaConfig) {
    let c = ctx.clone();
    let ctl = Arc::new(Controller {
        ctx: ctx.clone(),
        cfg,
        histories: Mutex::new(HashMap::new()),
    });
    // Spec changes start a sync at once; the controller's own status writes do not.
    ctx.controller_with_resync("horizontalpodautoscaler", Arc::new(move || c.hpas.keys()))
        .watches(ctx.hpas.clone(), |ch: &Change<HorizontalPodAutoscaler>| {
            let h = ch.object();
            let observed = h.status.as_ref().and_then(|s| s.observed_generation);
            match ch {
                Change::Applied(_) if observed == h.metadata.generation && observed.is_some() => {
                    vec![]
                }
                _ => vec![key_of(ch)],
            }
        })
        .concurrency(2)
        .run(
            move |key, _| {
                let ctl = ctl.clone();
                async move { ctl.reconcile(key).await }
            },
            backoff,
            ctx,
        )
        .await
}

impl Controller {
    /// Gathers what the HPA's plan needs, decides, and carries the plan out.
    async fn reconcile(&self, key: ObjectKey) -> Result<Action, client::Error> {
        let Some(hpa) = self.ctx.hpas.get(&key) else {
            return Ok(Action::AwaitChange);
        };
        let target = &hpa.spec.scale_target_ref;
        let plan = match scale_of(&self.ctx, &key.namespace, &target.kind, &target.name) {
            Ok(Some(scale)) => self.plan(&hpa, &scale),
            Ok(None) => plan::without_scale(&target.kind, &target.name, None),
            Err(e) => plan::without_scale(&target.kind, &target.name, Some(e)),
        };
        self.apply(&hpa, plan).await
    }

    /// Decides from the target's pods and their metrics.
    fn plan(&self, hpa: &HorizontalPodAutoscaler, scale: &Scale) -> Plan {
        let ns = hpa.metadata.namespace.as_deref().unwrap_or_default();
        let pods: Vec<_> = self
            .ctx
            .pods
            .list_namespace(ns)
            .into_iter()
            .filter(|p| {
                selector_matches(
                    &scale.selector,
                    &p.metadata.labels.clone().unwrap_or_default(),
                )
            })
            .map(|p| {
                let m = self.ctx.pod_metrics.get(&ObjectKey::of(p.as_ref()));
                (p, m)
            })
            .collect();
        let world = World {
            current: scale.replicas,
            pods: &pods,
            now_s: client::events::now().as_second(),
        };
        let uid = hpa.metadata.uid.clone().unwrap_or_default();
        let mut histories = self.histories.lock();
        let h = histories.entry(uid).or_default();
        plan::plan(hpa, &world, h, &self.cfg, Instant::now())
    }

    /// Records the plan's events, rescales the target, and writes the status.
    async fn apply(
        &self,
        hpa: &Arc<HorizontalPodAutoscaler>,
        plan: Plan,
    ) -> Result<Action, client::Error> {
        for n in plan.notes {
            self.ctx.events.record(&**hpa, n.type_, n.reason, n.message);
        }
        let mut out = plan.outcome;
        if let Some(reason) = plan.rescale {
            self.rescale(hpa, &reason, &mut out).await?;
        }
        status::write(&self.ctx, hpa, out).await?;
        Ok(Action::Requeue(self.cfg.sync_period))
    }

    /// Sets the target's replicas to `out.desired`; a failure is recorded on the HPA's
    /// status and fails the reconcile.
    async fn rescale(
        &self,
        hpa: &Arc<HorizontalPodAutoscaler>,
        reason: &str,
        out: &mut Outcome,
    ) -> Result<(), client::Error> {
        let desired = out.desired;
        let ns = hpa.metadata.namespace.as_deref().unwrap_or_default();
        let target = &hpa.spec.scale_target_ref;
        if let Err(e) = set_replicas(&self.ctx, ns, &target.kind, &target.name, desired).await {
            let msg = format!("failed to rescale {} {:?}: {e}", target.kind, target.name);
            self.ctx
                .events
                .record(&**hpa, EventType::Warning, "FailedRescale", msg.clone());
            out.able = (false, "FailedUpdateScale", msg);
            status::write(&self.ctx, hpa, std::mem::take(out)).await?;
            return Err(e);
        }
        let uid = hpa.metadata.uid.clone().unwrap_or_default();
        self.histories.lock().entry(uid).or_default().record_scale(
            Instant::now(),
            out.current,
            desired,
        );
        self.ctx.events.record(
            &**hpa,
            EventType::Normal,
            "SuccessfulRescale",
            format!("New size: {desired}; reason: {reason}"),
        );
        out.able = (
            true,
            "SucceededRescale",
            format!("the HPA controller was able to update the target scale to {desired}"),
        );
        out.rescaled = true;
        Ok(())
    }
}
