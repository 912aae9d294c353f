//! Defaults for the built-in kinds, as Kubernetes' defaulting functions set them, so that
//! stored objects read back the way they do from a Kubernetes apiserver.

use async_trait::async_trait;
use serde_json::{json, Map, Value};

use super::{AdmissionRequest, MutatingAdmission, Operation};
use crate::error::Result;

pub struct Defaults {
    /// `--default-not-ready-toleration-seconds` and
    /// `--default-unreachable-toleration-seconds` (DefaultTolerationSeconds).
    pub not_ready_seconds: i64,
    pub unreachable_seconds: i64,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            not_ready_seconds: 300,
            unreachable_seconds: 300,
        }
    }
}

fn obj_at<'a>(v: &'a mut Value, path: &[&str]) -> Option<&'a mut Map<String, Value>> {
    let mut cur = v;
    for p in path {
        cur = cur.get_mut(*p)?;
    }
    cur.as_object_mut()
}

fn default(m: &mut Map<String, Value>, k: &str, v: Value) {
    if m.get(k).is_none_or(|x| x.is_null()) {
        m.insert(k.to_string(), v);
    }
}

/// The objects in the list at `m[key]`, if it is a list.
fn items<'a>(
    m: &'a mut Map<String, Value>,
    key: &str,
) -> impl Iterator<Item = &'a mut Map<String, Value>> {
    m.get_mut(key)
        .and_then(|l| l.as_array_mut())
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_object_mut())
}

fn image_pull_policy(image: &str) -> &'static str {
    let last = image.rsplit('/').next().unwrap_or(image);
    let has_digest = image.contains('@');
    match last.split_once(':') {
        _ if has_digest => "IfNotPresent",
        Some((_, "latest")) | None => "Always",
        Some(_) => "IfNotPresent",
    }
}

/// A Secret's `stringData` is write-only: merged into `data` (base64), winning over the
/// same key there, and not stored.
fn string_data(obj: &mut Value) {
    use base64::Engine;
    let Some(Value::Object(sd)) = obj.as_object_mut().and_then(|m| m.remove("stringData")) else {
        return;
    };
    if !obj["data"].is_object() {
        obj["data"] = json!({});
    }
    if let Some(data) = obj["data"].as_object_mut() {
        for (k, v) in sd {
            let text = v.as_str().unwrap_or_default().to_string();
            data.insert(
                k,
                base64::engine::general_purpose::STANDARD
                    .encode(text)
                    .into(),
            );
        }
    }
}

/// Pod spec defaults, also applied to the pod templates of workloads.
pub fn pod_spec(spec: &mut Map<String, Value>) {
    default(spec, "restartPolicy", json!("Always"));
    default(spec, "dnsPolicy", json!("ClusterFirst"));
    default(spec, "schedulerName", json!("default-scheduler"));
    default(spec, "terminationGracePeriodSeconds", json!(30));
    default(spec, "securityContext", json!({}));
    default(spec, "enableServiceLinks", json!(true));
    for list in ["initContainers", "containers"] {
        for c in items(spec, list) {
            let image = c
                .get("image")
                .and_then(|i| i.as_str())
                .unwrap_or("")
                .to_string();
            default(c, "imagePullPolicy", json!(image_pull_policy(&image)));
            default(c, "terminationMessagePath", json!("/dev/termination-log"));
            default(c, "terminationMessagePolicy", json!("File"));
            default(c, "resources", json!({}));
            for p in items(c, "ports") {
                default(p, "protocol", json!("TCP"));
            }
        }
    }
}

/// DefaultTolerationSeconds: pods tolerate not-ready and unreachable nodes for a while
/// (300 s unless configured).
fn default_tolerations(spec: &mut Map<String, Value>, not_ready: i64, unreachable: i64) {
    let tolerations = spec.entry("tolerations").or_insert_with(|| json!([]));
    let Some(list) = tolerations.as_array_mut() else {
        return;
    };
    for (key, seconds) in [
        ("node.kubernetes.io/not-ready", not_ready),
        ("node.kubernetes.io/unreachable", unreachable),
    ] {
        let has = list.iter().any(|t| {
            (t["key"] == json!(key) || t["operator"] == json!("Exists") && t.get("key").is_none())
                && (t.get("effect").is_none() || t["effect"] == json!("NoExecute"))
        });
        if !has {
            list.push(
                json!({"key": key, "operator": "Exists", "effect": "NoExecute",
                             "tolerationSeconds": seconds}),
            );
        }
    }
}

fn template(obj: &mut Value, path: &[&str]) {
    if let Some(spec) = obj_at(obj, path) {
        pod_spec(spec);
    }
}

fn kind_defaults(kind: &str, obj: &mut Value) {
    match kind {
        "Pod" => {
            if let Some(spec) = obj_at(obj, &["spec"]) {
                pod_spec(spec);
            }
        }
        "Service" => {
            if let Some(spec) = obj_at(obj, &["spec"]) {
                service_spec(spec);
            }
        }
        "Deployment"
        | "ReplicaSet"
        | "ReplicationController"
        | "StatefulSet"
        | "DaemonSet"
        | "Job"
        | "CronJob" => workload_defaults(kind, obj),
        "Secret" => {
            string_data(obj);
            if let Some(m) = obj.as_object_mut() {
                default(m, "type", json!("Opaque"));
            }
        }
        "Namespace" => {
            if let Some(m) = obj.as_object_mut() {
                let st = m.entry("status").or_insert_with(|| json!({}));
                if let Some(st) = st.as_object_mut() {
                    default(st, "phase", json!("Active"));
                }
            }
        }
        _ => {}
    }
}

fn service_spec(spec: &mut Map<String, Value>) {
    default(spec, "type", json!("ClusterIP"));
    default(spec, "sessionAffinity", json!("None"));
    if spec["sessionAffinity"] == "ClientIP" {
        default(
            spec,
            "sessionAffinityConfig",
            json!({"clientIP": {"timeoutSeconds": 10800}}),
        );
    }
    if spec["type"] != "ExternalName" {
        default(spec, "ipFamilies", json!(["IPv4"]));
        default(spec, "ipFamilyPolicy", json!("SingleStack"));
        default(spec, "internalTrafficPolicy", json!("Cluster"));
    }
    if matches!(spec["type"].as_str(), Some("NodePort" | "LoadBalancer")) {
        default(spec, "externalTrafficPolicy", json!("Cluster"));
    }
    for p in items(spec, "ports") {
        default(p, "protocol", json!("TCP"));
        let port = p.get("port").cloned().unwrap_or(Value::Null);
        default(p, "targetPort", port);
    }
}

/// A workload's spec defaults, then those of its pod template.
fn workload_defaults(kind: &str, obj: &mut Value) {
    if let Some(spec) = obj_at(obj, &["spec"]) {
        workload_spec(kind, spec);
    }
    if kind == "CronJob" {
        template(obj, &["spec", "jobTemplate", "spec", "template", "spec"]);
    } else {
        template(obj, &["spec", "template", "spec"]);
    }
}

fn workload_spec(kind: &str, spec: &mut Map<String, Value>) {
    match kind {
        "Deployment" => {
            default(spec, "replicas", json!(1));
            default(spec, "revisionHistoryLimit", json!(10));
            default(spec, "progressDeadlineSeconds", json!(600));
            default(
                spec,
                "strategy",
                json!({"type": "RollingUpdate",
                       "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}),
            );
        }
        "ReplicaSet" | "ReplicationController" => {
            default(spec, "replicas", json!(1));
        }
        "StatefulSet" => {
            default(spec, "replicas", json!(1));
            default(spec, "podManagementPolicy", json!("OrderedReady"));
            default(spec, "revisionHistoryLimit", json!(10));
            default(
                spec,
                "updateStrategy",
                json!({"type": "RollingUpdate",
                "rollingUpdate": {"partition": 0}}),
            );
        }
        "DaemonSet" => {
            default(spec, "revisionHistoryLimit", json!(10));
            default(
                spec,
                "updateStrategy",
                json!({"type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}),
            );
        }
        "Job" => {
            default(spec, "parallelism", json!(1));
            default(spec, "backoffLimit", json!(6));
            default(spec, "completionMode", json!("NonIndexed"));
            default(spec, "suspend", json!(false));
            if spec.get("completions").is_none() {
                spec.insert("completions".into(), json!(1));
            }
        }
        "CronJob" => {
            default(spec, "concurrencyPolicy", json!("Allow"));
            default(spec, "suspend", json!(false));
            default(spec, "successfulJobsHistoryLimit", json!(3));
            default(spec, "failedJobsHistoryLimit", json!(1));
        }
        _ => {}
    }
}

#[async_trait]
impl MutatingAdmission for Defaults {
    fn name(&self) -> &'static str {
        "Defaults"
    }

    async fn admit(&self, req: &AdmissionRequest<'_>, obj: &mut Value) -> Result<()> {
        if req.op == Operation::Delete || !req.subresource.is_empty() {
            return Ok(());
        }
        if matches!(req.rt.schema, crate::registry::Schema::Builtin(_)) {
            kind_defaults(&req.rt.kind, obj);
            if req.rt.kind == "Pod" && req.op == Operation::Create {
                if let Some(spec) = obj_at(obj, &["spec"]) {
                    default_tolerations(spec, self.not_ready_seconds, self.unreachable_seconds);
                }
            }
            if req.op == Operation::Create && req.rt.kind == "Namespace" {
                // The namespace controller removes it once the namespace is empty.
                if obj.get("spec").is_none_or(Value::is_null) {
                    obj["spec"] = json!({});
                }
                if let Some(spec) = obj_at(obj, &["spec"]) {
                    default(spec, "finalizers", json!(["kubernetes"]));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_defaults() {
        let mut pod = json!({"spec": {"containers": [{"name": "a", "image": "nginx",
            "ports": [{"containerPort": 80}]}, {"name": "b", "image": "busybox:1.36"}]}});
        kind_defaults("Pod", &mut pod);
        assert_eq!(pod["spec"]["restartPolicy"], "Always");
        assert_eq!(pod["spec"]["containers"][0]["imagePullPolicy"], "Always");
        assert_eq!(
            pod["spec"]["containers"][1]["imagePullPolicy"],
            "IfNotPresent"
        );
        assert_eq!(pod["spec"]["containers"][0]["ports"][0]["protocol"], "TCP");
        let spec = pod["spec"].as_object_mut().unwrap();
        default_tolerations(spec, 30, 5);
        let t = pod["spec"]["tolerations"].as_array().unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t[1]["key"], "node.kubernetes.io/unreachable");
        assert_eq!(t[1]["tolerationSeconds"], 5);
    }

    #[test]
    fn secret_string_data_goes_into_data() {
        let mut s =
            json!({"data": {"a": "eA==", "b": "eA=="}, "stringData": {"b": "yes", "c": "z"}});
        kind_defaults("Secret", &mut s);
        assert_eq!(
            s,
            json!({"type": "Opaque", "data": {"a": "eA==", "b": "eWVz", "c": "eg=="}})
        );
    }
}
