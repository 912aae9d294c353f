//! The rows of the controllers: apps/v1 and batch/v1.

use serde_json::{json, Value};

use super::*;

fn template(containers: Value) -> Value {
    json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": containers}})
}

fn web_containers() -> Value {
    json!([
        {"name": "web", "image": "nginx:1.27"},
        {"name": "log", "image": "fluent-bit:3.1"},
    ])
}

#[test]
fn a_deployment_shows_ready_of_desired_up_to_date_and_available() {
    let d = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "creationTimestamp": ago(5 * 3600 + 7 * 60)},
        "spec": {
            "replicas": 3,
            "selector": {
                "matchLabels": {"app": "web"},
                "matchExpressions": [{"key": "env", "operator": "In", "values": ["staging", "prod"]}],
            },
            "template": template(web_containers()),
        },
        "status": {"replicas": 3, "updatedReplicas": 3, "readyReplicas": 2, "availableReplicas": 2},
    });
    let r = row("apps", "Deployment", &d);
    assert_eq!(cell(&r, "Ready"), "2/3");
    assert_eq!(cell(&r, "Up-to-date"), 3);
    assert_eq!(cell(&r, "Available"), 2);
    assert_eq!(cell(&r, "Age"), "5h7m");
    assert_eq!(cell(&r, "Containers"), "web,log");
    assert_eq!(cell(&r, "Images"), "nginx:1.27,fluent-bit:3.1");
    assert_eq!(cell(&r, "Selector"), "app=web,env in (prod,staging)");
    let wide: Vec<String> = columns("apps", "Deployment")
        .into_iter()
        .filter(|c| c.priority == 1)
        .map(|c| c.name)
        .collect();
    assert_eq!(wide, ["Containers", "Images", "Selector"]);
}

#[test]
fn a_new_deployment_defaults_to_one_replica_and_flags_a_bad_selector() {
    let d = json!({
        "metadata": {"name": "new", "creationTimestamp": ago(3)},
        "spec": {"selector": {"matchExpressions": [{"key": "x", "operator": "In"}]},
            "template": template(json!([]))},
    });
    let r = row("apps", "Deployment", &d);
    assert_eq!(cell(&r, "Ready"), "0/1");
    assert_eq!(cell(&r, "Up-to-date"), 0);
    assert_eq!(cell(&r, "Selector"), "<invalid>");
    assert_eq!(cell(&r, "Containers"), "");
}

#[test]
fn replica_sets_daemon_sets_and_stateful_sets() {
    let rs = json!({"metadata": {"name": "web-5d8", "creationTimestamp": ago(90)},
        "spec": {"replicas": 2, "selector": {"matchExpressions": [
            {"key": "tier", "operator": "DoesNotExist"}, {"key": "app", "operator": "Exists"}]},
            "template": template(web_containers())},
        "status": {"replicas": 2, "readyReplicas": 1}});
    let r = row("apps", "ReplicaSet", &rs);
    assert_eq!(
        [cell(&r, "Desired"), cell(&r, "Current"), cell(&r, "Ready")],
        [2, 2, 1]
    );
    assert_eq!(cell(&r, "Selector"), "app,!tier");

    let ds = json!({"metadata": {"name": "fluentd", "creationTimestamp": ago(90)},
        "spec": {"selector": {}, "template": {"spec": {
            "nodeSelector": {"kubernetes.io/os": "linux"}, "containers": web_containers()}}},
        "status": {"desiredNumberScheduled": 3, "currentNumberScheduled": 3, "numberReady": 2,
            "updatedNumberScheduled": 1, "numberAvailable": 2}});
    let r = row("apps", "DaemonSet", &ds);
    let counts: Vec<&Value> = ["Desired", "Current", "Ready", "Up-to-date", "Available"]
        .iter()
        .map(|n| cell(&r, n))
        .collect();
    assert_eq!(
        counts,
        [&json!(3), &json!(3), &json!(2), &json!(1), &json!(2)]
    );
    assert_eq!(cell(&r, "Node Selector"), "kubernetes.io/os=linux");
    assert_eq!(cell(&r, "Selector"), "<none>");

    let sts = json!({"metadata": {"name": "db", "creationTimestamp": ago(90)},
        "spec": {"replicas": 3, "template": template(web_containers())},
        "status": {"readyReplicas": 3}});
    let r = row("apps", "StatefulSet", &sts);
    assert_eq!(cell(&r, "Ready"), "3/3");
    assert_eq!(cell(&r, "Age"), "90s");
}

#[test]
fn a_controller_revision_names_its_controller_with_its_group() {
    let cr = json!({"metadata": {"name": "fluentd-6c7b", "creationTimestamp": ago(10),
        "ownerReferences": [
            {"apiVersion": "v1", "kind": "Pod", "name": "other"},
            {"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "fluentd", "controller": true},
        ]}, "revision": 4});
    let r = row("apps", "ControllerRevision", &cr);
    assert_eq!(cell(&r, "Controller"), "daemonset.apps/fluentd");
    assert_eq!(cell(&r, "Revision"), 4);
    let orphan = json!({"metadata": {"name": "x"}, "revision": 1});
    let r = row("apps", "ControllerRevision", &orphan);
    assert_eq!(cell(&r, "Controller"), "<none>");
    assert_eq!(cell(&r, "Age"), "<unknown>");
}

fn job(spec: Value, status: Value) -> Value {
    let mut spec = spec;
    spec["template"] = template(json!([{"name": "pi", "image": "perl:5.34"}]));
    spec["selector"] = json!({"matchLabels": {"batch.kubernetes.io/controller-uid": "8f2"}});
    json!({"metadata": {"name": "pi", "creationTimestamp": ago(600)}, "spec": spec, "status": status})
}

#[test]
fn a_running_job_counts_completions_and_its_duration_so_far() {
    let r = row(
        "batch",
        "Job",
        &job(
            json!({"completions": 3, "parallelism": 1}),
            json!({"succeeded": 1, "active": 1, "startTime": ago(90)}),
        ),
    );
    assert_eq!(cell(&r, "Status"), "Running");
    assert_eq!(cell(&r, "Completions"), "1/3");
    assert_eq!(cell(&r, "Duration"), "90s");
    assert_eq!(cell(&r, "Age"), "10m");
    assert_eq!(cell(&r, "Images"), "perl:5.34");
    assert_eq!(
        cell(&r, "Selector"),
        "batch.kubernetes.io/controller-uid=8f2"
    );
}

#[test]
fn a_finished_job_shows_how_long_it_took() {
    let r = row(
        "batch",
        "Job",
        &job(
            json!({"completions": 1}),
            json!({"succeeded": 1, "startTime": ago(500), "completionTime": ago(300),
                "conditions": [{"type": "Complete", "status": "True"}]}),
        ),
    );
    assert_eq!(cell(&r, "Status"), "Complete");
    assert_eq!(cell(&r, "Completions"), "1/1");
    assert_eq!(cell(&r, "Duration"), "3m20s");
}

#[test]
fn job_status_and_completions_follow_conditions_and_parallelism() {
    let status = |conditions: Value, deleting: bool| {
        let mut j = job(json!({"parallelism": 2}), json!({"conditions": conditions}));
        if deleting {
            j["metadata"]["deletionTimestamp"] = ago(1).into();
        }
        let r = row("batch", "Job", &j);
        (cell(&r, "Status").clone(), cell(&r, "Completions").clone())
    };
    let (failed, completions) = status(json!([{"type": "Failed", "status": "True"}]), true);
    assert_eq!((failed, completions), (json!("Failed"), json!("0/1 of 2")));
    let suspended = json!([{"type": "Suspended", "status": "True"}]);
    assert_eq!(status(suspended.clone(), false).0, "Suspended");
    assert_eq!(status(suspended, true).0, "Terminating");
    assert_eq!(
        status(json!([{"type": "FailureTarget", "status": "True"}]), false).0,
        "FailureTarget"
    );
    assert_eq!(
        status(json!([{"type": "Complete", "status": "False"}]), false).0,
        "Running"
    );
    let r = row("batch", "Job", &job(json!({}), json!({})));
    assert_eq!(cell(&r, "Completions"), "0/1");
    assert_eq!(cell(&r, "Duration"), "");
}

#[test]
fn a_cron_job_shows_its_schedule_and_last_run() {
    let cj = json!({
        "metadata": {"name": "backup", "creationTimestamp": ago(3 * 86_400)},
        "spec": {"schedule": "*/5 * * * *", "suspend": false,
            "jobTemplate": {"spec": {"template": template(json!([{"name": "b", "image": "restic"}]))}}},
        "status": {"active": [{"name": "backup-1"}, {"name": "backup-2"}], "lastScheduleTime": ago(300)},
    });
    let r = row("batch", "CronJob", &cj);
    assert_eq!(cell(&r, "Schedule"), "*/5 * * * *");
    assert_eq!(cell(&r, "Timezone"), "<none>");
    assert_eq!(cell(&r, "Suspend"), "False");
    assert_eq!(cell(&r, "Active"), 2);
    assert_eq!(cell(&r, "Last Schedule"), "5m");
    assert_eq!(cell(&r, "Age"), "3d");
    assert_eq!(cell(&r, "Containers"), "b");
    assert_eq!(cell(&r, "Selector"), "<none>");

    let never = json!({"metadata": {"name": "n"}, "spec": {"schedule": "@daily",
        "timeZone": "Europe/Berlin"}});
    let r = row("batch", "CronJob", &never);
    assert_eq!(cell(&r, "Timezone"), "Europe/Berlin");
    assert_eq!(cell(&r, "Suspend"), "<unset>");
    assert_eq!(cell(&r, "Last Schedule"), "<none>");
}
