//! The HPA controller's decisions, one table row per case Kubernetes' HPA controller tests
//! (`horizontal_test.go`) cover: within tolerance, scaling up and down by utilization and
//! by average value, the min/max clamps, a target outside its bounds, zero replicas, the
//! scale-up limit and scale-down policies, the stabilization window, missing and invalid
//! metrics, unready, failed and deleting pods, and container metrics. The rate limits and
//! windows are tabled in `behavior_tests.rs`, the replica calculator in
//! `replicas_tests.rs`, readiness and freshness in `metrics_tests.rs`.

use std::time::Duration;

use serde_json::json;

use super::*;
use crate::hpa::status::Cond;
use crate::hpa::testing::*;

/// When the plan is made, after the start of the history.
const AT: Duration = Duration::from_secs(600);

struct Row {
    name: &'static str,
    hpa: HorizontalPodAutoscaler,
    current: i32,
    pods: Vec<Sampled>,
    /// Recommendations made this many seconds before the plan.
    earlier: Vec<(u64, i32)>,
    /// `status.desiredReplicas`.
    desired: i32,
    /// The reason in the rescale's event; None: the target is left alone.
    rescale: Option<&'static str>,
    /// ScalingActive, when written.
    active: Option<(bool, &'static str)>,
    /// ScalingLimited, when written.
    limited: Option<(bool, &'static str)>,
    /// The reasons of the events recorded before any rescale.
    notes: Vec<&'static str>,
}

const UP: &str = "cpu resource utilization (percentage of request) above target";
const DOWN: &str = "All metrics below target";

/// A row that scales `current` by the metrics to `desired`, within range.
fn row(
    name: &'static str,
    hpa: HorizontalPodAutoscaler,
    current: i32,
    pods: Vec<Sampled>,
    desired: i32,
) -> Row {
    let rescale = match desired.cmp(&current) {
        std::cmp::Ordering::Greater => Some(UP),
        std::cmp::Ordering::Less => Some(DOWN),
        std::cmp::Ordering::Equal => None,
    };
    Row {
        name,
        hpa,
        current,
        pods,
        earlier: vec![],
        desired,
        rescale,
        active: Some((true, "ValidMetricFound")),
        limited: Some((false, "DesiredWithinRange")),
        notes: vec![],
    }
}

impl Row {
    fn limited(self, reason: &'static str) -> Row {
        let limited = Some((true, reason));
        Row { limited, ..self }
    }

    fn rescale(self, reason: &'static str) -> Row {
        let rescale = Some(reason);
        Row { rescale, ..self }
    }

    fn earlier(self, ago: u64, recommended: i32) -> Row {
        let earlier = vec![(ago, recommended)];
        Row { earlier, ..self }
    }

    fn failed_metric(self) -> Row {
        let notes = vec!["FailedGetResourceMetric"];
        Row { notes, ..self }
    }

    /// No metric could be computed: nothing changes.
    fn no_metrics(self) -> Row {
        let active = Some((false, "FailedGetResourceMetric"));
        let rescale = None;
        Row {
            active,
            rescale,
            limited: None,
            ..self.failed_metric()
        }
    }

    /// Decided without the metrics: ScalingActive and ScalingLimited are not written.
    fn unmeasured(self, active: Option<(bool, &'static str)>) -> Row {
        Row {
            active,
            limited: None,
            ..self
        }
    }
}

/// Three pods at 50% of their cpu.
fn scale_up() -> Vec<Sampled> {
    cpu_pods(1000, &[300, 500, 700])
}

/// Five pods at 28% of their cpu.
fn scale_down() -> Vec<Sampled> {
    cpu_pods(1000, &[100, 300, 500, 250, 250])
}

/// Scaling by the metrics.
fn scaling_rows() -> Vec<Row> {
    let memory = |m: &str| json!([["app", {"memory": m}]]);
    let cpu_and_memory = |c: &str| json!([["app", {"cpu": c, "memory": "100Mi"}]]);
    vec![
        row(
            "within tolerance nothing changes",
            hpa(1, 5, cpu(100)),
            3,
            cpu_pods(1000, &[1010, 1030, 1020]),
            3,
        ),
        row(
            "scale up by utilization",
            hpa(2, 6, cpu(30)),
            3,
            scale_up(),
            5,
        ),
        row(
            "scale down by utilization",
            hpa(2, 6, cpu(50)),
            5,
            scale_down(),
            3,
        ),
        row(
            "no metrics in the spec: cpu at 80%",
            hpa(1, 10, json!(null)),
            2,
            cpu_pods(1000, &[1600, 1600]),
            4,
        ),
        row(
            "scale up by average value",
            hpa(1, 10, json!([average("memory", "100Mi")])),
            2,
            pods(memory("1Gi"), &[memory("300Mi"), memory("100Mi")]),
            4,
        )
        .rescale("memory resource above target"),
        row(
            "the largest of the metrics wins",
            hpa(
                2,
                6,
                json!([utilization("cpu", 30), average("memory", "50Mi")]),
            ),
            3,
            pods(
                cpu_and_memory("1"),
                &[
                    cpu_and_memory("300m"),
                    cpu_and_memory("500m"),
                    cpu_and_memory("700m"),
                ],
            ),
            6,
        )
        .rescale("memory resource above target"),
    ]
}

/// The bounds, the rate limits and the stabilization window.
fn bounds_rows() -> Vec<Row> {
    let by_pods = json!({"scaleDown": {"stabilizationWindowSeconds": 0,
        "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}]}});
    let by_700_percent = json!({"scaleUp": {"policies": [{"type": "Percent", "value": 700,
        "periodSeconds": 60}]}});
    let out_of_bounds = |name, current, desired, reason| {
        let r = row(name, hpa(3, 5, cpu(50)), current, vec![], desired);
        r.rescale(reason).unmeasured(None)
    };
    vec![
        row(
            "clamped to maxReplicas",
            hpa(2, 5, cpu(90)),
            3,
            cpu_pods(900, &[8000, 9500, 1000]),
            5,
        )
        .limited("TooManyReplicas"),
        row(
            "clamped to minReplicas",
            hpa(2, 5, cpu(90)),
            3,
            cpu_pods(900, &[10, 95, 10]),
            2,
        )
        .limited("TooFewReplicas"),
        row(
            "no usage at all is held at minReplicas",
            hpa(2, 5, cpu(90)),
            3,
            cpu_pods(1000, &[0, 0, 0]),
            2,
        )
        .limited("TooFewReplicas"),
        out_of_bounds(
            "more replicas than maxReplicas: scaled to max",
            10,
            5,
            "Current number of replicas above Spec.MaxReplicas",
        ),
        out_of_bounds(
            "fewer replicas than minReplicas: scaled to min",
            2,
            3,
            "Current number of replicas below Spec.MinReplicas",
        ),
        row(
            "zero replicas: autoscaling is disabled",
            hpa(3, 5, cpu(50)),
            0,
            vec![],
            0,
        )
        .unmeasured(Some((false, "ScalingDisabled"))),
        row(
            "zero replicas with minReplicas 0 is not disabled, but no pod is measured",
            hpa(0, 5, cpu(50)),
            0,
            vec![],
            0,
        )
        .no_metrics(),
        row(
            "scale-up limit: at most four pods or twice as many per period",
            hpa(1, 100, cpu(10)),
            3,
            cpu_pods(100, &[100, 200, 300]),
            7,
        )
        .limited("ScaleUpLimit"),
        row(
            "a scale-up policy past maxReplicas is held at max",
            behaving(hpa(1, 20, cpu(10)), by_700_percent),
            3,
            cpu_pods(100, &[100, 200, 300]),
            20,
        )
        .limited("TooManyReplicas"),
        row(
            "a scale-down policy limits the rate",
            behaving(hpa(1, 10, cpu(50)), by_pods),
            5,
            scale_down(),
            4,
        )
        .limited("ScaleDownLimit"),
        row(
            "a higher recommendation in the stabilization window holds a scale-down",
            hpa(1, 10, cpu(50)),
            5,
            scale_down(),
            5,
        )
        .earlier(60, 5),
        row(
            "past the stabilization window the scale-down goes ahead",
            hpa(1, 10, cpu(50)),
            5,
            scale_down(),
            3,
        )
        .earlier(301, 5),
    ]
}

/// Missing and invalid metrics, and which pods count.
fn metric_rows() -> Vec<Row> {
    let in_container = json!([{"type": "ContainerResource", "containerResource": {"name": "cpu",
        "container": "app", "target": {"type": "Utilization", "averageUtilization": 50}}}]);
    let sidecar = json!([["app", {"cpu": "100m"}], ["sidecar", {"cpu": "900m"}]]);
    let sidecar_use = json!([["app", {"cpu": "100m"}], ["sidecar", {"cpu": "0"}]]);
    let failed = |name, hpa, pods| row(name, hpa, 2, pods, 2).no_metrics();
    vec![
        failed(
            "no metrics from any pod",
            hpa(1, 5, cpu(50)),
            vec![cpu_pod("a", None, ""), cpu_pod("b", None, "")],
        ),
        failed("no pods", hpa(1, 5, cpu(50)), vec![]),
        failed(
            "a pod without a cpu request",
            hpa(1, 5, cpu(50)),
            pods(json!([["app", {}]]), &[json!([["app", {"cpu": "1"}]])]),
        ),
        failed(
            "a metric type other than Resource and ContainerResource",
            hpa(1, 5, json!([external()])),
            scale_up(),
        ),
        row(
            "one metric invalid, another scales up",
            hpa(2, 6, json!([utilization("cpu", 30), external()])),
            3,
            scale_up(),
            5,
        )
        .failed_metric(),
        row(
            "one metric invalid, another below target: no scale-down",
            hpa(2, 6, json!([utilization("cpu", 50), external()])),
            5,
            scale_down(),
            5,
        )
        .failed_metric(),
        row(
            "unready pods count as idle when scaling up",
            hpa(2, 6, cpu(30)),
            3,
            vec![
                cpu_pod("a", Some(300), "u"),
                cpu_pod("b", Some(500), ""),
                cpu_pod("c", Some(700), ""),
            ],
            4,
        ),
        row(
            "failed and deleting pods are left out",
            hpa(2, 6, cpu(30)),
            2,
            vec![
                cpu_pod("a", Some(500), ""),
                cpu_pod("b", Some(700), ""),
                cpu_pod("c", Some(10_000), "f"),
                cpu_pod("d", Some(10_000), "d"),
            ],
            4,
        ),
        row(
            "stale metrics count as missing, which damps a scale-down",
            hpa(1, 6, cpu(50)),
            3,
            vec![
                cpu_pod("a", Some(200), ""),
                cpu_pod("b", Some(200), ""),
                cpu_pod("c", Some(900), "s"),
            ],
            3,
        ),
        row(
            "a container metric counts only that container",
            hpa(1, 6, in_container),
            2,
            pods(sidecar, &[sidecar_use.clone(), sidecar_use]),
            4,
        ),
    ]
}

fn cond(c: &Option<Cond>) -> Option<(bool, &'static str)> {
    c.as_ref().map(|c| (c.0, c.1))
}

#[test]
fn the_hpa_controller_decides_as_kubernetes_does() {
    let cfg = HpaConfig::default();
    let rows = [scaling_rows(), bounds_rows(), metric_rows()];
    for r in rows.into_iter().flatten() {
        let t0 = Instant::now();
        let mut h = History::default();
        let b = Behavior::of(r.hpa.spec.behavior.as_ref(), cfg.downscale_stabilization);
        for (ago, rec) in &r.earlier {
            let at = t0 + AT - Duration::from_secs(*ago);
            behavior::normalize(&mut h, &b, at, *rec, *rec, 0, i32::MAX);
        }
        let w = World {
            current: r.current,
            pods: &r.pods,
            now_s: NOW,
        };
        let p = plan(&r.hpa, &w, &mut h, &cfg, t0 + AT);
        let name = r.name;
        let o = &p.outcome;
        assert_eq!(
            (o.current, o.desired),
            (r.current, r.desired),
            "{name}: replicas"
        );
        assert_eq!(p.rescale.as_deref(), r.rescale, "{name}: rescale");
        let able = r.rescale.is_none().then_some((true, "ReadyForNewScale"));
        assert_eq!(
            (!o.able.1.is_empty()).then_some((o.able.0, o.able.1)),
            able,
            "{name}: AbleToScale"
        );
        assert_eq!(cond(&o.active), r.active, "{name}: ScalingActive");
        assert_eq!(cond(&o.limited), r.limited, "{name}: ScalingLimited");
        let notes: Vec<_> = p.notes.iter().map(|n| n.reason).collect();
        assert_eq!(notes, r.notes, "{name}: events");
        assert!(!o.rescaled, "{name}: a plan has not rescaled yet");
    }
}

#[test]
fn the_status_carries_each_metric_as_measured() {
    let h = hpa(2, 6, cpu(30));
    let pods = cpu_pods(1000, &[300, 500, 700]);
    let w = World {
        current: 3,
        pods: &pods,
        now_s: NOW,
    };
    let p = plan(
        &h,
        &w,
        &mut History::default(),
        &HpaConfig::default(),
        Instant::now(),
    );
    let want = Measured {
        resource: "cpu".into(),
        container: None,
        utilization: Some(50),
        average: 500,
    };
    assert_eq!(p.outcome.metrics, [want]);
}

#[test]
fn an_unreadable_scale_is_reported_and_nothing_changes() {
    let cases = [
        (None, "Deployment \"web\" not found"),
        (
            Some("scaling Foo is not supported".to_string()),
            "scaling Foo is not supported",
        ),
    ];
    for (error, want) in cases {
        let p = without_scale("Deployment", "web", error);
        let msg =
            format!("the HPA controller was unable to get the target's current scale: {want}");
        assert_eq!(p.rescale, None);
        assert_eq!(p.outcome.able, (false, "FailedGetScale", msg.clone()));
        assert_eq!(p.outcome.active, None);
        assert_eq!(p.notes, [warning("FailedGetScale", msg)]);
    }
}
