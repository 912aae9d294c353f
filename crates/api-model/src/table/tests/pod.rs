//! The Pod row: READY, STATUS as Kubernetes derives it, RESTARTS with the last restart.

use serde_json::{json, Value};

use super::*;

/// A pod created 3m20s ago on node-1 with one container `web` per entry of `statuses`.
fn pod(statuses: Value) -> Value {
    let n = statuses.as_array().map_or(0, Vec::len);
    let containers: Vec<Value> = (0..n)
        .map(|i| json!({"name": format!("c{i}"), "image": "nginx:1.27"}))
        .collect();
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web-7d4b9", "namespace": "default", "creationTimestamp": ago(200)},
        "spec": {"nodeName": "node-1", "containers": containers},
        "status": {
            "phase": "Running",
            "podIP": "10.244.1.7",
            "podIPs": [{"ip": "10.244.1.7"}],
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": statuses,
        },
    })
}

fn running(ready: bool) -> Value {
    json!({"name": "c", "ready": ready, "restartCount": 0, "state": {"running": {"startedAt": ago(190)}}})
}

fn status_of(p: &Value) -> (String, String, String) {
    let r = row("", "Pod", p);
    let s = |n: &str| cell(&r, n).as_str().unwrap_or_default().to_string();
    (s("Ready"), s("Status"), s("Restarts"))
}

#[test]
fn a_running_pod_shows_its_ready_containers_and_age() {
    let p = pod(json!([running(true), running(false)]));
    let r = row("", "Pod", &p);
    assert_eq!(cell(&r, "Name"), "web-7d4b9");
    assert_eq!(cell(&r, "Ready"), "1/2");
    assert_eq!(cell(&r, "Status"), "Running");
    assert_eq!(cell(&r, "Restarts"), "0");
    assert_eq!(cell(&r, "Age"), "3m20s");
    assert_eq!(cell(&r, "IP"), "10.244.1.7");
    assert_eq!(cell(&r, "Node"), "node-1");
    assert_eq!(cell(&r, "Nominated Node"), "<none>");
    assert_eq!(cell(&r, "Readiness Gates"), "<none>");
}

#[test]
fn pod_columns_are_kubectls_with_the_wide_ones_at_priority_one() {
    let cols = columns("", "Pod");
    let shown: Vec<&str> = cols
        .iter()
        .filter(|c| c.priority == 0)
        .map(|c| c.name.as_str())
        .collect();
    let wide: Vec<&str> = cols
        .iter()
        .filter(|c| c.priority == 1)
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(shown, ["Name", "Ready", "Status", "Restarts", "Age"]);
    assert_eq!(wide, ["IP", "Node", "Nominated Node", "Readiness Gates"]);
    assert_eq!(cols[0].format, "name");
}

#[test]
fn a_crash_looping_container_shows_its_waiting_reason_and_last_restart() {
    let p = pod(json!([{
        "name": "c0", "ready": false, "restartCount": 5,
        "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 2m40s"}},
        "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": ago(300)}},
    }]));
    assert_eq!(
        status_of(&p),
        ("0/1".into(), "CrashLoopBackOff".into(), "5 (5m ago)".into())
    );
}

#[test]
fn a_terminated_container_without_a_reason_shows_its_signal_or_exit_code() {
    let signalled = pod(json!([{"name": "c0", "ready": false, "restartCount": 0,
        "state": {"terminated": {"exitCode": 137, "signal": 9}}}]));
    assert_eq!(status_of(&signalled).1, "Signal:9");
    let exited = pod(json!([{"name": "c0", "ready": false, "restartCount": 0,
        "state": {"terminated": {"exitCode": 3}}}]));
    assert_eq!(status_of(&exited).1, "ExitCode:3");
}

/// A pending pod whose init containers have the given statuses.
fn initializing(init: Value) -> Value {
    let n = init.as_array().map_or(0, Vec::len);
    let mut p = pod(json!([{"name": "c0", "ready": false, "restartCount": 0,
        "state": {"waiting": {"reason": "PodInitializing"}}}]));
    p["status"]["phase"] = "Pending".into();
    p["status"]["conditions"] = json!([{"type": "Initialized", "status": "False"}]);
    p["spec"]["initContainers"] = (0..n)
        .map(|i| json!({"name": format!("init{i}"), "image": "busybox"}))
        .collect();
    p["status"]["initContainerStatuses"] = init;
    p
}

#[test]
fn init_containers_show_how_far_initialization_got() {
    let done = json!({"name": "init0", "ready": false, "restartCount": 0,
        "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}});
    let running = json!({"name": "init1", "ready": false, "restartCount": 0,
        "state": {"running": {"startedAt": ago(10)}}});
    assert_eq!(
        status_of(&initializing(json!([running.clone()]))).1,
        "Init:0/1"
    );
    assert_eq!(
        status_of(&initializing(json!([done, running]))).1,
        "Init:1/2"
    );
}

#[test]
fn a_failing_init_container_shows_its_reason() {
    let pulling = json!([{"name": "init0", "ready": false, "restartCount": 0,
        "state": {"waiting": {"reason": "ImagePullBackOff"}}}]);
    assert_eq!(status_of(&initializing(pulling)).1, "Init:ImagePullBackOff");
    let crashed = json!([{"name": "init0", "ready": false, "restartCount": 2,
        "state": {"terminated": {"exitCode": 1, "reason": "Error"}},
        "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(30)}}}]);
    assert_eq!(
        status_of(&initializing(crashed)),
        ("0/1".into(), "Init:Error".into(), "2 (30s ago)".into())
    );
    let exited = json!([{"name": "init0", "ready": false, "restartCount": 0,
        "state": {"terminated": {"exitCode": 2}}}]);
    assert_eq!(status_of(&initializing(exited)).1, "Init:ExitCode:2");
}

#[test]
fn a_pod_being_deleted_is_terminating_unless_its_node_was_lost() {
    let mut p = pod(json!([running(true)]));
    p["metadata"]["deletionTimestamp"] = ago(5).into();
    assert_eq!(status_of(&p).1, "Terminating");
    p["status"]["reason"] = "NodeLost".into();
    assert_eq!(status_of(&p).1, "Unknown");
}

#[test]
fn a_finished_pod_is_completed_and_its_row_is_marked() {
    let mut p = pod(json!([{"name": "c0", "ready": false, "restartCount": 0,
        "state": {"terminated": {"exitCode": 0, "reason": "Completed", "finishedAt": ago(60)}}}]));
    p["status"]["phase"] = "Succeeded".into();
    p["metadata"]["deletionTimestamp"] = ago(1).into();
    assert_eq!(
        status_of(&p),
        ("0/1".into(), "Completed".into(), "0".into())
    );
    let conditions = Printer::for_kind("", "Pod").conditions(&p);
    assert_eq!(
        conditions,
        Some(
            json!([{"type": "Completed", "status": "True", "reason": "Succeeded",
            "message": "The pod has completed successfully."}])
        )
    );
    assert_eq!(
        Printer::for_kind("", "Pod").conditions(&pod(json!([running(true)]))),
        None
    );
}

#[test]
fn a_completed_container_beside_a_running_one_reads_running_or_not_ready() {
    let completed = json!({"name": "c0", "ready": false, "restartCount": 0,
        "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}});
    let mut p = pod(json!([completed, running(true)]));
    assert_eq!(status_of(&p).1, "Running");
    p["status"]["conditions"] = json!([{"type": "Ready", "status": "False"}]);
    assert_eq!(status_of(&p).1, "NotReady");
}

#[test]
fn sidecars_count_as_containers_and_their_restarts_count() {
    let mut p = pod(json!([running(true)]));
    p["spec"]["initContainers"] = json!([
        {"name": "setup", "image": "busybox"},
        {"name": "proxy", "image": "envoy", "restartPolicy": "Always"},
    ]);
    p["status"]["conditions"] = json!([
        {"type": "Initialized", "status": "True"}, {"type": "Ready", "status": "True"},
    ]);
    p["status"]["initContainerStatuses"] = json!([
        {"name": "setup", "ready": false, "restartCount": 4,
         "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
        {"name": "proxy", "ready": true, "started": true, "restartCount": 1,
         "state": {"running": {"startedAt": ago(100)}},
         "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(120)}}},
    ]);
    // The finished init container's restarts no longer count once the pod is initialized.
    assert_eq!(
        status_of(&p),
        ("2/2".into(), "Running".into(), "1 (2m ago)".into())
    );
}

#[test]
fn the_pod_reason_and_scheduling_gates_override_the_phase() {
    let mut evicted = pod(json!([]));
    evicted["status"]["phase"] = "Failed".into();
    evicted["status"]["reason"] = "Evicted".into();
    assert_eq!(status_of(&evicted).1, "Evicted");

    let mut gated = pod(json!([]));
    gated["spec"]["nodeName"] = Value::Null;
    gated["status"] = json!({"phase": "Pending", "conditions": [
        {"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]});
    let r = row("", "Pod", &gated);
    assert_eq!(cell(&r, "Status"), "SchedulingGated");
    assert_eq!(cell(&r, "Node"), "<none>");
    assert_eq!(cell(&r, "IP"), "<none>");
}

#[test]
fn readiness_gates_count_the_true_conditions() {
    let mut p = pod(json!([running(true)]));
    p["spec"]["readinessGates"] = json!([
        {"conditionType": "example.com/lb-ready"}, {"conditionType": "example.com/dns"},
    ]);
    p["status"]["conditions"] = json!([
        {"type": "Ready", "status": "False"},
        {"type": "example.com/lb-ready", "status": "True"},
        {"type": "example.com/dns", "status": "False"},
    ]);
    p["status"]["nominatedNodeName"] = "node-2".into();
    let r = row("", "Pod", &p);
    assert_eq!(cell(&r, "Readiness Gates"), "1/2");
    assert_eq!(cell(&r, "Nominated Node"), "node-2");
}
