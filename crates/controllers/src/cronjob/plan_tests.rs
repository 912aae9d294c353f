//! The CronJob controller's decisions, one table row per case Kubernetes' cronjob
//! controller tests cover: missed schedules, the starting deadline, suspend, the three
//! concurrency policies, the history limits, and an unparseable schedule.

use std::sync::Arc;

use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::jiff::Timestamp;
use serde_json::{json, Value};

use super::*;

fn at(hh_mm: &str) -> i64 {
    format!("2026-11-26T{hh_mm}:00Z")
        .parse::<Timestamp>()
        .unwrap()
        .as_second()
}

fn cron(spec: Value, last: &str) -> CronJob {
    let mut s = json!({"schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": {}}}});
    if let (Some(a), Value::Object(b)) = (s.as_object_mut(), spec) {
        a.extend(b);
    }
    serde_json::from_value(json!({
        "metadata": {"name": "tick", "namespace": "ns", "uid": "u",
            "creationTimestamp": "2026-11-26T09:00:00Z"},
        "spec": s,
        "status": {"lastScheduleTime": format!("2026-11-26T{last}:00Z")}
    }))
    .unwrap()
}

/// A Job of the CronJob: `running`, or finished as `Complete` or `Failed`.
fn job(name: &str, state: &str) -> Arc<Job> {
    let conditions = match state {
        "running" => json!([]),
        done => json!([{"type": done, "status": "True"}]),
    };
    Arc::new(
        serde_json::from_value(json!({"metadata": {"name": name, "namespace": "ns"},
            "status": {"conditions": conditions}}))
        .unwrap(),
    )
}

struct Row {
    name: &'static str,
    cj: CronJob,
    jobs: Vec<Arc<Job>>,
    now: &'static str,
    /// The scheduled time of the Job created.
    create: Option<&'static str>,
    replace: Vec<&'static str>,
    expired: Vec<&'static str>,
    /// lastScheduleTime written.
    scheduled: Option<&'static str>,
}

fn row(name: &'static str, cj: CronJob, jobs: Vec<Arc<Job>>, now: &'static str) -> Row {
    Row {
        name,
        cj,
        jobs,
        now,
        create: None,
        replace: vec![],
        expired: vec![],
        scheduled: None,
    }
}

fn rows() -> Vec<Row> {
    let running = || vec![job("tick-1", "running")];
    let policy = |p: &str| cron(json!({"concurrencyPolicy": p}), "10:00");
    vec![
        Row {
            create: Some("10:05"),
            scheduled: Some("10:05"),
            ..row(
                "a start missed since the last creates its Job",
                cron(json!({}), "10:00"),
                vec![],
                "10:07",
            )
        },
        Row {
            create: Some("10:25"),
            scheduled: Some("10:25"),
            ..row(
                "of several missed starts only the latest runs",
                cron(json!({}), "10:00"),
                vec![],
                "10:27",
            )
        },
        row(
            "nothing due: nothing to do",
            cron(json!({}), "10:05"),
            vec![],
            "10:07",
        ),
        row(
            "a suspended CronJob starts nothing",
            cron(json!({"suspend": true}), "10:00"),
            vec![],
            "10:07",
        ),
        Row {
            scheduled: Some("10:05"),
            ..row(
                "a start later than startingDeadlineSeconds is skipped",
                cron(json!({"startingDeadlineSeconds": 60}), "10:00"),
                vec![],
                "10:07",
            )
        },
        Row {
            scheduled: Some("10:05"),
            ..row(
                "Forbid skips while a Job runs",
                policy("Forbid"),
                running(),
                "10:07",
            )
        },
        Row {
            create: Some("10:05"),
            replace: vec!["tick-1"],
            scheduled: Some("10:05"),
            ..row(
                "Replace stops the running Job",
                policy("Replace"),
                running(),
                "10:07",
            )
        },
        Row {
            create: Some("10:05"),
            scheduled: Some("10:05"),
            ..row("Allow runs alongside", policy("Allow"), running(), "10:07")
        },
        Row {
            expired: vec!["c1", "c2", "f1"],
            ..row(
                "finished Jobs beyond the history limits go, oldest first",
                cron(json!({}), "10:05"),
                vec![
                    job("c1", "Complete"),
                    job("f1", "Failed"),
                    job("c2", "Complete"),
                    job("c3", "Complete"),
                    job("f2", "Failed"),
                    job("c4", "Complete"),
                    job("c5", "Complete"),
                ],
                "10:07",
            )
        },
    ]
}

#[test]
fn the_cronjob_controller_decides_as_kubernetes_does() {
    for r in rows() {
        let p = plan(&r.cj, &r.jobs, at(r.now)).unwrap();
        let created = p.create.as_ref().map(|j| {
            let stamp = j.metadata.annotations.as_ref().unwrap()[SCHEDULED_AT].clone();
            stamp.parse::<Timestamp>().unwrap().as_second()
        });
        assert_eq!(created, r.create.map(at), "{}: create", r.name);
        assert_eq!(p.replace, r.replace, "{}: replace", r.name);
        assert_eq!(p.expired, r.expired, "{}: expired", r.name);
        let scheduled = p
            .status
            .as_ref()
            .and_then(|s| s.last_schedule_time.as_ref())
            .map(|t| t.0.as_second());
        assert_eq!(
            scheduled,
            r.scheduled.map(at),
            "{}: lastScheduleTime",
            r.name
        );
        assert!(
            p.next_in >= 1 && p.next_in <= 300,
            "{}: next in {}",
            r.name,
            p.next_in
        );
    }
}

#[test]
fn the_job_is_named_by_its_minute_and_owned_by_the_cronjob() {
    let p = plan(&cron(json!({}), "10:00"), &[], at("10:07")).unwrap();
    let j = p.create.unwrap();
    assert_eq!(j.metadata.name, Some(format!("tick-{}", at("10:05") / 60)));
    let owner = &j.metadata.owner_references.unwrap()[0];
    assert_eq!((owner.kind.as_str(), owner.uid.as_str()), ("CronJob", "u"));
    assert_eq!(p.next_in, 180, "10:10 is three minutes on");
}

#[test]
fn an_unparseable_schedule_is_an_error_naming_the_field() {
    let e = plan(
        &cron(json!({"schedule": "61 * * * *"}), "10:00"),
        &[],
        at("10:07"),
    )
    .unwrap_err();
    assert!(e.contains("minute"), "{e}");
}
