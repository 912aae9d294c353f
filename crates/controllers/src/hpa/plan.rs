//! What the HPA controller decides for one HorizontalPodAutoscaler, as a pure function of
//! the HPA, its target's replicas, the target's pods with their metrics, what the HPA
//! remembers of earlier syncs, and the time: the replicas to set, the status, and the
//! events. [`super`] gathers the inputs and carries the plan out.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Instant;

use client::metrics::PodMetrics;
use client::state::EventType;
use k8s_openapi::api::autoscaling::v2::{
    HorizontalPodAutoscaler, MetricSpec, MetricTarget, ResourceMetricSource,
};
use k8s_openapi::api::core::v1::Pod;

use super::behavior::{self, Behavior, History};
use super::metrics;
use super::replicas::{self, Target};
use super::status::{Measured, Outcome};
use super::HpaConfig;
use crate::scheduler::resources::{parse, parse_milli, CPU};

/// What the controller sees of one HPA's scale target.
pub(crate) struct World<'a> {
    /// The target's replicas, from its scale.
    pub current: i32,
    /// The pods the target's selector matches, each with its PodMetrics when there are any.
    pub pods: &'a [(Arc<Pod>, Option<Arc<PodMetrics>>)],
    /// Now, in seconds since the epoch: how old metrics and readiness changes are.
    pub now_s: i64,
}

/// An event to record on the HPA.
#[derive(Debug, PartialEq)]
pub(crate) struct Note {
    pub type_: EventType,
    pub reason: &'static str,
    pub message: String,
}

/// What to do for one HPA.
#[derive(Debug)]
pub(crate) struct Plan {
    /// Set the target's replicas to `outcome.desired`, with this reason in the event;
    /// `None` leaves the target alone.
    pub rescale: Option<String>,
    /// The status to write. With a rescale, AbleToScale is set once it is known how the
    /// rescale went.
    pub outcome: Outcome,
    /// Events to record before any rescale.
    pub notes: Vec<Note>,
}

fn warning(reason: &'static str, message: String) -> Note {
    Note {
        type_: EventType::Warning,
        reason,
        message,
    }
}

/// The plan when the target's scale could not be read: `error`, or `None` when the target
/// does not exist.
pub(crate) fn without_scale(kind: &str, name: &str, error: Option<String>) -> Plan {
    let msg = error.unwrap_or_else(|| format!("{kind} {name:?} not found"));
    let msg = format!("the HPA controller was unable to get the target's current scale: {msg}");
    let outcome = Outcome {
        able: (false, "FailedGetScale", msg.clone()),
        ..Default::default()
    };
    Plan {
        rescale: None,
        outcome,
        notes: vec![warning("FailedGetScale", msg)],
    }
}

/// The plan for `hpa` whose target has `w.current` replicas. `h` is the HPA's history: the
/// recommendation made now is recorded in it.
pub(crate) fn plan(
    hpa: &HorizontalPodAutoscaler,
    w: &World,
    h: &mut History,
    cfg: &HpaConfig,
    now: Instant,
) -> Plan {
    let mut plan = Plan {
        rescale: None,
        outcome: Outcome {
            current: w.current,
            ..Default::default()
        },
        notes: Vec::new(),
    };
    let (desired, reason) = desired(hpa, w, h, cfg, now, &mut plan);
    plan.outcome.desired = desired;
    let min = hpa.spec.min_replicas.unwrap_or(1);
    if desired != w.current && !(w.current == 0 && min != 0) {
        plan.rescale = Some(reason);
    } else {
        plan.outcome.able = (
            true,
            "ReadyForNewScale",
            "recommended size matches current size".into(),
        );
    }
    plan
}

/// The replica count to aim for and why: the bounds when the target is outside them,
/// else what the metrics propose, normalized by the scaling behavior.
fn desired(
    hpa: &HorizontalPodAutoscaler,
    w: &World,
    h: &mut History,
    cfg: &HpaConfig,
    now: Instant,
    plan: &mut Plan,
) -> (i32, String) {
    let spec = &hpa.spec;
    let (min, max) = (spec.min_replicas.unwrap_or(1), spec.max_replicas);
    let current = w.current;
    if current == 0 && min != 0 {
        plan.outcome.active = Some((
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
    let Some((proposal, reason)) = from_metrics(hpa, w, cfg, plan) else {
        return (current, String::new());
    };
    let b = Behavior::of(spec.behavior.as_ref(), cfg.downscale_stabilization);
    let d = behavior::normalize(h, &b, now, current, proposal, min, max);
    plan.outcome.limited = Some((d.limited, d.reason, d.message));
    (d.replicas, reason)
}

/// The HPA's metrics; without any, Kubernetes' default: cpu at 80% of the requests.
fn metric_specs(hpa: &HorizontalPodAutoscaler) -> Cow<'_, [MetricSpec]> {
    match &hpa.spec.metrics {
        Some(s) if !s.is_empty() => Cow::Borrowed(s),
        _ => Cow::Owned(vec![MetricSpec {
            type_: "Resource".into(),
            resource: Some(ResourceMetricSource {
                name: CPU.into(),
                target: MetricTarget {
                    type_: "Utilization".into(),
                    average_utilization: Some(80),
                    ..Default::default()
                },
            }),
            ..Default::default()
        }]),
    }
}

/// The largest count the metrics ask for, with the reason for the event; `None` when no
/// metric could be computed. With any metric failing, the target is not scaled down.
fn from_metrics(
    hpa: &HorizontalPodAutoscaler,
    w: &World,
    cfg: &HpaConfig,
    plan: &mut Plan,
) -> Option<(i32, String)> {
    let specs = metric_specs(hpa);
    let mut best: Option<(i32, String)> = None;
    let mut errors = Vec::new();
    for spec in specs.iter() {
        match answer(spec, w, cfg) {
            Ok(a) => {
                plan.outcome.metrics.push(a.measured);
                let dir = if a.replicas > w.current {
                    "above"
                } else {
                    "below"
                };
                if best.as_ref().is_none_or(|(b, _)| a.replicas > *b) {
                    best = Some((a.replicas, format!("{} {dir} target", a.what)));
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
        plan.notes
            .push(warning("FailedGetResourceMetric", msg.clone()));
        if best.is_none() {
            plan.outcome.active = Some((false, "FailedGetResourceMetric", msg));
            return None;
        }
        if best.as_ref().is_some_and(|(b, _)| *b < w.current) {
            best = Some((w.current, String::new()));
        }
    }
    let (replicas, mut reason) = best?;
    if replicas < w.current && reason.contains("below") {
        reason = "All metrics below target".into();
    }
    plan.outcome.active = Some((
        true,
        "ValidMetricFound",
        "the HPA was able to successfully calculate a replica count from the metrics".into(),
    ));
    Some((replicas, reason))
}

/// One metric's answer: what it measured, what it is called in the event, and the
/// replicas it asks for.
struct Answer {
    measured: Measured,
    what: String,
    replicas: i32,
}

fn answer(spec: &MetricSpec, w: &World, cfg: &HpaConfig) -> Result<Answer, String> {
    let m = resource_metric(spec)?;
    let target = target_of(&m)?;
    let samples: Vec<_> = w
        .pods
        .iter()
        .map(|(p, pm)| metrics::sample(p, pm.as_deref(), m.resource, m.container, cfg, w.now_s))
        .collect();
    let p = replicas::replicas_for(m.resource, w.current, &samples, target, cfg.tolerance)?;
    let what = match target {
        Target::Utilization(_) => {
            format!(
                "{} resource utilization (percentage of request)",
                m.resource
            )
        }
        Target::AverageValue(_) => format!("{} resource", m.resource),
    };
    Ok(Answer {
        measured: Measured {
            resource: m.resource.to_string(),
            container: m.container.map(str::to_string),
            utilization: p.utilization,
            average: p.average,
        },
        what,
        replicas: p.replicas,
    })
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

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
