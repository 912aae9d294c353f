//! The rows of HorizontalPodAutoscaler (its metrics as `cpu: 40%/80%`, current against
//! target) and PodDisruptionBudget.

use serde_json::Value;

use super::format::{age, int, int_or_string, items, name, quantity, text};
use super::ColumnType::{Integer as I, String as S};
use super::{col, Doc, Printer, AGE, NAME};

const HPA_SPEC: &str = "io.k8s.api.autoscaling.v2.HorizontalPodAutoscalerSpec";
const HPA_STATUS: &str = "io.k8s.api.autoscaling.v2.HorizontalPodAutoscalerStatus";

pub(super) static HPA: Printer = Printer {
    columns: &[
        NAME,
        col("Reference", S, Doc::Field(HPA_SPEC, "scaleTargetRef")),
        col("Targets", S, Doc::Field(HPA_SPEC, "metrics")),
        col("MinPods", S, Doc::Field(HPA_SPEC, "minReplicas")),
        col("MaxPods", S, Doc::Field(HPA_SPEC, "maxReplicas")),
        col("Replicas", S, Doc::Field(HPA_STATUS, "currentReplicas")),
        AGE,
    ],
    cells: hpa_cells,
    conditions: None,
};

fn hpa_cells(hpa: &Value, now: i64) -> Vec<Value> {
    let spec = &hpa["spec"];
    let target = &spec["scaleTargetRef"];
    let min = spec["minReplicas"]
        .as_i64()
        .map_or_else(|| "<unset>".to_string(), |m| m.to_string());
    vec![
        name(hpa),
        format!("{}/{}", text(&target["kind"]), text(&target["name"])).into(),
        hpa_metrics(hpa).into(),
        min.into(),
        int(&spec["maxReplicas"]).into(),
        int(&hpa["status"]["currentReplicas"]).into(),
        age(hpa, now),
    ]
}

/// The first two metrics as `current/target`, then how many more; `<none>` without any.
fn hpa_metrics(hpa: &Value) -> String {
    const MAX: usize = 2;
    let spec = &hpa["spec"];
    let statuses = items(&hpa["status"]["currentMetrics"]);
    let metrics = items(&spec["metrics"]);
    if metrics.is_empty() {
        // autoscaling/v1 keeps its one metric in a field of its own.
        return match spec["targetCPUUtilizationPercentage"].as_i64() {
            Some(target) => {
                let current = hpa["status"]["currentCPUUtilizationPercentage"]
                    .as_i64()
                    .map_or_else(|| "<unknown>".to_string(), |c| format!("{c}%"));
                format!("cpu: {current}/{target}%")
            }
            None => "<none>".to_string(),
        };
    }
    let list: Vec<String> = metrics
        .iter()
        .take(MAX)
        .enumerate()
        .map(|(i, m)| metric(m, statuses.get(i).unwrap_or(&Value::Null)))
        .collect();
    let joined = list.join(", ");
    if metrics.len() > MAX {
        format!("{joined} + {} more...", metrics.len() - MAX)
    } else {
        joined
    }
}

/// One metric spec against its status, as Kubernetes' printer writes each source type.
fn metric(spec: &Value, status: &Value) -> String {
    let unknown = || "<unknown>".to_string();
    // A quantity that is not there prints as Go prints a nil quantity.
    let q = |v: &Value| {
        if v.is_null() {
            "<nil>".to_string()
        } else {
            quantity(v)
        }
    };
    let percent = |v: &Value| v.as_i64().map(|p| format!("{p}%"));
    match text(&spec["type"]) {
        ty @ ("External" | "Object") => {
            let key = if ty == "External" {
                "external"
            } else {
                "object"
            };
            let target = &spec[key]["target"];
            let current = &status[key]["current"];
            if target["averageValue"].is_null() {
                let cur = if status[key].is_object() {
                    q(&current["value"])
                } else {
                    unknown()
                };
                format!("{cur}/{}", q(&target["value"]))
            } else {
                let cur = if current["averageValue"].is_null() {
                    unknown()
                } else {
                    q(&current["averageValue"])
                };
                format!("{cur}/{} (avg)", q(&target["averageValue"]))
            }
        }
        "Pods" => {
            let cur = if status["pods"].is_object() {
                q(&status["pods"]["current"]["averageValue"])
            } else {
                unknown()
            };
            format!("{cur}/{}", q(&spec["pods"]["target"]["averageValue"]))
        }
        ty @ ("Resource" | "ContainerResource") => {
            let key = if ty == "Resource" {
                "resource"
            } else {
                "containerResource"
            };
            let source = &spec[key];
            let resource = text(&source["name"]);
            let target = &source["target"];
            let current = &status[key]["current"];
            if target["averageValue"].is_null() {
                let cur = percent(&current["averageUtilization"]).unwrap_or_else(unknown);
                let tgt =
                    percent(&target["averageUtilization"]).unwrap_or_else(|| "<auto>".to_string());
                format!("{resource}: {cur}/{tgt}")
            } else {
                let cur = if status[key].is_object() {
                    q(&current["averageValue"])
                } else {
                    unknown()
                };
                format!("{resource}: {cur}/{}", q(&target["averageValue"]))
            }
        }
        _ => "<unknown type>".to_string(),
    }
}

pub(super) static PDB: Printer = Printer {
    columns: &[
        NAME,
        col(
            "Min Available",
            S,
            Doc::Text("The minimum number of pods that must be available."),
        ),
        col(
            "Max Unavailable",
            S,
            Doc::Text("The maximum number of pods that may be unavailable."),
        ),
        col(
            "Allowed Disruptions",
            I,
            Doc::Text("Calculated number of pods that may be disrupted at this time."),
        ),
        AGE,
    ],
    cells: |pdb, now| {
        let spec = &pdb["spec"];
        let or_na = |v: &Value| -> Value {
            if v.is_null() {
                "N/A".into()
            } else {
                int_or_string(v).into()
            }
        };
        vec![
            name(pdb),
            or_na(&spec["minAvailable"]),
            or_na(&spec["maxUnavailable"]),
            int(&pdb["status"]["disruptionsAllowed"]).into(),
            age(pdb, now),
        ]
    },
    conditions: None,
};
