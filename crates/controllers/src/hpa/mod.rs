//! HorizontalPodAutoscaler controller (autoscaling/v2): every sync period, each HPA reads
//! its target's scale, asks every metric for a replica count (cpu and memory, as a
//! utilization of requests or an average value, from the PodMetrics kubelets publish),
//! takes the largest, applies the scaling behavior and min/max, and sets the target's
//! `spec.replicas`.

mod behavior;
mod metrics;
mod replicas;
mod status;

use client::state::EventType;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use client::informer::Change;
use client::metrics::PodMetrics;
use client::reflector::ObjectKey;
use client::{Api, PatchParams};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::autoscaling::v2::{HorizontalPodAutoscaler, MetricSpec, MetricTarget};
use k8s_openapi::api::core::v1::ReplicationController;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use parking_lot::Mutex;
use serde_json::json;

use crate::context::Ctx;
use crate::scheduler::resources::{parse, parse_milli, CPU};
use behavior::{Behavior, History};
use client::runtime::{backoff, key_of, Action};
use client::selectors::selector_matches;
use replicas::{Proposal, Target};
use status::{Measured, Outcome};

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

/// A metric this controller can compute: a resource, optionally one container's.
struct ResourceMetric<'a> {
    resource: &'a str,
    container: Option<&'a str>,
    target: &'a MetricTarget,
}

fn resource_metric(m: &MetricSpec) -> Result<ResourceMetric<'_>, String> {
    match m.type_.as_str() {
        "Resource" => m
            .resource
            .as_ref()
            .map(|r| ResourceMetric {
                resource: &r.name,
                container: None,
                target: &r.target,
            })
            .ok_or_else(|| "metric type Resource without resource".into()),
        "ContainerResource" => m
            .container_resource
            .as_ref()
            .map(|r| ResourceMetric {
                resource: &r.name,
                container: Some(&r.container),
                target: &r.target,
            })
            .ok_or_else(|| "metric type ContainerResource without containerResource".into()),
        other => Err(format!(
            "metric type {other} is not supported: only Resource and ContainerResource metrics are"
        )),
    }
}

fn target_of(m: &ResourceMetric<'_>) -> Result<Target, String> {
    match (m.target.average_utilization, m.target.average_value.as_ref()) {
        (Some(u), _) if m.target.type_ == "Utilization" => Ok(Target::Utilization(u)),
        (_, Some(v)) if m.target.type_ == "AverageValue" => {
            let n = if m.resource == CPU { parse_milli(&v.0) } else { parse(&v.0) };
            n.map(Target::AverageValue)
                .ok_or_else(|| format!("invalid averageValue {:?}", v.0))
        }
        _ => Err(format!(
            "target type {:?} of {} needs averageUtilization (Utilization) or averageValue (AverageValue)",
            m.target.type_, m.resource
        )),
    }
}

pub struct Controller {
    ctx: Arc<Ctx>,
    cfg: HpaConfig,
    histories: Mutex<HashMap<String, History>>,
}

pub async fn run(ctx: Arc<Ctx>, cfg: HpaConfig) {
    let c = ctx.clone();
    let ctl = Arc::new(Controller {
        ctx: ctx.clone(),
        cfg,
        histories: Mutex::new(HashMap::new()),
    });
    // Spec changes start a sync at once; the controller's own status writes do not.
    client::runtime::Controller::with_resync(
        "horizontalpodautoscaler",
        Arc::new(move || c.hpas.keys()),
    )
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
    .metrics(&ctx.metrics)
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
    async fn reconcile(&self, key: ObjectKey) -> Result<Action, client::Error> {
        let Some(hpa) = self.ctx.hpas.get(&key) else {
            return Ok(Action::AwaitChange);
        };
        let ns = key.namespace.as_str();
        let spec = hpa.spec.clone();
        let target = &spec.scale_target_ref;
        let min = spec.min_replicas.unwrap_or(1);
        let mut out = Outcome::default();
        let scale = match scale_of(&self.ctx, ns, &target.kind, &target.name) {
            Ok(Some(s)) => s,
            other => {
                let msg = match other {
                    Err(e) => e,
                    _ => format!("{} {:?} not found", target.kind, target.name),
                };
                let msg = format!(
                    "the HPA controller was unable to get the target's current scale: {msg}"
                );
                self.ctx
                    .events
                    .record(&*hpa, EventType::Warning, "FailedGetScale", msg.clone());
                out.able = (false, "FailedGetScale", msg);
                status::write(&self.ctx, &hpa, out).await?;
                return Ok(Action::Requeue(self.cfg.sync_period));
            }
        };
        let current = scale.replicas;
        out.current = current;
        let (desired, reason) = self.desired(&hpa, &scale, &mut out);
        out.desired = desired;
        if desired != current && !(current == 0 && min != 0) {
            self.rescale(&hpa, desired, &reason, &mut out).await?;
        } else {
            out.able = (
                true,
                "ReadyForNewScale",
                "recommended size matches current size".into(),
            );
        }
        status::write(&self.ctx, &hpa, out).await?;
        Ok(Action::Requeue(self.cfg.sync_period))
    }

    /// The replica count to aim for and why: the bounds when the target is outside them,
    /// else what the metrics propose, normalized by the scaling behavior.
    fn desired(
        &self,
        hpa: &HorizontalPodAutoscaler,
        scale: &Scale,
        out: &mut Outcome,
    ) -> (i32, String) {
        let spec = &hpa.spec;
        let (min, max) = (spec.min_replicas.unwrap_or(1), spec.max_replicas);
        let current = scale.replicas;
        if current == 0 && min != 0 {
            out.active = Some((
                false,
                "ScalingDisabled",
                "scaling is disabled since the replica count of the target is zero".into(),
            ));
            return (0, String::new());
        }
        if current > max {
            return (
                max,
                "Current number of replicas above Spec.MaxReplicas".into(),
            );
        }
        if current < min {
            return (
                min,
                "Current number of replicas below Spec.MinReplicas".into(),
            );
        }
        let ns = hpa.metadata.namespace.as_deref().unwrap_or_default();
        let Some((proposal, reason)) =
            self.desired_from_metrics(hpa, ns, scale, &spec.metrics, out)
        else {
            return (current, String::new());
        };
        let b = Behavior::of(spec.behavior.as_ref(), self.cfg.downscale_stabilization);
        let uid = hpa.metadata.uid.clone().unwrap_or_default();
        let mut hs = self.histories.lock();
        let h = hs.entry(uid).or_default();
        let d = behavior::normalize(h, &b, Instant::now(), current, proposal, min, max);
        out.limited = Some((d.limited, d.reason, d.message));
        (d.replicas, reason)
    }

    /// Sets the target's replicas to `desired`; a failure is recorded on the HPA's status
    /// and fails the reconcile.
    async fn rescale(
        &self,
        hpa: &Arc<HorizontalPodAutoscaler>,
        desired: i32,
        reason: &str,
        out: &mut Outcome,
    ) -> Result<(), client::Error> {
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

    /// The largest count the metrics ask for, with the reason for the event; `None` when no
    /// metric could be computed. With any metric failing, the target is not scaled down.
    fn desired_from_metrics(
        &self,
        hpa: &HorizontalPodAutoscaler,
        ns: &str,
        scale: &Scale,
        specs: &Option<Vec<MetricSpec>>,
        out: &mut Outcome,
    ) -> Option<(i32, String)> {
        let default = [serde_json::from_value::<MetricSpec>(json!({"type": "Resource",
            "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}))
        .expect("a valid default metric")];
        let specs: &[MetricSpec] = match specs {
            Some(s) if !s.is_empty() => s,
            _ => &default,
        };
        let now_s = client::events::now().as_second();
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
            .collect();
        let mut best: Option<(i32, String)> = None;
        let mut errors = Vec::new();
        for spec in specs {
            let computed = resource_metric(spec).and_then(|m| {
                let target = target_of(&m)?;
                let samples: Vec<_> = pods
                    .iter()
                    .map(|p| {
                        let key = ObjectKey::of(p.as_ref());
                        let pm: Option<Arc<PodMetrics>> = self.ctx.pod_metrics.get(&key);
                        metrics::sample(p, pm.as_deref(), m.resource, m.container, &self.cfg, now_s)
                    })
                    .collect();
                let p = replicas::replicas_for(
                    m.resource,
                    scale.replicas,
                    &samples,
                    target,
                    self.cfg.tolerance,
                )?;
                Ok((m, target, p))
            });
            match computed {
                Ok((m, target, p)) => {
                    let what = match target {
                        Target::Utilization(_) => format!(
                            "{} resource utilization (percentage of request)",
                            m.resource
                        ),
                        Target::AverageValue(_) => format!("{} resource", m.resource),
                    };
                    out.metrics.push(Measured {
                        resource: m.resource.to_string(),
                        container: m.container.map(str::to_string),
                        utilization: p.utilization,
                        average: p.average,
                    });
                    let Proposal { replicas, .. } = p;
                    let dir = if replicas > scale.replicas {
                        "above"
                    } else {
                        "below"
                    };
                    if best.as_ref().is_none_or(|(b, _)| replicas > *b) {
                        best = Some((replicas, format!("{what} {dir} target")));
                    }
                }
                Err(e) => errors.push(e),
            }
        }
        if let Some(first) = errors.first() {
            let msg = format!(
                "invalid metrics ({} invalid out of {}), first error is: {first}",
                errors.len(),
                specs.len()
            );
            self.ctx.events.record(
                hpa,
                EventType::Warning,
                "FailedGetResourceMetric",
                msg.clone(),
            );
            if best.is_none() {
                out.active = Some((false, "FailedGetResourceMetric", msg));
                return None;
            }
            if best.as_ref().is_some_and(|(b, _)| *b < scale.replicas) {
                best = Some((scale.replicas, String::new()));
            }
        }
        let (_, reason) = best.as_ref()?;
        if best.as_ref().is_some_and(|(b, _)| *b < scale.replicas) && reason.contains("below") {
            best = best.map(|(b, _)| (b, "All metrics below target".to_string()));
        }
        out.active = Some((
            true,
            "ValidMetricFound",
            "the HPA was able to successfully calculate a replica count from the metrics".into(),
        ));
        best
    }
}
