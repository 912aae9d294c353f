//! What Kubernetes' Go types say about their fields and the `generated.proto` files do not:
//! which scalar fields are pointers, and which JSON names differ from the proto names.
//!
//! Go writes every non-pointer scalar to the wire, zero or not, and leaves zero ones out of
//! its JSON (`omitempty`); a pointer is written only when set, and then also when zero
//! (`replicas: 0`, `automountServiceAccountToken: false`, `storageClassName: ""`). So a zero
//! scalar read from the wire is kept in the JSON only for the fields listed here. The lists
//! cover the messages of `rkube-proto`'s `proto/k8s/` tree, from the Go types of the same
//! Kubernetes release.

/// Scalar fields that are Go pointers, by message. Sorted by message name.
#[rustfmt::skip]
const POINTER_SCALARS: &[(&str, &[&str])] = &[
    ("k8s.io.api.admissionregistration.v1.MatchResources", &["matchPolicy"]),
    ("k8s.io.api.admissionregistration.v1.MutatingAdmissionPolicySpec", &["failurePolicy"]),
    ("k8s.io.api.admissionregistration.v1.MutatingWebhook", &["failurePolicy", "matchPolicy", "sideEffects", "timeoutSeconds", "reinvocationPolicy"]),
    ("k8s.io.api.admissionregistration.v1.ParamRef", &["parameterNotFoundAction"]),
    ("k8s.io.api.admissionregistration.v1.Rule", &["scope"]),
    ("k8s.io.api.admissionregistration.v1.ServiceReference", &["path", "port"]),
    ("k8s.io.api.admissionregistration.v1.ValidatingAdmissionPolicySpec", &["failurePolicy"]),
    ("k8s.io.api.admissionregistration.v1.ValidatingWebhook", &["failurePolicy", "matchPolicy", "sideEffects", "timeoutSeconds"]),
    ("k8s.io.api.admissionregistration.v1.Validation", &["reason"]),
    ("k8s.io.api.admissionregistration.v1.WebhookClientConfig", &["url"]),
    ("k8s.io.api.apps.v1.DaemonSetSpec", &["revisionHistoryLimit"]),
    ("k8s.io.api.apps.v1.DaemonSetStatus", &["collisionCount"]),
    ("k8s.io.api.apps.v1.DeploymentSpec", &["replicas", "revisionHistoryLimit", "progressDeadlineSeconds"]),
    ("k8s.io.api.apps.v1.DeploymentStatus", &["terminatingReplicas", "collisionCount"]),
    ("k8s.io.api.apps.v1.ReplicaSetSpec", &["replicas"]),
    ("k8s.io.api.apps.v1.ReplicaSetStatus", &["terminatingReplicas"]),
    ("k8s.io.api.apps.v1.RollingUpdateStatefulSetStrategy", &["partition"]),
    ("k8s.io.api.apps.v1.StatefulSetSpec", &["replicas", "revisionHistoryLimit"]),
    ("k8s.io.api.apps.v1.StatefulSetStatus", &["collisionCount"]),
    ("k8s.io.api.authentication.v1.TokenRequestSpec", &["expirationSeconds"]),
    ("k8s.io.api.autoscaling.v1.ContainerResourceMetricSource", &["targetAverageUtilization"]),
    ("k8s.io.api.autoscaling.v1.ContainerResourceMetricStatus", &["currentAverageUtilization"]),
    ("k8s.io.api.autoscaling.v1.HorizontalPodAutoscalerCondition", &["observedGeneration"]),
    ("k8s.io.api.autoscaling.v1.HorizontalPodAutoscalerSpec", &["minReplicas", "targetCPUUtilizationPercentage"]),
    ("k8s.io.api.autoscaling.v1.HorizontalPodAutoscalerStatus", &["observedGeneration", "currentCPUUtilizationPercentage"]),
    ("k8s.io.api.autoscaling.v1.ResourceMetricSource", &["targetAverageUtilization"]),
    ("k8s.io.api.autoscaling.v1.ResourceMetricStatus", &["currentAverageUtilization"]),
    ("k8s.io.api.autoscaling.v2.HPAScalingRules", &["stabilizationWindowSeconds", "selectPolicy"]),
    ("k8s.io.api.autoscaling.v2.HorizontalPodAutoscalerCondition", &["observedGeneration"]),
    ("k8s.io.api.autoscaling.v2.HorizontalPodAutoscalerSpec", &["minReplicas"]),
    ("k8s.io.api.autoscaling.v2.HorizontalPodAutoscalerStatus", &["observedGeneration"]),
    ("k8s.io.api.autoscaling.v2.MetricTarget", &["averageUtilization"]),
    ("k8s.io.api.autoscaling.v2.MetricValueStatus", &["averageUtilization"]),
    ("k8s.io.api.batch.v1.CronJobSpec", &["timeZone", "startingDeadlineSeconds", "suspend", "successfulJobsHistoryLimit", "failedJobsHistoryLimit"]),
    ("k8s.io.api.batch.v1.JobSpec", &["parallelism", "completions", "activeDeadlineSeconds", "backoffLimit", "backoffLimitPerIndex", "maxFailedIndexes", "manualSelector", "ttlSecondsAfterFinished", "completionMode", "suspend", "podReplacementPolicy", "managedBy"]),
    ("k8s.io.api.batch.v1.JobStatus", &["terminating", "failedIndexes", "ready"]),
    ("k8s.io.api.batch.v1.PodFailurePolicyOnExitCodesRequirement", &["containerName"]),
    ("k8s.io.api.batch.v1.SuccessPolicyRule", &["succeededIndexes", "succeededCount"]),
    ("k8s.io.api.certificates.v1.CertificateSigningRequestSpec", &["expirationSeconds"]),
    ("k8s.io.api.coordination.v1.LeaseSpec", &["holderIdentity", "leaseDurationSeconds", "leaseTransitions", "strategy", "preferredHolder"]),
    ("k8s.io.api.core.v1.AppArmorProfile", &["localhostProfile"]),
    ("k8s.io.api.core.v1.AzureDiskVolumeSource", &["cachingMode", "fsType", "readOnly", "kind"]),
    ("k8s.io.api.core.v1.AzureFilePersistentVolumeSource", &["secretNamespace"]),
    ("k8s.io.api.core.v1.CSIVolumeSource", &["readOnly", "fsType"]),
    ("k8s.io.api.core.v1.ClientIPConfig", &["timeoutSeconds"]),
    ("k8s.io.api.core.v1.ClusterTrustBundleProjection", &["name", "signerName", "optional"]),
    ("k8s.io.api.core.v1.ConfigMap", &["immutable"]),
    ("k8s.io.api.core.v1.ConfigMapEnvSource", &["optional"]),
    ("k8s.io.api.core.v1.ConfigMapKeySelector", &["optional"]),
    ("k8s.io.api.core.v1.ConfigMapProjection", &["optional"]),
    ("k8s.io.api.core.v1.ConfigMapVolumeSource", &["defaultMode", "optional"]),
    ("k8s.io.api.core.v1.Container", &["restartPolicy"]),
    ("k8s.io.api.core.v1.ContainerStatus", &["started", "stopSignal"]),
    ("k8s.io.api.core.v1.DownwardAPIVolumeFile", &["mode"]),
    ("k8s.io.api.core.v1.DownwardAPIVolumeSource", &["defaultMode"]),
    ("k8s.io.api.core.v1.EndpointAddress", &["nodeName"]),
    ("k8s.io.api.core.v1.EndpointPort", &["appProtocol"]),
    ("k8s.io.api.core.v1.EphemeralContainerCommon", &["restartPolicy"]),
    ("k8s.io.api.core.v1.FCVolumeSource", &["lun"]),
    ("k8s.io.api.core.v1.FileKeySelector", &["optional"]),
    ("k8s.io.api.core.v1.GRPCAction", &["service"]),
    ("k8s.io.api.core.v1.GlusterfsPersistentVolumeSource", &["endpointsNamespace"]),
    ("k8s.io.api.core.v1.HostPathVolumeSource", &["type"]),
    ("k8s.io.api.core.v1.ISCSIPersistentVolumeSource", &["initiatorName"]),
    ("k8s.io.api.core.v1.ISCSIVolumeSource", &["initiatorName"]),
    ("k8s.io.api.core.v1.KeyToPath", &["mode"]),
    ("k8s.io.api.core.v1.Lifecycle", &["stopSignal"]),
    ("k8s.io.api.core.v1.LoadBalancerIngress", &["ipMode"]),
    ("k8s.io.api.core.v1.LocalVolumeSource", &["fsType"]),
    ("k8s.io.api.core.v1.NodeFeatures", &["supplementalGroupsPolicy"]),
    ("k8s.io.api.core.v1.NodeRuntimeHandlerFeatures", &["recursiveReadOnlyMounts", "userNamespaces"]),
    ("k8s.io.api.core.v1.NodeSwapStatus", &["capacity"]),
    ("k8s.io.api.core.v1.PersistentVolumeClaimSpec", &["storageClassName", "volumeMode", "volumeAttributesClassName"]),
    ("k8s.io.api.core.v1.PersistentVolumeClaimStatus", &["currentVolumeAttributesClassName"]),
    ("k8s.io.api.core.v1.PersistentVolumeSpec", &["volumeMode", "volumeAttributesClassName"]),
    ("k8s.io.api.core.v1.PodCertificateProjection", &["maxExpirationSeconds"]),
    ("k8s.io.api.core.v1.PodDNSConfigOption", &["value"]),
    ("k8s.io.api.core.v1.PodLogOptions", &["sinceSeconds", "tailLines", "limitBytes", "stream"]),
    ("k8s.io.api.core.v1.PodResourceClaim", &["resourceClaimName", "resourceClaimTemplateName"]),
    ("k8s.io.api.core.v1.PodResourceClaimStatus", &["resourceClaimName"]),
    ("k8s.io.api.core.v1.PodSchedulingGroup", &["podGroupName"]),
    ("k8s.io.api.core.v1.PodSecurityContext", &["runAsUser", "runAsGroup", "runAsNonRoot", "supplementalGroupsPolicy", "fsGroup", "fsGroupChangePolicy", "seLinuxChangePolicy"]),
    ("k8s.io.api.core.v1.PodSpec", &["terminationGracePeriodSeconds", "activeDeadlineSeconds", "automountServiceAccountToken", "shareProcessNamespace", "priority", "runtimeClassName", "enableServiceLinks", "preemptionPolicy", "setHostnameAsFQDN", "hostUsers", "hostnameOverride"]),
    ("k8s.io.api.core.v1.PortStatus", &["error"]),
    ("k8s.io.api.core.v1.Preconditions", &["uid"]),
    ("k8s.io.api.core.v1.Probe", &["terminationGracePeriodSeconds"]),
    ("k8s.io.api.core.v1.ProjectedVolumeSource", &["defaultMode"]),
    ("k8s.io.api.core.v1.ReplicationControllerSpec", &["replicas"]),
    ("k8s.io.api.core.v1.ResourceHealth", &["message"]),
    ("k8s.io.api.core.v1.SeccompProfile", &["localhostProfile"]),
    ("k8s.io.api.core.v1.Secret", &["immutable"]),
    ("k8s.io.api.core.v1.SecretEnvSource", &["optional"]),
    ("k8s.io.api.core.v1.SecretKeySelector", &["optional"]),
    ("k8s.io.api.core.v1.SecretProjection", &["optional"]),
    ("k8s.io.api.core.v1.SecretVolumeSource", &["defaultMode", "optional"]),
    ("k8s.io.api.core.v1.SecurityContext", &["privileged", "runAsUser", "runAsGroup", "runAsNonRoot", "readOnlyRootFilesystem", "allowPrivilegeEscalation", "procMount"]),
    ("k8s.io.api.core.v1.ServiceAccount", &["automountServiceAccountToken"]),
    ("k8s.io.api.core.v1.ServiceAccountTokenProjection", &["expirationSeconds"]),
    ("k8s.io.api.core.v1.ServicePort", &["appProtocol"]),
    ("k8s.io.api.core.v1.ServiceSpec", &["ipFamilyPolicy", "allocateLoadBalancerNodePorts", "loadBalancerClass", "internalTrafficPolicy", "trafficDistribution"]),
    ("k8s.io.api.core.v1.Toleration", &["tolerationSeconds"]),
    ("k8s.io.api.core.v1.TopologySpreadConstraint", &["minDomains", "nodeAffinityPolicy", "nodeTaintsPolicy"]),
    ("k8s.io.api.core.v1.TypedLocalObjectReference", &["apiGroup"]),
    ("k8s.io.api.core.v1.TypedObjectReference", &["apiGroup", "namespace"]),
    ("k8s.io.api.core.v1.VolumeMount", &["recursiveReadOnly", "mountPropagation"]),
    ("k8s.io.api.core.v1.VolumeMountStatus", &["recursiveReadOnly"]),
    ("k8s.io.api.core.v1.WindowsSecurityContextOptions", &["gmsaCredentialSpecName", "gmsaCredentialSpec", "runAsUserName", "hostProcess"]),
    ("k8s.io.api.discovery.v1.Endpoint", &["hostname", "nodeName", "zone"]),
    ("k8s.io.api.discovery.v1.EndpointConditions", &["ready", "serving", "terminating"]),
    ("k8s.io.api.discovery.v1.EndpointPort", &["name", "protocol", "port", "appProtocol"]),
    ("k8s.io.api.policy.v1.PodDisruptionBudgetSpec", &["unhealthyPodEvictionPolicy"]),
    ("k8s.io.api.scheduling.v1.PriorityClass", &["preemptionPolicy"]),
    ("k8s.io.apiextensions_apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinitionVersion", &["deprecationWarning"]),
    ("k8s.io.apiextensions_apiserver.pkg.apis.apiextensions.v1.CustomResourceSubresourceScale", &["labelSelectorPath"]),
    ("k8s.io.apiextensions_apiserver.pkg.apis.apiextensions.v1.JSONSchemaProps", &["ref", "maximum", "minimum", "maxLength", "minLength", "maxItems", "minItems", "multipleOf", "maxProperties", "minProperties", "xKubernetesPreserveUnknownFields", "xKubernetesListType", "xKubernetesMapType"]),
    ("k8s.io.apiextensions_apiserver.pkg.apis.apiextensions.v1.ServiceReference", &["path", "port"]),
    ("k8s.io.apiextensions_apiserver.pkg.apis.apiextensions.v1.ValidationRule", &["reason", "optionalOldSelf"]),
    ("k8s.io.apiextensions_apiserver.pkg.apis.apiextensions.v1.WebhookClientConfig", &["url"]),
    ("k8s.io.apimachinery.pkg.apis.meta.v1.DeleteOptions", &["gracePeriodSeconds", "orphanDependents", "propagationPolicy", "ignoreStoreReadErrorWithClusterBreakingPotential"]),
    ("k8s.io.apimachinery.pkg.apis.meta.v1.ListMeta", &["remainingItemCount"]),
    ("k8s.io.apimachinery.pkg.apis.meta.v1.ListOptions", &["timeoutSeconds", "sendInitialEvents"]),
    ("k8s.io.apimachinery.pkg.apis.meta.v1.ObjectMeta", &["deletionGracePeriodSeconds"]),
    ("k8s.io.apimachinery.pkg.apis.meta.v1.OwnerReference", &["controller", "blockOwnerDeletion"]),
    ("k8s.io.apimachinery.pkg.apis.meta.v1.PatchOptions", &["force"]),
    ("k8s.io.apimachinery.pkg.apis.meta.v1.Preconditions", &["uid", "resourceVersion"]),
];

/// Fields whose JSON name is not their proto name, by full proto field name. Sorted.
#[rustfmt::skip]
const JSON_NAMES: &[(&str, &str)] = &[
    ("k8s.io.api.admissionregistration.v1.MutatingWebhookConfiguration.Webhooks", "webhooks"),
    ("k8s.io.api.admissionregistration.v1.ValidatingWebhookConfiguration.Webhooks", "webhooks"),
    ("k8s.io.api.admissionregistration.v1.Validation.Expression", "expression"),
    ("k8s.io.api.admissionregistration.v1.Variable.Expression", "expression"),
    ("k8s.io.api.admissionregistration.v1.Variable.Name", "name"),
    ("k8s.io.api.authentication.v1.BoundObjectReference.uID", "uid"),
    ("k8s.io.apiextensions_apiserver.pkg.apis.apiextensions.v1.JSONSchemaProps.ref", "$ref"),
    ("k8s.io.apiextensions_apiserver.pkg.apis.apiextensions.v1.JSONSchemaProps.schema", "$schema"),
    ("k8s.io.apiextensions_apiserver.pkg.apis.apiextensions.v1.JSONSchemaProps.xKubernetesEmbeddedResource", "x-kubernetes-embedded-resource"),
    ("k8s.io.apiextensions_apiserver.pkg.apis.apiextensions.v1.JSONSchemaProps.xKubernetesIntOrString", "x-kubernetes-int-or-string"),
    ("k8s.io.apiextensions_apiserver.pkg.apis.apiextensions.v1.JSONSchemaProps.xKubernetesListMapKeys", "x-kubernetes-list-map-keys"),
    ("k8s.io.apiextensions_apiserver.pkg.apis.apiextensions.v1.JSONSchemaProps.xKubernetesListType", "x-kubernetes-list-type"),
    ("k8s.io.apiextensions_apiserver.pkg.apis.apiextensions.v1.JSONSchemaProps.xKubernetesMapType", "x-kubernetes-map-type"),
    ("k8s.io.apiextensions_apiserver.pkg.apis.apiextensions.v1.JSONSchemaProps.xKubernetesPreserveUnknownFields", "x-kubernetes-preserve-unknown-fields"),
    ("k8s.io.apiextensions_apiserver.pkg.apis.apiextensions.v1.JSONSchemaProps.xKubernetesValidations", "x-kubernetes-validations"),
];

/// Whether the scalar field `field` of the message named `message` is a Go pointer, so that
/// its zero value is meaningful and belongs in the JSON.
pub(super) fn is_pointer_scalar(message: &str, field: &str) -> bool {
    POINTER_SCALARS
        .binary_search_by(|(m, _)| (*m).cmp(message))
        .is_ok_and(|i| POINTER_SCALARS[i].1.contains(&field))
}

/// The JSON name of the field with this full proto name, if it is not the proto name.
pub(super) fn json_name(full_field_name: &str) -> Option<&'static str> {
    JSON_NAMES
        .binary_search_by(|(f, _)| (*f).cmp(full_field_name))
        .ok()
        .map(|i| JSON_NAMES[i].1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_sorted_for_binary_search() {
        assert!(POINTER_SCALARS.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(JSON_NAMES.windows(2).all(|w| w[0].0 < w[1].0));
    }

    #[test]
    fn pointer_and_plain_scalars_are_told_apart() {
        assert!(is_pointer_scalar(
            "k8s.io.api.apps.v1.DeploymentSpec",
            "replicas"
        ));
        assert!(!is_pointer_scalar(
            "k8s.io.api.apps.v1.DeploymentSpec",
            "minReadySeconds"
        ));
        assert!(!is_pointer_scalar(
            "k8s.io.api.apps.v1.Deployment",
            "replicas"
        ));
        assert_eq!(
            json_name("k8s.io.api.authentication.v1.BoundObjectReference.uID"),
            Some("uid")
        );
        assert_eq!(
            json_name("k8s.io.api.apps.v1.DeploymentSpec.replicas"),
            None
        );
    }
}
