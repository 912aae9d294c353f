//! The Job controller's decisions, one table row per case Kubernetes' job controller tests
//! cover: parallelism and completions, work-queue mode, back-off, the back-off limit, the
//! active deadline, extra pods, expectations, and a finished Job.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use serde_json::{json, Value};

use super::*;

const NOW: i64 = 1_700_000_000;

fn job(spec: Value, status: Value) -> Job {
    serde_json::from_value(json!({
        "metadata": {"name": "j", "namespace": "ns", "uid": "u1"},
        "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox"}]}}}
    }))
    .map(|mut j: Job| {
        let mut s = serde_json::to_value(j.spec.take()).unwrap();
        merge(&mut s, spec);
        j.spec = serde_json::from_value(s).unwrap();
        j.status = serde_json::from_value(status).unwrap();
        j
    })
    .unwrap()
}

fn merge(into: &mut Value, from: Value) {
    if let (Some(a), Value::Object(b)) = (into.as_object_mut(), from) {
        a.extend(b);
    }
}

/// A pod named `name` in `phase`; `r` ready, `n` on a node.
fn pod(name: &str, phase: &str, flags: &str) -> Arc<Pod> {
    let ready = if flags.contains('r') { "True" } else { "False" };
    let node = flags.contains('n').then_some("n1");
    Arc::new(
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "ns"},
            "spec": {"nodeName": node, "containers": []},
            "status": {"phase": phase,
                "conditions": [{"type": "Ready", "status": ready}]}
        }))
        .unwrap(),
    )
}

struct Row {
    name: &'static str,
    job: Job,
    pods: Vec<Arc<Pod>>,
    expectations_met: bool,
    backoff: u64,
    create: usize,
    delete: Vec<&'static str>,
    /// The condition written, with its reason.
    end: Option<(&'static str, Option<&'static str>)>,
    /// `status.active` written; None: no status write.
    active: Option<i32>,
    requeue: Option<u64>,
}

fn row(name: &'static str, job: Job, pods: Vec<Arc<Pod>>) -> Row {
    Row {
        name,
        job,
        pods,
        expectations_met: true,
        backoff: 0,
        create: 0,
        delete: vec![],
        end: None,
        active: None,
        requeue: None,
    }
}

fn started() -> Value {
    json!({"startTime": "2023-11-14T22:13:00Z"})
}

fn rows() -> Vec<Row> {
    let c = |completions: Option<i32>, parallelism: i32| json!({"completions": completions, "parallelism": parallelism});
    vec![
        Row {
            create: 2,
            active: Some(0),
            ..row(
                "a new Job starts `parallelism` pods",
                job(c(Some(5), 2), json!(null)),
                vec![],
            )
        },
        Row {
            create: 1,
            active: Some(0),
            ..row(
                "parallelism is capped by the completions left",
                job(c(Some(3), 5), started()),
                vec![pod("a", "Succeeded", ""), pod("b", "Succeeded", "")],
            )
        },
        Row {
            end: Some(("Complete", None)),
            active: Some(0),
            ..row(
                "enough successes complete the Job",
                job(c(Some(2), 2), started()),
                vec![pod("a", "Succeeded", ""), pod("b", "Succeeded", "")],
            )
        },
        Row {
            end: Some(("Complete", None)),
            active: Some(0),
            ..row(
                "work queue: a success with nothing running completes",
                job(c(None, 2), started()),
                vec![pod("a", "Succeeded", "")],
            )
        },
        Row {
            active: Some(1),
            ..row(
                "work queue: after a success, running pods finish and none start",
                job(c(None, 3), started()),
                vec![pod("a", "Succeeded", ""), pod("b", "Running", "rn")],
            )
        },
        Row {
            expectations_met: false,
            active: Some(0),
            ..row(
                "unseen creates hold further creates",
                job(c(Some(3), 3), json!(null)),
                vec![],
            )
        },
        Row {
            backoff: 7,
            requeue: Some(7),
            active: Some(0),
            ..row(
                "a failure's back-off delays the replacement",
                job(c(Some(1), 1), started()),
                vec![pod("a", "Failed", "")],
            )
        },
        Row {
            create: 1,
            active: Some(0),
            ..row(
                "once the back-off is over the replacement starts",
                job(c(Some(1), 1), started()),
                vec![pod("a", "Failed", "")],
            )
        },
        Row {
            delete: vec!["c"],
            end: Some(("Failed", Some("BackoffLimitExceeded"))),
            active: Some(0),
            ..row(
                "more failures than backoffLimit fail the Job and stop its pods",
                job(json!({"backoffLimit": 1}), started()),
                vec![
                    pod("a", "Failed", ""),
                    pod("b", "Failed", ""),
                    pod("c", "Running", "rn"),
                ],
            )
        },
        Row {
            delete: vec!["a"],
            end: Some(("Failed", Some("DeadlineExceeded"))),
            active: Some(0),
            ..row(
                "a Job past activeDeadlineSeconds fails",
                job(
                    json!({"activeDeadlineSeconds": 10}),
                    json!({"startTime": "2023-11-14T22:13:00Z"}),
                ),
                vec![pod("a", "Running", "rn")],
            )
        },
        Row {
            requeue: Some(60),
            active: Some(1),
            ..row(
                "a running deadline is looked at again, at most a minute on",
                job(
                    json!({"activeDeadlineSeconds": 3600}),
                    json!({"startTime": "2023-11-14T22:13:00Z"}),
                ),
                vec![pod("a", "Running", "n")],
            )
        },
        Row {
            delete: vec!["pending"],
            active: Some(2),
            ..row(
                "extra pods go, the least advanced first",
                job(c(Some(5), 1), started()),
                vec![
                    pod("running", "Running", "rn"),
                    pod("pending", "Pending", ""),
                ],
            )
        },
        row(
            "a finished Job whose counts are written is left alone",
            job(
                c(Some(1), 1),
                json!({"startTime": "2023-11-14T22:13:00Z", "succeeded": 1,
                "conditions": [{"type": "Complete", "status": "True"}]}),
            ),
            vec![pod("a", "Succeeded", "")],
        ),
        row(
            "a running Job whose counts are written needs no write",
            job(
                c(Some(2), 1),
                json!({"startTime": "2023-11-14T22:13:00Z", "active": 1, "ready": 1}),
            ),
            vec![pod("a", "Running", "rn")],
        ),
    ]
}

#[test]
fn the_job_controller_decides_as_kubernetes_does() {
    let now = Timestamp::from_second(NOW).unwrap();
    for r in rows() {
        let w = World {
            pods: &r.pods,
            expectations_met: r.expectations_met,
            backoff_remaining: Duration::from_secs(r.backoff),
        };
        let p = plan(&r.job, &w, now);
        let name = r.name;
        assert_eq!(p.create.len(), r.create, "{name}: creates");
        assert_eq!(p.delete, r.delete, "{name}: deletes");
        let cond = p
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.first())
            .map(|c| (c.type_.as_str(), c.reason.as_deref()));
        assert_eq!(cond, r.end, "{name}: condition");
        assert_eq!(
            p.status.as_ref().and_then(|s| s.active),
            r.active,
            "{name}: status"
        );
        assert_eq!(
            p.requeue,
            r.requeue.map(Duration::from_secs),
            "{name}: requeue"
        );
    }
}

#[test]
fn created_pods_carry_the_job_labels_and_owner() {
    let j = job(json!({"completions": 1}), json!(null));
    let w = World {
        pods: &[],
        expectations_met: true,
        backoff_remaining: Duration::ZERO,
    };
    let p = plan(&j, &w, Timestamp::from_second(NOW).unwrap());
    let pod = &p.create[0];
    let labels = pod.metadata.labels.clone().unwrap_or_default();
    assert_eq!(labels.get(JOB_NAME_LABEL).map(String::as_str), Some("j"));
    assert_eq!(
        labels.get(CONTROLLER_UID_LABEL).map(String::as_str),
        Some("u1")
    );
    let owner = &pod.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
        ("Job", "u1", Some(true))
    );
    assert_eq!(p.notes[0].reason, "SuccessfulCreate");
}
