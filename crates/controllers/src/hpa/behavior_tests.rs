//! Scaling behavior, one table row per case of Kubernetes' `TestNormalizeDesiredReplicasWithBehavior`,
//! `TestCalculateScaleUpLimitWithScalingRules`, `TestCalculateScaleDownLimitWithBehaviors`
//! and the stabilization tests: the default rates, Pods and Percent policies, selectPolicy
//! Max, Min and Disabled, scale events within and past a period, both stabilization
//! windows, and the min/max bounds.

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

/// Something the HPA did before the row's decision, this many seconds before it.
enum Earlier {
    Recommended(u64, i32),
    Scaled(u64, i32, i32),
}

struct Row {
    name: &'static str,
    /// `spec.behavior`; null: Kubernetes' defaults.
    behavior: serde_json::Value,
    earlier: Vec<Earlier>,
    current: i32,
    desired: i32,
    min: i32,
    max: i32,
    /// The replicas and the ScalingLimited reason.
    want: (i32, &'static str),
}

fn row(name: &'static str, current: i32, desired: i32, want: (i32, &'static str)) -> Row {
    Row {
        name,
        behavior: serde_json::Value::Null,
        earlier: vec![],
        current,
        desired,
        min: 1,
        max: 10,
        want,
    }
}

fn up(select: &str, policies: &[(&str, i32)]) -> serde_json::Value {
    let policies: Vec<_> = policies
        .iter()
        .map(|(t, v)| serde_json::json!({"type": t, "value": v, "periodSeconds": 60}))
        .collect();
    serde_json::json!({"scaleUp": {"selectPolicy": select, "policies": policies}})
}

fn down(select: &str, policies: &[(&str, i32)]) -> serde_json::Value {
    let mut v = up(select, policies);
    let mut rules = v["scaleUp"].take();
    rules["stabilizationWindowSeconds"] = 0.into();
    serde_json::json!({"scaleDown": rules})
}

const WITHIN: &str = "DesiredWithinRange";

fn rows() -> Vec<Row> {
    use Earlier::*;
    let pods_and_percent = [("Pods", 2), ("Percent", 100)];
    let pod_or_half = [("Pods", 1), ("Percent", 50)];
    vec![
        row("within range: as desired", 3, 4, (4, WITHIN)),
        row(
            "default: four pods beat doubling from 1",
            1,
            20,
            (5, "ScaleUpLimit"),
        ),
        Row {
            max: 100,
            ..row(
                "default: doubling beats four pods from 6",
                6,
                40,
                (12, "ScaleUpLimit"),
            )
        },
        Row {
            behavior: up("Max", &[("Pods", 2)]),
            ..row("a Pods policy", 3, 10, (5, "ScaleUpLimit"))
        },
        Row {
            behavior: up("Max", &[("Percent", 50)]),
            ..row("a Percent policy rounds up", 3, 10, (5, "ScaleUpLimit"))
        },
        Row {
            behavior: up("Max", &pods_and_percent),
            ..row(
                "selectPolicy Max: the largest change",
                4,
                20,
                (8, "ScaleUpLimit"),
            )
        },
        Row {
            behavior: up("Min", &pods_and_percent),
            ..row(
                "selectPolicy Min: the smallest change",
                4,
                20,
                (6, "ScaleUpLimit"),
            )
        },
        Row {
            behavior: up("Disabled", &pods_and_percent),
            ..row(
                "selectPolicy Disabled: no scale-up",
                4,
                20,
                (4, "ScaleUpLimit"),
            )
        },
        Row {
            earlier: vec![Scaled(5, 1, 5)],
            ..row(
                "the period's scale-up budget is spent",
                5,
                20,
                (5, "ScaleUpLimit"),
            )
        },
        Row {
            earlier: vec![Scaled(16, 1, 5)],
            max: 12,
            ..row(
                "scale-ups past the period are forgotten",
                5,
                20,
                (10, "ScaleUpLimit"),
            )
        },
        row("past maxReplicas", 8, 20, (10, "TooManyReplicas")),
        row(
            "as many as desired, above maxReplicas",
            12,
            12,
            (10, "TooManyReplicas"),
        ),
        Row {
            behavior: down("Max", &[("Pods", 1)]),
            ..row("a scale-down Pods policy", 5, 1, (4, "ScaleDownLimit"))
        },
        Row {
            behavior: down("Max", &[("Percent", 50)]),
            ..row(
                "a scale-down Percent policy rounds down",
                5,
                1,
                (2, "ScaleDownLimit"),
            )
        },
        Row {
            behavior: down("Max", &pod_or_half),
            ..row(
                "scale-down selectPolicy Max: the largest change",
                10,
                1,
                (5, "ScaleDownLimit"),
            )
        },
        Row {
            behavior: down("Min", &pod_or_half),
            ..row(
                "scale-down selectPolicy Min: the smallest change",
                10,
                1,
                (9, "ScaleDownLimit"),
            )
        },
        Row {
            behavior: down("Disabled", &pod_or_half),
            ..row(
                "scale-down selectPolicy Disabled: no scale-down",
                10,
                1,
                (10, "ScaleDownLimit"),
            )
        },
        Row {
            behavior: down("Max", &[("Pods", 1)]),
            earlier: vec![Scaled(30, 5, 4)],
            min: 2,
            ..row(
                "the period's scale-down budget is spent",
                4,
                1,
                (4, "ScaleDownLimit"),
            )
        },
        Row {
            behavior: down("Max", &[("Percent", 100)]),
            min: 3,
            ..row("below minReplicas", 5, 1, (3, "TooFewReplicas"))
        },
        Row {
            earlier: vec![Recommended(60, 6)],
            ..row(
                "scale-down waits for the highest recommendation in its window",
                6,
                2,
                (6, WITHIN),
            )
        },
        Row {
            earlier: vec![Recommended(301, 6)],
            ..row(
                "past the window the scale-down goes ahead",
                6,
                2,
                (2, WITHIN),
            )
        },
        Row {
            behavior: serde_json::json!({"scaleUp": {"stabilizationWindowSeconds": 60}}),
            earlier: vec![Recommended(30, 3)],
            ..row(
                "scale-up waits for the lowest recommendation in its window",
                3,
                8,
                (3, WITHIN),
            )
        },
    ]
}

#[test]
fn behavior_limits_the_rate_and_the_range_as_kubernetes_does() {
    let at = secs(600);
    for r in rows() {
        let spec: Option<HorizontalPodAutoscalerBehavior> =
            serde_json::from_value(r.behavior).unwrap();
        let b = Behavior::of(spec.as_ref(), secs(300));
        let t0 = Instant::now();
        let mut h = History::default();
        for e in r.earlier {
            match e {
                Earlier::Recommended(ago, n) => {
                    normalize(&mut h, &b, t0 + at - secs(ago), n, n, 0, i32::MAX);
                }
                Earlier::Scaled(ago, from, to) => h.record_scale(t0 + at - secs(ago), from, to),
            }
        }
        let d = normalize(&mut h, &b, t0 + at, r.current, r.desired, r.min, r.max);
        assert_eq!((d.replicas, d.reason), r.want, "{}", r.name);
        assert_eq!(d.limited, r.want.1 != WITHIN, "{}: limited", r.name);
    }
}
