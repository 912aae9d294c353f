//! The built-in kinds and their resource names, scopes and selectable fields.

use k8s_openapi::api::{
    admissionregistration, apps, authorization, autoscaling, batch, certificates, coordination,
    core, discovery, policy, rbac, scheduling, storage,
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiextensions;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};

use super::{ResourceType, Schema};
use crate::error::{FieldError, FieldErrorKind};

/// Decodes into the `k8s-openapi` type and encodes again.
fn typed<K: DeserializeOwned + Serialize>(v: Value) -> Result<Value, FieldError> {
    let k: K = serde_path_to_error::deserialize(v).map_err(|e| {
        let path = e.path().to_string();
        FieldError {
            path: if path == "." { String::new() } else { path },
            kind: FieldErrorKind::Type(e.inner().to_string()),
        }
    })?;
    serde_json::to_value(&k).map_err(|e| FieldError {
        path: String::new(),
        kind: FieldErrorKind::Type(e.to_string()),
    })
}

struct Spec {
    singular: &'static str,
    namespaced: bool,
    short: &'static [&'static str],
    status: bool,
    fields: &'static [&'static str],
    categories: &'static [&'static str],
}

const NS: Spec = Spec {
    singular: "",
    namespaced: true,
    short: &[],
    status: false,
    fields: &[],
    categories: &[],
};

fn t<K>(spec: Spec) -> ResourceType
where
    K: k8s_openapi::Resource + DeserializeOwned + Serialize,
{
    let singular = if spec.singular.is_empty() {
        K::KIND.to_lowercase()
    } else {
        spec.singular.to_string()
    };
    ResourceType {
        group: K::GROUP.to_string(),
        version: K::VERSION.to_string(),
        kind: K::KIND.to_string(),
        plural: K::URL_PATH_SEGMENT.to_string(),
        singular,
        namespaced: spec.namespaced,
        short_names: spec.short.iter().map(|s| s.to_string()).collect(),
        categories: spec.categories.iter().map(|s| s.to_string()).collect(),
        has_status: spec.status,
        fields: spec.fields,
        schema: Schema::Builtin(typed::<K>),
    }
}

const ALL: &[&str] = &["all"];

/// Field selector keys of pods, as the Kubernetes pod strategy supports them.
pub const POD_FIELDS: &[&str] = &[
    "spec.nodeName",
    "spec.restartPolicy",
    "spec.schedulerName",
    "spec.serviceAccountName",
    "spec.hostNetwork",
    "status.phase",
    "status.podIP",
    "status.nominatedNodeName",
];

const EVENT_FIELDS: &[&str] = &[
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
];

/// A cluster-scoped kind.
fn cluster(short: &'static [&'static str], status: bool) -> Spec {
    Spec {
        namespaced: false,
        short,
        status,
        ..NS
    }
}

pub fn builtin_types() -> Vec<ResourceType> {
    let mut types = core_types();
    types.extend(workload_types());
    types.extend(other_group_types());
    types.push(pod_metrics());
    types
}

/// The kinds of the core group (`v1`).
fn core_types() -> Vec<ResourceType> {
    vec![
        t::<core::v1::Namespace>(Spec {
            fields: &["status.phase"],
            ..cluster(&["ns"], true)
        }),
        t::<core::v1::Node>(Spec {
            fields: &["spec.unschedulable"],
            ..cluster(&["no"], true)
        }),
        t::<core::v1::Pod>(Spec {
            short: &["po"],
            status: true,
            fields: POD_FIELDS,
            categories: ALL,
            ..NS
        }),
        t::<core::v1::Service>(Spec {
            short: &["svc"],
            status: true,
            categories: ALL,
            ..NS
        }),
        t::<core::v1::Endpoints>(Spec {
            singular: "endpoints",
            short: &["ep"],
            ..NS
        }),
        t::<core::v1::ConfigMap>(Spec {
            short: &["cm"],
            ..NS
        }),
        t::<core::v1::Secret>(Spec {
            fields: &["type"],
            ..NS
        }),
        t::<core::v1::ServiceAccount>(Spec {
            short: &["sa"],
            ..NS
        }),
        t::<core::v1::Event>(Spec {
            short: &["ev"],
            fields: EVENT_FIELDS,
            ..NS
        }),
        t::<core::v1::ReplicationController>(Spec {
            short: &["rc"],
            status: true,
            fields: &["status.replicas"],
            categories: ALL,
            ..NS
        }),
        t::<core::v1::PersistentVolume>(cluster(&["pv"], true)),
        t::<core::v1::LimitRange>(Spec {
            short: &["limits"],
            ..NS
        }),
        t::<core::v1::ResourceQuota>(Spec {
            short: &["quota"],
            status: true,
            ..NS
        }),
        t::<core::v1::PersistentVolumeClaim>(Spec {
            short: &["pvc"],
            status: true,
            ..NS
        }),
    ]
}

/// The kinds of the `apps` and `batch` groups.
fn workload_types() -> Vec<ResourceType> {
    vec![
        t::<apps::v1::ReplicaSet>(Spec {
            short: &["rs"],
            status: true,
            fields: &["status.replicas"],
            categories: ALL,
            ..NS
        }),
        t::<apps::v1::Deployment>(Spec {
            short: &["deploy"],
            status: true,
            categories: ALL,
            ..NS
        }),
        t::<apps::v1::DaemonSet>(Spec {
            short: &["ds"],
            status: true,
            categories: ALL,
            ..NS
        }),
        t::<apps::v1::StatefulSet>(Spec {
            short: &["sts"],
            status: true,
            categories: ALL,
            ..NS
        }),
        t::<apps::v1::ControllerRevision>(NS),
        t::<batch::v1::Job>(Spec {
            status: true,
            fields: &["status.successful"],
            categories: ALL,
            ..NS
        }),
        t::<batch::v1::CronJob>(Spec {
            short: &["cj"],
            status: true,
            categories: ALL,
            ..NS
        }),
    ]
}

/// The kinds of the remaining groups: leases, endpoint slices, autoscaling, disruption
/// budgets, RBAC, certificates, access reviews, admission webhooks, priority classes and
/// CustomResourceDefinitions.
fn other_group_types() -> Vec<ResourceType> {
    vec![
        t::<coordination::v1::Lease>(NS),
        t::<discovery::v1::EndpointSlice>(NS),
        t::<autoscaling::v2::HorizontalPodAutoscaler>(Spec {
            short: &["hpa"],
            status: true,
            categories: ALL,
            ..NS
        }),
        t::<policy::v1::PodDisruptionBudget>(Spec {
            short: &["pdb"],
            status: true,
            ..NS
        }),
        t::<rbac::v1::Role>(NS),
        t::<rbac::v1::RoleBinding>(NS),
        t::<rbac::v1::ClusterRole>(cluster(&[], false)),
        t::<rbac::v1::ClusterRoleBinding>(cluster(&[], false)),
        t::<certificates::v1::CertificateSigningRequest>(cluster(&["csr"], true)),
        t::<authorization::v1::SelfSubjectAccessReview>(cluster(&[], false)),
        t::<authorization::v1::SelfSubjectRulesReview>(cluster(&[], false)),
        t::<authorization::v1::SubjectAccessReview>(cluster(&[], false)),
        t::<authorization::v1::LocalSubjectAccessReview>(NS),
        t::<admissionregistration::v1::ValidatingWebhookConfiguration>(cluster(&[], false)),
        t::<admissionregistration::v1::MutatingWebhookConfiguration>(cluster(&[], false)),
        t::<scheduling::v1::PriorityClass>(cluster(&["pc"], false)),
        t::<storage::v1::StorageClass>(cluster(&["sc"], false)),
        t::<storage::v1::VolumeAttachment>(cluster(&[], true)),
        t::<apiextensions::CustomResourceDefinition>(cluster(&["crd", "crds"], true)),
    ]
}

/// `metrics.k8s.io/v1beta1` PodMetrics: the usage kubelets publish, one object per pod.
/// `k8s-openapi` has no type for it, so its shape is checked by a schema.
fn pod_metrics() -> ResourceType {
    let quantities = json!({"type": "object",
        "additionalProperties": {"x-kubernetes-int-or-string": true}});
    ResourceType {
        group: "metrics.k8s.io".into(),
        version: "v1beta1".into(),
        kind: "PodMetrics".into(),
        plural: "pods".into(),
        singular: "podmetrics".into(),
        namespaced: true,
        short_names: vec![],
        categories: vec![],
        has_status: false,
        fields: &[],
        schema: Schema::Custom(Some(json!({
            "type": "object",
            "properties": {
                "timestamp": {"type": "string"},
                "window": {"type": "string"},
                "containers": {"type": "array", "items": {
                    "type": "object",
                    "required": ["name"],
                    "properties": {"name": {"type": "string"}, "usage": quantities},
                }},
            },
        }))),
    }
}
