//! Scaling behavior (autoscaling/v2 `spec.behavior`): stabilization windows over recent
//! recommendations, then rate limits from the scaling policies, then min/max — in that
//! order, as Kubernetes applies them.

use std::time::{Duration, Instant};

use k8s_openapi::api::autoscaling::v2::{HPAScalingRules, HorizontalPodAutoscalerBehavior};

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Select {
    Max,
    Min,
    Disabled,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Policy {
    Pods(i32),
    Percent(i32),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Rules {
    pub stabilization: Duration,
    pub select: Select,
    /// Each policy with its period.
    pub policies: Vec<(Policy, Duration)>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Behavior {
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
    pub fn of(b: Option<&HorizontalPodAutoscalerBehavior>, down_window: Duration) -> Behavior {
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
pub struct History {
    recommendations: Vec<(Instant, i32)>,
    /// (when, replicas added) and (when, replicas removed).
    ups: Vec<(Instant, i32)>,
    downs: Vec<(Instant, i32)>,
}

impl History {
    pub fn record_scale(&mut self, now: Instant, from: i32, to: i32) {
        if to > from {
            self.ups.push((now, to - from));
        } else if to < from {
            self.downs.push((now, from - to));
        }
    }
}

/// The outcome, with the ScalingLimited condition's reason and message.
#[derive(Debug, PartialEq)]
pub struct Decision {
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

/// Turns the metrics' `desired` into the replicas to set: stabilized over the windows,
/// limited by the policies, and kept within `[min, max]`.
pub fn normalize(
    h: &mut History,
    b: &Behavior,
    now: Instant,
    current: i32,
    desired: i32,
    min: i32,
    max: i32,
) -> Decision {
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
    let longest =
        b.up.policies
            .iter()
            .chain(&b.down.policies)
            .map(|(_, p)| *p)
            .max()
            .unwrap_or(PERIOD);
    h.ups.retain(|(t, _)| now.duration_since(*t) < longest);
    h.downs.retain(|(t, _)| now.duration_since(*t) < longest);

    let mut want = current.max(up_rec).min(down_rec);
    let ok = |replicas, message: &str| Decision {
        replicas,
        limited: false,
        reason: "DesiredWithinRange",
        message: message.into(),
    };
    let limit = |replicas, reason, message: &str| Decision {
        replicas,
        limited: true,
        reason,
        message: message.into(),
    };
    if want > current {
        let cap = up_limit(h, &b.up, now, current).max(current);
        let (bound, reason, msg) = if max > cap {
            (
                cap,
                "ScaleUpLimit",
                "the desired replica count is increasing faster than the maximum scale rate",
            )
        } else {
            (
                max,
                "TooManyReplicas",
                "the desired replica count is more than the maximum replica count",
            )
        };
        if want > bound {
            return limit(bound, reason, msg);
        }
    } else if want < current {
        let floor = down_limit(h, &b.down, now, current).min(current);
        let (bound, reason, msg) = if min > floor {
            (
                min,
                "TooFewReplicas",
                "the desired replica count is less than the minimum replica count",
            )
        } else {
            (
                floor,
                "ScaleDownLimit",
                "the desired replica count is decreasing faster than the maximum scale rate",
            )
        };
        if want < bound {
            return limit(bound, reason, msg);
        }
    } else if want > max {
        want = max;
        return limit(
            want,
            "TooManyReplicas",
            "the desired replica count is more than the maximum replica count",
        );
    } else if want < min {
        want = min;
        return limit(
            want,
            "TooFewReplicas",
            "the desired replica count is less than the minimum replica count",
        );
    }
    ok(want, "the desired count is within the acceptable range")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn defaults_scale_up_by_four_pods_or_double_per_period() {
        let b = Behavior::of(None, secs(300));
        let t0 = Instant::now();
        let mut h = History::default();
        // From 1, doubling gives 2 but four pods give 5: Max picks 5.
        let d = normalize(&mut h, &b, t0, 1, 20, 1, 10);
        assert_eq!((d.replicas, d.reason), (5, "ScaleUpLimit"));
        h.record_scale(t0, 1, 5);
        // Within the same period the budget is spent: still 5 (start 1 → at most 5).
        let d = normalize(&mut h, &b, t0 + secs(5), 5, 20, 1, 10);
        assert_eq!(d.replicas, 5);
        // A period later: 5 → 9 (four pods) or 10 (doubling): Max picks 10.
        let d = normalize(&mut h, &b, t0 + secs(16), 5, 20, 1, 12);
        assert_eq!((d.replicas, d.reason), (10, "ScaleUpLimit"));
        let d = normalize(&mut h, &b, t0 + secs(40), 10, 20, 1, 10);
        assert_eq!((d.replicas, d.reason), (10, "TooManyReplicas"));
    }

    #[test]
    fn scale_down_waits_for_the_stabilization_window() {
        let b = Behavior::of(None, secs(300));
        let t0 = Instant::now();
        let mut h = History::default();
        assert_eq!(normalize(&mut h, &b, t0, 6, 6, 1, 10).replicas, 6);
        // The metrics drop, but a higher recommendation is within five minutes.
        assert_eq!(
            normalize(&mut h, &b, t0 + secs(60), 6, 2, 1, 10).replicas,
            6
        );
        assert_eq!(
            normalize(&mut h, &b, t0 + secs(200), 6, 2, 1, 10).replicas,
            6
        );
        // After the window, the highest recent recommendation is 2.
        let d = normalize(&mut h, &b, t0 + secs(301), 6, 2, 1, 10);
        assert_eq!(d.replicas, 2);
        assert!(!d.limited);
    }

    #[test]
    fn policies_from_the_spec_and_min_max() {
        let spec: HorizontalPodAutoscalerBehavior = serde_json::from_value(serde_json::json!({
            "scaleDown": {"stabilizationWindowSeconds": 0,
                "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}]},
            "scaleUp": {"selectPolicy": "Disabled"}
        }))
        .unwrap();
        let b = Behavior::of(Some(&spec), secs(300));
        let t0 = Instant::now();
        let mut h = History::default();
        assert_eq!(normalize(&mut h, &b, t0, 3, 9, 1, 10).replicas, 3);
        let d = normalize(&mut h, &b, t0, 5, 1, 2, 10);
        assert_eq!((d.replicas, d.reason), (4, "ScaleDownLimit"));
        h.record_scale(t0, 5, 4);
        assert_eq!(
            normalize(&mut h, &b, t0 + secs(30), 4, 1, 2, 10).replicas,
            4
        );
        let d = normalize(&mut h, &b, t0 + secs(61), 4, 1, 2, 10);
        assert_eq!((d.replicas, d.reason), (3, "ScaleDownLimit"));
        let d = normalize(&mut h, &b, t0 + secs(62), 4, 1, 4, 10);
        assert_eq!((d.replicas, d.reason), (4, "TooFewReplicas"));
    }
}
