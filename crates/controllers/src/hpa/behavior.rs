//! Scaling behavior (autoscaling/v2 `spec.behavior`): stabilization windows over recent
//! recommendations, then rate limits from the scaling policies, then min/max — in that
//! order, as Kubernetes applies them.

use std::time::{Duration, Instant};

use k8s_openapi::api::autoscaling::v2::{HPAScalingRules, HorizontalPodAutoscalerBehavior};

#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Select {
    Max,
    Min,
    Disabled,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Policy {
    Pods(i32),
    Percent(i32),
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Rules {
    pub stabilization: Duration,
    pub select: Select,
    /// Each policy with its period.
    pub policies: Vec<(Policy, Duration)>,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Behavior {
    pub up: Rules,
    pub down: Rules,
}

const PERIOD: Duration = Duration::from_secs(15);

fn rules(r: Option<&HPAScalingRules>, default: Rules) -> Rules {
    let Some(r) = r else { return default };
    let select = match r.select_policy.as_deref() {
        Some("Min") => Select::Min,
        Some("Disabled") => Select::Disabled,
        Some(_) => Select::Max,
        None => default.select,
    };
    let policies = match &r.policies {
        Some(p) if !p.is_empty() => p
            .iter()
            .map(|p| {
                let policy = if p.type_ == "Pods" {
                    Policy::Pods(p.value)
                } else {
                    Policy::Percent(p.value)
                };
                (policy, Duration::from_secs(p.period_seconds.max(1) as u64))
            })
            .collect(),
        _ => default.policies,
    };
    Rules {
        stabilization: r
            .stabilization_window_seconds
            .map_or(default.stabilization, |s| {
                Duration::from_secs(s.max(0) as u64)
            }),
        select,
        policies,
    }
}

impl Behavior {
    /// The HPA's behavior with Kubernetes' defaults filled in. `down_window` is the
    /// controller's default scale-down stabilization window.
    pub(crate) fn of(
        b: Option<&HorizontalPodAutoscalerBehavior>,
        down_window: Duration,
    ) -> Behavior {
        let up = Rules {
            stabilization: Duration::ZERO,
            select: Select::Max,
            policies: vec![(Policy::Pods(4), PERIOD), (Policy::Percent(100), PERIOD)],
        };
        let down = Rules {
            stabilization: down_window,
            select: Select::Max,
            policies: vec![(Policy::Percent(100), PERIOD)],
        };
        Behavior {
            up: rules(b.and_then(|b| b.scale_up.as_ref()), up),
            down: rules(b.and_then(|b| b.scale_down.as_ref()), down),
        }
    }
}

/// What one HPA remembers between syncs: recent recommendations and scale events.
#[derive(Debug, Default)]
pub(crate) struct History {
    recommendations: Vec<(Instant, i32)>,
    /// (when, replicas added) and (when, replicas removed).
    ups: Vec<(Instant, i32)>,
    downs: Vec<(Instant, i32)>,
}

impl History {
    pub(crate) fn record_scale(&mut self, now: Instant, from: i32, to: i32) {
        if to > from {
            self.ups.push((now, to - from));
        } else if to < from {
            self.downs.push((now, from - to));
        }
    }
}

/// The outcome, with the ScalingLimited condition's reason and message.
#[derive(Debug, PartialEq)]
pub(crate) struct Decision {
    pub replicas: i32,
    pub limited: bool,
    pub reason: &'static str,
    pub message: String,
}

fn within(events: &[(Instant, i32)], now: Instant, period: Duration) -> i32 {
    events
        .iter()
        .filter(|(t, _)| now.duration_since(*t) < period)
        .map(|(_, n)| n)
        .sum()
}

fn up_limit(h: &History, r: &Rules, now: Instant, current: i32) -> i32 {
    if r.select == Select::Disabled {
        return current;
    }
    let mut out = if r.select == Select::Max {
        i32::MIN
    } else {
        i32::MAX
    };
    for (p, period) in &r.policies {
        let start = current - within(&h.ups, now, *period) + within(&h.downs, now, *period);
        let proposed = match *p {
            Policy::Pods(n) => start + n,
            Policy::Percent(pc) => (f64::from(start) * (1.0 + f64::from(pc) / 100.0)).ceil() as i32,
        };
        out = if r.select == Select::Max {
            out.max(proposed)
        } else {
            out.min(proposed)
        };
    }
    out
}

fn down_limit(h: &History, r: &Rules, now: Instant, current: i32) -> i32 {
    if r.select == Select::Disabled {
        return current;
    }
    let mut out = if r.select == Select::Max {
        i32::MAX
    } else {
        i32::MIN
    };
    for (p, period) in &r.policies {
        let start = current + within(&h.downs, now, *period) - within(&h.ups, now, *period);
        let proposed = match *p {
            Policy::Pods(n) => start - n,
            Policy::Percent(pc) => (f64::from(start) * (1.0 - f64::from(pc) / 100.0)) as i32,
        };
        out = if r.select == Select::Max {
            out.min(proposed)
        } else {
            out.max(proposed)
        };
    }
    out
}

const TOO_MANY: &str = "the desired replica count is more than the maximum replica count";
const TOO_FEW: &str = "the desired replica count is less than the minimum replica count";

/// Turns the metrics' `desired` into the replicas to set: stabilized over the windows,
/// limited by the policies, and kept within `[min, max]`.
pub(crate) fn normalize(
    h: &mut History,
    b: &Behavior,
    now: Instant,
    current: i32,
    desired: i32,
    min: i32,
    max: i32,
) -> Decision {
    let (up_rec, down_rec) = stabilize(h, b, now, desired);
    forget_old_scales(h, b, now);
    limit(
        h,
        b,
        now,
        current,
        current.max(up_rec).min(down_rec),
        min,
        max,
    )
}

/// The lowest recommendation within the scale-up window and the highest within the
/// scale-down window, `desired` included; records `desired` and forgets what no window
/// needs any more.
fn stabilize(h: &mut History, b: &Behavior, now: Instant, desired: i32) -> (i32, i32) {
    let (mut up_rec, mut down_rec) = (desired, desired);
    for (t, r) in &h.recommendations {
        let age = now.duration_since(*t);
        if age < b.up.stabilization {
            up_rec = up_rec.min(*r);
        }
        if age < b.down.stabilization {
            down_rec = down_rec.max(*r);
        }
    }
    let keep = b.up.stabilization.max(b.down.stabilization);
    h.recommendations
        .retain(|(t, _)| now.duration_since(*t) < keep);
    h.recommendations.push((now, desired));
    (up_rec, down_rec)
}

/// Forgets scale events older than the longest policy period.
fn forget_old_scales(h: &mut History, b: &Behavior, now: Instant) {
    let longest =
        b.up.policies
            .iter()
            .chain(&b.down.policies)
            .map(|(_, p)| *p)
            .max()
            .unwrap_or(PERIOD);
    h.ups.retain(|(t, _)| now.duration_since(*t) < longest);
    h.downs.retain(|(t, _)| now.duration_since(*t) < longest);
}

fn limited(replicas: i32, reason: &'static str, message: &str) -> Decision {
    Decision {
        replicas,
        limited: true,
        reason,
        message: message.into(),
    }
}

/// `want` held to the policies' rate limits and to `[min, max]`.
fn limit(
    h: &History,
    b: &Behavior,
    now: Instant,
    current: i32,
    want: i32,
    min: i32,
    max: i32,
) -> Decision {
    if want > current {
        let cap = up_limit(h, &b.up, now, current).max(current);
        let (bound, reason, msg) = if max > cap {
            (
                cap,
                "ScaleUpLimit",
                "the desired replica count is increasing faster than the maximum scale rate",
            )
        } else {
            (max, "TooManyReplicas", TOO_MANY)
        };
        if want > bound {
            return limited(bound, reason, msg);
        }
    } else if want < current {
        let floor = down_limit(h, &b.down, now, current).min(current);
        let (bound, reason, msg) = if min > floor {
            (min, "TooFewReplicas", TOO_FEW)
        } else {
            (
                floor,
                "ScaleDownLimit",
                "the desired replica count is decreasing faster than the maximum scale rate",
            )
        };
        if want < bound {
            return limited(bound, reason, msg);
        }
    } else if want > max {
        return limited(max, "TooManyReplicas", TOO_MANY);
    } else if want < min {
        return limited(min, "TooFewReplicas", TOO_FEW);
    }
    Decision {
        replicas: want,
        limited: false,
        reason: "DesiredWithinRange",
        message: "the desired count is within the acceptable range".into(),
    }
}

#[cfg(test)]
#[path = "behavior_tests.rs"]
mod tests;
