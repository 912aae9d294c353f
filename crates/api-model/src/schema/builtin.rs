//! Generating the definitions of the built-in kinds from their `k8s-openapi` types.

use k8s_openapi::api::{
    admissionregistration, apps, authentication, authorization, autoscaling, batch, certificates,
    coordination, core, discovery, policy, rbac, scheduling, storage,
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiextensions;
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use schemars::generate::SchemaSettings;
use schemars::SchemaGenerator;

use super::{patch_meta, Definitions};

/// A built-in kind and the name of its definition.
pub struct Root {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub definition: &'static str,
}

macro_rules! roots {
    ($($t:ty),* $(,)?) => {
        /// Every built-in kind with a schema.
        pub static ROOTS: &[Root] = &[$(Root {
            api_version: <$t as k8s_openapi::Resource>::API_VERSION,
            kind: <$t as k8s_openapi::Resource>::KIND,
            definition: <$t as Named>::NAME,
        }),*];

        fn add_all(g: &mut SchemaGenerator) {
            $(g.subschema_for::<$t>();)*
            // Types every client decodes beside the kinds.
            g.subschema_for::<meta::Status>();
            g.subschema_for::<meta::DeleteOptions>();
            g.subschema_for::<meta::APIResourceList>();
            g.subschema_for::<meta::APIGroupList>();
            g.subschema_for::<autoscaling::v1::Scale>();
            g.subschema_for::<authentication::v1::SelfSubjectReview>();
            g.subschema_for::<authentication::v1::TokenRequest>();
            g.subschema_for::<core::v1::Binding>();
            g.subschema_for::<policy::v1::Eviction>();
        }
    };
}

/// The definition name of a type, as a constant (`io.k8s.api.core.v1.Pod`).
trait Named {
    const NAME: &'static str;
}

macro_rules! named {
    ($($t:ty => $n:literal),* $(,)?) => { $(impl Named for $t { const NAME: &'static str = $n; })* };
}

named! {
    core::v1::Namespace => "io.k8s.api.core.v1.Namespace",
    core::v1::Node => "io.k8s.api.core.v1.Node",
    core::v1::Pod => "io.k8s.api.core.v1.Pod",
    core::v1::Service => "io.k8s.api.core.v1.Service",
    core::v1::Endpoints => "io.k8s.api.core.v1.Endpoints",
    core::v1::ConfigMap => "io.k8s.api.core.v1.ConfigMap",
    core::v1::Secret => "io.k8s.api.core.v1.Secret",
    core::v1::ServiceAccount => "io.k8s.api.core.v1.ServiceAccount",
    core::v1::Event => "io.k8s.api.core.v1.Event",
    core::v1::ReplicationController => "io.k8s.api.core.v1.ReplicationController",
    core::v1::PersistentVolume => "io.k8s.api.core.v1.PersistentVolume",
    core::v1::PersistentVolumeClaim => "io.k8s.api.core.v1.PersistentVolumeClaim",
    core::v1::LimitRange => "io.k8s.api.core.v1.LimitRange",
    core::v1::ResourceQuota => "io.k8s.api.core.v1.ResourceQuota",
    apps::v1::ReplicaSet => "io.k8s.api.apps.v1.ReplicaSet",
    apps::v1::Deployment => "io.k8s.api.apps.v1.Deployment",
    apps::v1::DaemonSet => "io.k8s.api.apps.v1.DaemonSet",
    apps::v1::StatefulSet => "io.k8s.api.apps.v1.StatefulSet",
    apps::v1::ControllerRevision => "io.k8s.api.apps.v1.ControllerRevision",
    batch::v1::Job => "io.k8s.api.batch.v1.Job",
    batch::v1::CronJob => "io.k8s.api.batch.v1.CronJob",
    coordination::v1::Lease => "io.k8s.api.coordination.v1.Lease",
    discovery::v1::EndpointSlice => "io.k8s.api.discovery.v1.EndpointSlice",
    autoscaling::v2::HorizontalPodAutoscaler => "io.k8s.api.autoscaling.v2.HorizontalPodAutoscaler",
    policy::v1::PodDisruptionBudget => "io.k8s.api.policy.v1.PodDisruptionBudget",
    rbac::v1::Role => "io.k8s.api.rbac.v1.Role",
    rbac::v1::RoleBinding => "io.k8s.api.rbac.v1.RoleBinding",
    rbac::v1::ClusterRole => "io.k8s.api.rbac.v1.ClusterRole",
    rbac::v1::ClusterRoleBinding => "io.k8s.api.rbac.v1.ClusterRoleBinding",
    certificates::v1::CertificateSigningRequest => "io.k8s.api.certificates.v1.CertificateSigningRequest",
    authorization::v1::SelfSubjectAccessReview => "io.k8s.api.authorization.v1.SelfSubjectAccessReview",
    authorization::v1::SelfSubjectRulesReview => "io.k8s.api.authorization.v1.SelfSubjectRulesReview",
    authorization::v1::SubjectAccessReview => "io.k8s.api.authorization.v1.SubjectAccessReview",
    authorization::v1::LocalSubjectAccessReview => "io.k8s.api.authorization.v1.LocalSubjectAccessReview",
    admissionregistration::v1::ValidatingWebhookConfiguration => "io.k8s.api.admissionregistration.v1.ValidatingWebhookConfiguration",
    admissionregistration::v1::MutatingWebhookConfiguration => "io.k8s.api.admissionregistration.v1.MutatingWebhookConfiguration",
    scheduling::v1::PriorityClass => "io.k8s.api.scheduling.v1.PriorityClass",
    storage::v1::StorageClass => "io.k8s.api.storage.v1.StorageClass",
    storage::v1::VolumeAttachment => "io.k8s.api.storage.v1.VolumeAttachment",
    apiextensions::CustomResourceDefinition => "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinition",
}

roots! {
    core::v1::Namespace, core::v1::Node, core::v1::Pod, core::v1::Service,
    core::v1::Endpoints, core::v1::ConfigMap, core::v1::Secret, core::v1::ServiceAccount,
    core::v1::Event, core::v1::ReplicationController, core::v1::PersistentVolume,
    core::v1::PersistentVolumeClaim, core::v1::LimitRange, core::v1::ResourceQuota,
    apps::v1::ReplicaSet, apps::v1::Deployment, apps::v1::DaemonSet, apps::v1::StatefulSet,
    apps::v1::ControllerRevision, batch::v1::Job, batch::v1::CronJob, coordination::v1::Lease,
    discovery::v1::EndpointSlice, autoscaling::v2::HorizontalPodAutoscaler,
    policy::v1::PodDisruptionBudget, rbac::v1::Role, rbac::v1::RoleBinding,
    rbac::v1::ClusterRole, rbac::v1::ClusterRoleBinding,
    certificates::v1::CertificateSigningRequest, authorization::v1::SelfSubjectAccessReview,
    authorization::v1::SelfSubjectRulesReview, authorization::v1::SubjectAccessReview,
    authorization::v1::LocalSubjectAccessReview,
    admissionregistration::v1::ValidatingWebhookConfiguration,
    admissionregistration::v1::MutatingWebhookConfiguration, scheduling::v1::PriorityClass,
    storage::v1::StorageClass, storage::v1::VolumeAttachment,
    apiextensions::CustomResourceDefinition,
}

pub(super) fn generate() -> Definitions {
    let mut g = SchemaSettings::draft07()
        .with(|s| s.definitions_path = "/definitions".into())
        .into_generator();
    add_all(&mut g);
    let mut defs: std::collections::BTreeMap<String, serde_json::Value> =
        g.take_definitions(true).into_iter().collect();
    patch_meta::overlay(&mut defs);
    Definitions { defs }
}
