//! The replica calculator, one table row per case of Kubernetes'
//! `replica_calculator_test.go`: scale up and down, tolerance, unready pods when scaling up
//! and down, ignored (failed and deleting) pods, missing metrics in either direction,
//! average values, and the errors.

use super::*;

fn pod(name: &str, request: i64, usage: Option<i64>) -> PodSample {
    PodSample {
        name: name.into(),
        request: Some(request),
        usage,
        ..Default::default()
    }
}

const TOL: f64 = 0.1;

#[test]
fn utilization_scales_by_the_ratio_to_the_target() {
    let pods = [pod("a", 100, Some(150)), pod("b", 100, Some(150))];
    // 150% of request against a 50% target: three times the ready pods.
    let p = replicas_for("cpu", 2, &pods, Target::Utilization(50), TOL).unwrap();
    assert_eq!(p.replicas, 6);
    assert_eq!(p.utilization, Some(150));
    let pods = [
        pod("a", 100, Some(10)),
        pod("b", 100, Some(10)),
        pod("c", 100, Some(10)),
    ];
    let p = replicas_for("cpu", 3, &pods, Target::Utilization(50), TOL).unwrap();
    assert_eq!(p.replicas, 1);
}

#[test]
fn within_tolerance_nothing_changes() {
    let pods = [pod("a", 100, Some(54)), pod("b", 100, Some(54))];
    let p = replicas_for("cpu", 2, &pods, Target::Utilization(50), TOL).unwrap();
    assert_eq!(p.replicas, 2);
}

#[test]
fn missing_metrics_damp_the_change() {
    // Scaling up: the pod without metrics counts as 0%.
    let pods = [pod("a", 100, Some(200)), pod("b", 100, None)];
    let p = replicas_for("cpu", 2, &pods, Target::Utilization(50), TOL).unwrap();
    assert_eq!(p.replicas, 4);
    // Scaling down: it counts as 100% of its request, which flips the direction.
    let pods = [pod("a", 100, Some(20)), pod("b", 100, None)];
    let p = replicas_for("cpu", 2, &pods, Target::Utilization(50), TOL).unwrap();
    assert_eq!(p.replicas, 2);
}

#[test]
fn unready_pods_count_as_idle_when_scaling_up_and_ignored_pods_not_at_all() {
    let mut u = pod("u", 100, Some(500));
    u.unready = true;
    let mut gone = pod("g", 100, Some(1000));
    gone.ignored = true;
    let pods = [pod("a", 100, Some(100)), u, gone];
    // Ready pod at 100% of a 50% target; the unready pod counts as 0: (100+0)/200 = 50%.
    let p = replicas_for("cpu", 2, &pods, Target::Utilization(50), TOL).unwrap();
    assert_eq!(p.replicas, 2);
}

#[test]
fn average_value_and_errors() {
    let pods = [pod("a", 0, Some(300)), pod("b", 0, Some(100))];
    let p = replicas_for("memory", 2, &pods, Target::AverageValue(100), TOL).unwrap();
    assert_eq!(p.replicas, 4);
    assert_eq!(p.average, 200);
    let mut no_req = pod("x", 0, Some(1));
    no_req.request = None;
    let e = replicas_for("cpu", 1, &[no_req], Target::Utilization(50), TOL).unwrap_err();
    assert!(e.contains("missing request for cpu in pod x"), "{e}");
    assert!(replicas_for("cpu", 1, &[], Target::Utilization(50), TOL).is_err());
    let e = replicas_for("cpu", 1, &[pod("a", 1, None)], Target::Utilization(50), TOL).unwrap_err();
    assert!(e.contains("did not receive metrics"), "{e}");
}

/// A sample: `name`, requesting `request`, using `usage`; flags `u` unready, `i` ignored.
fn s(name: &str, request: Option<i64>, usage: Option<i64>, flags: &str) -> PodSample {
    PodSample {
        name: name.into(),
        request,
        usage,
        ignored: flags.contains('i'),
        unready: flags.contains('u'),
    }
}

/// Pods requesting `request` each, using `usage` (flags after a `/`: "300/u").
fn all(request: i64, usage: &[&str]) -> Vec<PodSample> {
    usage
        .iter()
        .enumerate()
        .map(|(i, u)| {
            let (u, flags) = u.split_once('/').unwrap_or((u, ""));
            let usage = (u != "-").then(|| u.parse().unwrap());
            s(&format!("p{i}"), Some(request), usage, flags)
        })
        .collect()
}

struct Row {
    name: &'static str,
    resource: &'static str,
    current: i32,
    pods: Vec<PodSample>,
    target: Target,
    /// The replicas and the utilization measured, or a part of the error.
    want: Result<(i32, Option<i32>), &'static str>,
}

fn rows() -> Vec<Row> {
    let cpu = |name, current, pods, target, want| Row {
        name,
        resource: "cpu",
        current,
        pods,
        target: Target::Utilization(target),
        want,
    };
    let memory = |name, current, pods, target, want| Row {
        name,
        resource: "memory",
        current,
        pods,
        target: Target::AverageValue(target),
        want,
    };
    vec![
        cpu(
            "scale up",
            3,
            all(1000, &["300", "500", "700"]),
            30,
            Ok((5, Some(50))),
        ),
        cpu(
            "scale down",
            5,
            all(1000, &["100", "300", "500", "250", "250"]),
            50,
            Ok((3, Some(28))),
        ),
        cpu(
            "within tolerance",
            3,
            all(1000, &["1010", "1030", "1020"]),
            100,
            Ok((3, Some(102))),
        ),
        cpu(
            "unready pods count as idle when scaling up",
            3,
            all(1000, &["300/u", "500", "700"]),
            30,
            Ok((4, Some(60))),
        ),
        cpu(
            "unready pods: no scale-up while the ready ones are at target",
            3,
            all(1000, &["400/u", "500", "700/u"]),
            50,
            Ok((3, Some(50))),
        ),
        cpu(
            "unready pods are left out when scaling down",
            5,
            all(1000, &["100", "300", "500", "250/u", "250/u"]),
            50,
            Ok((2, Some(30))),
        ),
        cpu(
            "ignored pods do not count",
            2,
            all(1000, &["500", "700", "10000/i", "10000/i"]),
            30,
            Ok((4, Some(60))),
        ),
        cpu(
            "missing metrics count as idle when scaling up",
            2,
            all(100, &["200", "-"]),
            50,
            Ok((4, Some(200))),
        ),
        cpu(
            "missing metrics count as their request when scaling down: flipped, no change",
            2,
            all(100, &["20", "-"]),
            50,
            Ok((2, Some(20))),
        ),
        cpu(
            "missing metrics damp a scale-down",
            4,
            all(100, &["10", "10", "10", "-"]),
            50,
            Ok((3, Some(10))),
        ),
        cpu(
            "missing metrics at target: no change",
            2,
            all(100, &["50", "-"]),
            50,
            Ok((2, Some(50))),
        ),
        memory(
            "average value",
            2,
            all(0, &["300", "100"]),
            100,
            Ok((4, None)),
        ),
        memory(
            "average value: a missing pod counts at the target when scaling down",
            4,
            all(0, &["10", "10", "10", "-"]),
            100,
            Ok((2, None)),
        ),
        cpu(
            "no pods",
            1,
            vec![],
            50,
            Err("no pods returned by selector"),
        ),
        cpu(
            "only ignored pods",
            1,
            all(100, &["50/i"]),
            50,
            Err("no pods returned by selector"),
        ),
        cpu(
            "a pod without a request",
            1,
            vec![s("x", None, Some(1), "")],
            50,
            Err("missing request for cpu in pod x"),
        ),
        cpu(
            "no metrics from a ready pod",
            2,
            all(100, &["-", "500/u"]),
            50,
            Err("did not receive metrics for cpu of any ready pod"),
        ),
    ]
}

#[test]
fn the_replica_calculator_computes_as_kubernetes_does() {
    for r in rows() {
        let got = replicas_for(r.resource, r.current, &r.pods, r.target, TOL);
        match (got, r.want) {
            (Ok(p), Ok(want)) => assert_eq!((p.replicas, p.utilization), want, "{}", r.name),
            (Err(e), Err(want)) => assert!(e.contains(want), "{}: {e}", r.name),
            (got, want) => panic!("{}: got {got:?}, want {want:?}", r.name),
        }
    }
}
