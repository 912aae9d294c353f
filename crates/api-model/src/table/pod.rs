//! The Pod row, as `kubectl get pods` prints it: READY counts ready containers (sidecars
//! included), STATUS is the reason Kubernetes' printer derives from the phase, the init
//! containers and the containers' states (`Init:0/1`, `CrashLoopBackOff`, `Completed`,
//! `Terminating`), RESTARTS adds when the last restart was (`5 (3m ago)`).

use serde_json::{json, Value};

use super::format::{age, condition_true, items, name, or_none, text};
use super::time::{parse_rfc3339, since_timestamp, Timestamp};
use super::ColumnType::String as S;
use super::{col, wide, Doc, Printer, AGE, NAME};

const STATUS: &str = "io.k8s.api.core.v1.PodStatus";
const SPEC: &str = "io.k8s.api.core.v1.PodSpec";

pub(super) static POD: Printer = Printer {
    columns: &[
        NAME,
        col(
            "Ready",
            S,
            Doc::Text("The aggregate readiness state of this pod for accepting traffic."),
        ),
        col(
            "Status",
            S,
            Doc::Text("The aggregate status of the containers in this pod."),
        ),
        col(
            "Restarts",
            S,
            Doc::Text(
                "The number of times the containers in this pod have been restarted and when \
                 the last container in this pod has restarted.",
            ),
        ),
        AGE,
        wide("IP", S, Doc::Field(STATUS, "podIP")),
        wide("Node", S, Doc::Field(SPEC, "nodeName")),
        wide("Nominated Node", S, Doc::Field(STATUS, "nominatedNodeName")),
        wide("Readiness Gates", S, Doc::Field(SPEC, "readinessGates")),
    ],
    cells,
    conditions: Some(conditions),
};

/// The reason a node controller gives pods on a node that stopped reporting.
const NODE_LOST: &str = "NodeLost";

/// What the container statuses add up to.
#[derive(Default)]
struct Tally {
    ready: usize,
    restarts: i64,
    last_restart: Option<Timestamp>,
}

impl Tally {
    fn restarted(&mut self, status: &Value) {
        self.restarts += status["restartCount"].as_i64().unwrap_or(0);
        let finished = status["lastState"]["terminated"]["finishedAt"]
            .as_str()
            .and_then(parse_rfc3339);
        if finished > self.last_restart {
            self.last_restart = finished;
        }
    }
}

fn cells(pod: &Value, now: i64) -> Vec<Value> {
    let spec = &pod["spec"];
    let status = &pod["status"];
    let phase = text(&status["phase"]);
    let mut reason = match text(&status["reason"]) {
        "" => phase.to_string(),
        r => r.to_string(),
    };
    if items(&status["conditions"])
        .iter()
        .any(|c| text(&c["type"]) == "PodScheduled" && text(&c["reason"]) == "SchedulingGated")
    {
        reason = "SchedulingGated".to_string();
    }

    let init_specs = items(&spec["initContainers"]);
    let sidecars = init_specs.iter().filter(|c| is_sidecar(c)).count();
    let total = items(&spec["containers"]).len() + sidecars;

    let (mut tally, sidecar_tally, initializing) = init_containers(pod, &mut reason);
    if !initializing || condition_true(&status["conditions"], "Initialized") {
        tally = containers(pod, sidecar_tally, &mut reason);
    }

    if !pod["metadata"]["deletionTimestamp"].is_null() {
        if text(&status["reason"]) == NODE_LOST {
            reason = "Unknown".to_string();
        } else if !matches!(phase, "Succeeded" | "Failed") {
            reason = "Terminating".to_string();
        }
    }

    let restarts = match tally.last_restart {
        Some(last) if tally.restarts != 0 => {
            format!("{} ({} ago)", tally.restarts, since_timestamp(last, now))
        }
        _ => tally.restarts.to_string(),
    };

    vec![
        name(pod),
        format!("{}/{}", tally.ready, total).into(),
        reason.into(),
        restarts.into(),
        age(pod, now),
        pod_ip(status).into(),
        or_none(text(&spec["nodeName"])),
        or_none(text(&status["nominatedNodeName"])),
        readiness_gates(pod).into(),
    ]
}

/// An init container with `restartPolicy: Always` runs beside the containers (a sidecar).
fn is_sidecar(container: &Value) -> bool {
    text(&container["restartPolicy"]) == "Always"
}

/// Walks the init containers in order up to the first one that has not completed,
/// setting `reason` to what holds the pod up. Returns the tally of every init container
/// walked (its ready count is the started sidecars'), the tally of the sidecars among
/// them, and whether the pod is initializing.
fn init_containers(pod: &Value, reason: &mut String) -> (Tally, Tally, bool) {
    let init_specs = items(&pod["spec"]["initContainers"]);
    let sidecar = |name: &str| {
        init_specs
            .iter()
            .any(|c| text(&c["name"]) == name && is_sidecar(c))
    };
    let mut all = Tally::default();
    let mut sidecars = Tally::default();
    for (i, cs) in items(&pod["status"]["initContainerStatuses"])
        .iter()
        .enumerate()
    {
        all.restarted(cs);
        let is_sidecar = sidecar(text(&cs["name"]));
        if is_sidecar {
            sidecars.restarted(cs);
        }
        let terminated = &cs["state"]["terminated"];
        let waiting = text(&cs["state"]["waiting"]["reason"]);
        if terminated.is_object() && terminated["exitCode"].as_i64() == Some(0) {
            continue;
        }
        if is_sidecar && cs["started"].as_bool() == Some(true) {
            if cs["ready"].as_bool() == Some(true) {
                sidecars.ready += 1;
            }
            continue;
        }
        *reason = if terminated.is_object() {
            match text(&terminated["reason"]) {
                "" => match terminated["signal"].as_i64().unwrap_or(0) {
                    0 => format!(
                        "Init:ExitCode:{}",
                        terminated["exitCode"].as_i64().unwrap_or(0)
                    ),
                    signal => format!("Init:Signal:{signal}"),
                },
                r => format!("Init:{r}"),
            }
        } else if !waiting.is_empty() && waiting != "PodInitializing" {
            format!("Init:{waiting}")
        } else {
            format!("Init:{i}/{}", init_specs.len())
        };
        all.ready = sidecars.ready;
        return (all, sidecars, true);
    }
    all.ready = sidecars.ready;
    (all, sidecars, false)
}

/// Adds the containers to the sidecars' tally, last container first, so that the first
/// container's state is the reason that shows.
fn containers(pod: &Value, mut tally: Tally, reason: &mut String) -> Tally {
    let mut has_running = false;
    for cs in items(&pod["status"]["containerStatuses"]).iter().rev() {
        tally.restarted(cs);
        let state = &cs["state"];
        let waiting = text(&state["waiting"]["reason"]);
        let terminated = &state["terminated"];
        if !waiting.is_empty() {
            *reason = waiting.to_string();
        } else if terminated.is_object() {
            *reason = match text(&terminated["reason"]) {
                "" => match terminated["signal"].as_i64().unwrap_or(0) {
                    0 => format!("ExitCode:{}", terminated["exitCode"].as_i64().unwrap_or(0)),
                    signal => format!("Signal:{signal}"),
                },
                r => r.to_string(),
            };
        } else if cs["ready"].as_bool() == Some(true) && state["running"].is_object() {
            has_running = true;
            tally.ready += 1;
        }
    }
    // A pod whose finished containers say Completed is still running while one runs on.
    if reason == "Completed" && has_running {
        *reason = if condition_true(&pod["status"]["conditions"], "Ready") {
            "Running"
        } else {
            "NotReady"
        }
        .to_string();
    }
    tally
}

fn pod_ip(status: &Value) -> &str {
    let ip = items(&status["podIPs"])
        .first()
        .map_or_else(|| text(&status["podIP"]), |p| text(&p["ip"]));
    if ip.is_empty() {
        "<none>"
    } else {
        ip
    }
}

/// `true/all` of the pod's readiness gates, or `<none>`.
fn readiness_gates(pod: &Value) -> String {
    let gates = items(&pod["spec"]["readinessGates"]);
    if gates.is_empty() {
        return "<none>".to_string();
    }
    let conditions = &pod["status"]["conditions"];
    let passed = gates
        .iter()
        .filter(|g| condition_true(conditions, text(&g["conditionType"])))
        .count();
    format!("{passed}/{}", gates.len())
}

/// A finished pod's row is marked Completed, with the phase as the reason.
fn conditions(pod: &Value) -> Option<Value> {
    let (reason, message) = match text(&pod["status"]["phase"]) {
        "Succeeded" => ("Succeeded", "The pod has completed successfully."),
        "Failed" => ("Failed", "The pod failed."),
        _ => return None,
    };
    Some(json!([{
        "type": "Completed",
        "status": "True",
        "reason": reason,
        "message": message,
    }]))
}
