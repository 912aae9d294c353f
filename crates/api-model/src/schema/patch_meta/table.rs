//! The patch metadata Kubernetes declares on the Go types of the built-in kinds (the
//! `patchStrategy`/`patchMergeKey` tags and the `+listType`, `+listMapKey` and `+mapType`
//! markers), one block per definition. Lists not named here have no markers: strategic merge
//! patch replaces them and server-side apply treats them as atomic.

use super::{
    list_map, merge_atomic, merge_map, merge_map_retain, Meta, ATOMIC, ATOMIC_MAP, GRANULAR_MAP,
    MERGE_SET, REPLACE, RETAIN_KEYS, SET,
};

macro_rules! table {
    ($($def:literal { $($prop:literal: $meta:expr,)* })*) => {
        &[$($(Meta { definition: $def, property: $prop, ..$meta },)*)*]
    };
}

/// Every marked property, by definition.
#[rustfmt::skip]
pub(super) static TABLE: &[Meta] = table! {
    "io.k8s.api.admissionregistration.v1.MutatingWebhook" {
        "rules": ATOMIC, "admissionReviewVersions": ATOMIC,
        "matchConditions": merge_map("name", &["name"]),
    }
    "io.k8s.api.admissionregistration.v1.MutatingWebhookConfiguration" {
        "webhooks": merge_map("name", &["name"]),
    }
    "io.k8s.api.admissionregistration.v1.RuleWithOperations" {
        "operations": ATOMIC, "apiGroups": ATOMIC, "apiVersions": ATOMIC, "resources": ATOMIC,
    }
    "io.k8s.api.admissionregistration.v1.ValidatingWebhook" {
        "rules": ATOMIC, "admissionReviewVersions": ATOMIC,
        "matchConditions": merge_map("name", &["name"]),
    }
    "io.k8s.api.admissionregistration.v1.ValidatingWebhookConfiguration" {
        "webhooks": merge_map("name", &["name"]),
    }
    "io.k8s.api.apps.v1.DaemonSetStatus" { "conditions": merge_map("type", &["type"]), }
    "io.k8s.api.apps.v1.DeploymentSpec" { "strategy": RETAIN_KEYS, }
    "io.k8s.api.apps.v1.DeploymentStatus" { "conditions": merge_map("type", &["type"]), }
    "io.k8s.api.apps.v1.ReplicaSetStatus" { "conditions": merge_map("type", &["type"]), }
    "io.k8s.api.apps.v1.StatefulSetSpec" { "volumeClaimTemplates": ATOMIC, }
    "io.k8s.api.apps.v1.StatefulSetStatus" { "conditions": merge_map("type", &["type"]), }
    "io.k8s.api.authentication.v1.TokenRequestSpec" { "audiences": ATOMIC, }
    "io.k8s.api.authentication.v1.UserInfo" { "groups": ATOMIC, }
    "io.k8s.api.authorization.v1.FieldSelectorAttributes" { "requirements": ATOMIC, }
    "io.k8s.api.authorization.v1.LabelSelectorAttributes" { "requirements": ATOMIC, }
    "io.k8s.api.authorization.v1.NonResourceRule" { "verbs": ATOMIC, "nonResourceURLs": ATOMIC, }
    "io.k8s.api.authorization.v1.ResourceRule" {
        "verbs": ATOMIC, "apiGroups": ATOMIC, "resources": ATOMIC, "resourceNames": ATOMIC,
    }
    "io.k8s.api.authorization.v1.SubjectAccessReviewSpec" { "groups": ATOMIC, }
    "io.k8s.api.authorization.v1.SubjectRulesReviewStatus" {
        "resourceRules": ATOMIC, "nonResourceRules": ATOMIC,
    }
    "io.k8s.api.autoscaling.v2.HPAScalingRules" { "policies": ATOMIC, }
    "io.k8s.api.autoscaling.v2.HorizontalPodAutoscalerSpec" { "metrics": ATOMIC, }
    "io.k8s.api.autoscaling.v2.HorizontalPodAutoscalerStatus" {
        "currentMetrics": ATOMIC, "conditions": merge_map("type", &["type"]),
    }
    "io.k8s.api.batch.v1.CronJobStatus" { "active": ATOMIC, }
    "io.k8s.api.batch.v1.JobSchedulingConfiguration" {
        "resourceClaims": merge_map("name", &["name"]),
    }
    "io.k8s.api.batch.v1.JobStatus" { "conditions": merge_atomic("type"), }
    "io.k8s.api.batch.v1.PodFailurePolicy" { "rules": ATOMIC, }
    "io.k8s.api.batch.v1.PodFailurePolicyOnExitCodesRequirement" { "values": SET, }
    "io.k8s.api.batch.v1.PodFailurePolicyRule" { "onPodConditions": ATOMIC, }
    "io.k8s.api.batch.v1.SuccessPolicy" { "rules": ATOMIC, }
    "io.k8s.api.batch.v1.UncountedTerminatedPods" { "succeeded": SET, "failed": SET, }
    "io.k8s.api.certificates.v1.CertificateSigningRequestSpec" {
        "usages": ATOMIC, "groups": ATOMIC,
    }
    "io.k8s.api.certificates.v1.CertificateSigningRequestStatus" {
        "conditions": list_map(&["type"]),
    }
    "io.k8s.api.core.v1.Capabilities" { "add": ATOMIC, "drop": ATOMIC, }
    "io.k8s.api.core.v1.CephFSPersistentVolumeSource" { "monitors": ATOMIC, }
    "io.k8s.api.core.v1.CephFSVolumeSource" { "monitors": ATOMIC, }
    "io.k8s.api.core.v1.ConfigMapProjection" { "items": ATOMIC, }
    "io.k8s.api.core.v1.ConfigMapVolumeSource" { "items": ATOMIC, }
    "io.k8s.api.core.v1.Container" {
        "command": ATOMIC, "args": ATOMIC,
        "ports": merge_map("containerPort", &["containerPort", "protocol"]), "envFrom": ATOMIC,
        "env": merge_map("name", &["name"]), "resizePolicy": ATOMIC, "restartPolicyRules": ATOMIC,
        "volumeMounts": merge_map("mountPath", &["mountPath"]),
        "volumeDevices": merge_map("devicePath", &["devicePath"]),
    }
    "io.k8s.api.core.v1.ContainerImage" { "names": ATOMIC, }
    "io.k8s.api.core.v1.ContainerRestartRuleOnExitCodes" { "values": SET, }
    "io.k8s.api.core.v1.ContainerStatus" {
        "volumeMounts": merge_map("mountPath", &["mountPath"]),
        "allocatedResourcesStatus": merge_map("name", &["name"]),
    }
    "io.k8s.api.core.v1.DownwardAPIProjection" { "items": ATOMIC, }
    "io.k8s.api.core.v1.DownwardAPIVolumeSource" { "items": ATOMIC, }
    "io.k8s.api.core.v1.EndpointSubset" {
        "addresses": ATOMIC, "notReadyAddresses": ATOMIC, "ports": ATOMIC,
    }
    "io.k8s.api.core.v1.Endpoints" { "subsets": ATOMIC, }
    "io.k8s.api.core.v1.EphemeralContainer" {
        "command": ATOMIC, "args": ATOMIC,
        "ports": merge_map("containerPort", &["containerPort", "protocol"]), "envFrom": ATOMIC,
        "env": merge_map("name", &["name"]), "resizePolicy": ATOMIC, "restartPolicyRules": ATOMIC,
        "volumeMounts": merge_map("mountPath", &["mountPath"]),
        "volumeDevices": merge_map("devicePath", &["devicePath"]),
    }
    "io.k8s.api.core.v1.ExecAction" { "command": ATOMIC, }
    "io.k8s.api.core.v1.FCVolumeSource" { "targetWWNs": ATOMIC, "wwids": ATOMIC, }
    "io.k8s.api.core.v1.HTTPGetAction" { "httpHeaders": ATOMIC, }
    "io.k8s.api.core.v1.HostAlias" { "hostnames": ATOMIC, }
    "io.k8s.api.core.v1.ISCSIPersistentVolumeSource" { "portals": ATOMIC, }
    "io.k8s.api.core.v1.ISCSIVolumeSource" { "portals": ATOMIC, }
    "io.k8s.api.core.v1.LimitRangeSpec" { "limits": ATOMIC, }
    "io.k8s.api.core.v1.LinuxContainerUser" { "supplementalGroups": ATOMIC, }
    "io.k8s.api.core.v1.LoadBalancerIngress" { "ports": ATOMIC, }
    "io.k8s.api.core.v1.LoadBalancerStatus" { "ingress": ATOMIC, }
    "io.k8s.api.core.v1.NamespaceSpec" { "finalizers": ATOMIC, }
    "io.k8s.api.core.v1.NamespaceStatus" { "conditions": merge_map("type", &["type"]), }
    "io.k8s.api.core.v1.NodeAffinity" {
        "preferredDuringSchedulingIgnoredDuringExecution": ATOMIC,
    }
    "io.k8s.api.core.v1.NodeAllocatableResourceClaimStatus" {
        "containers": SET, "mapping": merge_map("name", &["name"]),
        "overhead": merge_map("name", &["name"]),
    }
    "io.k8s.api.core.v1.NodePodPreemptionPolicy" { "disableResizePreemption": SET, }
    "io.k8s.api.core.v1.NodeSelector" { "nodeSelectorTerms": ATOMIC, }
    "io.k8s.api.core.v1.NodeSelectorRequirement" { "values": ATOMIC, }
    "io.k8s.api.core.v1.NodeSelectorTerm" { "matchExpressions": ATOMIC, "matchFields": ATOMIC, }
    "io.k8s.api.core.v1.NodeSpec" { "podCIDRs": MERGE_SET, "taints": ATOMIC, }
    "io.k8s.api.core.v1.NodeStatus" {
        "conditions": merge_map("type", &["type"]), "addresses": merge_map("type", &["type"]),
        "images": ATOMIC, "volumesInUse": ATOMIC, "volumesAttached": ATOMIC,
        "runtimeHandlers": ATOMIC, "declaredFeatures": ATOMIC,
    }
    "io.k8s.api.core.v1.PersistentVolumeClaimSpec" { "accessModes": ATOMIC, }
    "io.k8s.api.core.v1.PersistentVolumeClaimStatus" {
        "accessModes": ATOMIC, "conditions": merge_map("type", &["type"]),
        "allocatedResourceStatuses": GRANULAR_MAP,
    }
    "io.k8s.api.core.v1.PersistentVolumeSpec" { "accessModes": ATOMIC, "mountOptions": ATOMIC, }
    "io.k8s.api.core.v1.PodAffinity" {
        "requiredDuringSchedulingIgnoredDuringExecution": ATOMIC,
        "preferredDuringSchedulingIgnoredDuringExecution": ATOMIC,
    }
    "io.k8s.api.core.v1.PodAffinityTerm" {
        "namespaces": ATOMIC, "matchLabelKeys": ATOMIC, "mismatchLabelKeys": ATOMIC,
    }
    "io.k8s.api.core.v1.PodAntiAffinity" {
        "requiredDuringSchedulingIgnoredDuringExecution": ATOMIC,
        "preferredDuringSchedulingIgnoredDuringExecution": ATOMIC,
    }
    "io.k8s.api.core.v1.PodDNSConfig" {
        "nameservers": ATOMIC, "searches": ATOMIC, "options": ATOMIC,
    }
    "io.k8s.api.core.v1.PodExtendedResourceClaimStatus" { "requestMappings": ATOMIC, }
    "io.k8s.api.core.v1.PodSecurityContext" { "supplementalGroups": ATOMIC, "sysctls": ATOMIC, }
    "io.k8s.api.core.v1.PodSpec" {
        "volumes": merge_map_retain("name", &["name"]),
        "initContainers": merge_map("name", &["name"]), "containers": merge_map("name", &["name"]),
        "ephemeralContainers": merge_map("name", &["name"]), "nodeSelector": ATOMIC_MAP,
        "imagePullSecrets": merge_map("name", &["name"]), "tolerations": ATOMIC,
        "hostAliases": merge_map("ip", &["ip"]), "readinessGates": ATOMIC,
        "topologySpreadConstraints": merge_map("topologyKey", &["topologyKey", "whenUnsatisfiable"]),
        "schedulingGates": merge_map("name", &["name"]),
        "resourceClaims": merge_map_retain("name", &["name"]),
        "evictionResponders": merge_map("name", &["name"]),
    }
    "io.k8s.api.core.v1.PodStatus" {
        "conditions": merge_map("type", &["type"]), "hostIPs": merge_atomic("ip"),
        "podIPs": merge_map("ip", &["ip"]), "initContainerStatuses": ATOMIC,
        "containerStatuses": ATOMIC, "ephemeralContainerStatuses": ATOMIC,
        "resourceClaimStatuses": merge_map_retain("name", &["name"]),
        "nodeAllocatableResourceClaimStatuses": merge_map("resourceClaimName", &["resourceClaimName"]),
        "volumeHealth": list_map(&["name"]),
    }
    "io.k8s.api.core.v1.PodVolumeHealth" {
        "healthConditions": merge_map("status", &["status", "reason"]),
    }
    "io.k8s.api.core.v1.ProjectedVolumeSource" { "sources": ATOMIC, }
    "io.k8s.api.core.v1.RBDPersistentVolumeSource" { "monitors": ATOMIC, }
    "io.k8s.api.core.v1.RBDVolumeSource" { "monitors": ATOMIC, }
    "io.k8s.api.core.v1.ReplicationControllerSpec" { "selector": ATOMIC_MAP, }
    "io.k8s.api.core.v1.ReplicationControllerStatus" {
        "conditions": merge_map("type", &["type"]),
    }
    "io.k8s.api.core.v1.ResourceQuotaSpec" { "scopes": ATOMIC, }
    "io.k8s.api.core.v1.ResourceRequirements" { "claims": list_map(&["name"]), }
    "io.k8s.api.core.v1.ResourceStatus" { "resources": list_map(&["resourceID"]), }
    "io.k8s.api.core.v1.ScopeSelector" { "matchExpressions": ATOMIC, }
    "io.k8s.api.core.v1.ScopedResourceSelectorRequirement" { "values": ATOMIC, }
    "io.k8s.api.core.v1.SecretProjection" { "items": ATOMIC, }
    "io.k8s.api.core.v1.SecretVolumeSource" { "items": ATOMIC, }
    "io.k8s.api.core.v1.ServiceAccount" {
        "secrets": merge_map("name", &["name"]), "imagePullSecrets": ATOMIC,
    }
    "io.k8s.api.core.v1.ServiceSpec" {
        "ports": merge_map("port", &["port", "protocol"]), "selector": ATOMIC_MAP,
        "clusterIPs": ATOMIC, "externalIPs": ATOMIC, "loadBalancerSourceRanges": ATOMIC,
        "ipFamilies": ATOMIC,
    }
    "io.k8s.api.core.v1.ServiceStatus" { "conditions": merge_map("type", &["type"]), }
    "io.k8s.api.core.v1.TopologySpreadConstraint" { "matchLabelKeys": ATOMIC, }
    "io.k8s.api.core.v1.VolumeHealthStatus" {
        "healthConditions": merge_map("status", &["status", "reason"]),
    }
    "io.k8s.api.core.v1.VolumeMount" { "bindMountOptions": SET, }
    "io.k8s.api.discovery.v1.Endpoint" { "addresses": SET, }
    "io.k8s.api.discovery.v1.EndpointHints" { "forZones": ATOMIC, "forNodes": ATOMIC, }
    "io.k8s.api.discovery.v1.EndpointSlice" { "endpoints": ATOMIC, "ports": ATOMIC, }
    "io.k8s.api.policy.v1.PodDisruptionBudgetSpec" { "selector": REPLACE, }
    "io.k8s.api.policy.v1.PodDisruptionBudgetStatus" {
        "conditions": merge_map("type", &["type"]),
    }
    "io.k8s.api.rbac.v1.AggregationRule" { "clusterRoleSelectors": ATOMIC, }
    "io.k8s.api.rbac.v1.ClusterRole" { "rules": ATOMIC, }
    "io.k8s.api.rbac.v1.ClusterRoleBinding" { "subjects": ATOMIC, }
    "io.k8s.api.rbac.v1.PolicyRule" {
        "verbs": ATOMIC, "apiGroups": ATOMIC, "resources": ATOMIC, "resourceNames": ATOMIC,
        "nonResourceURLs": ATOMIC,
    }
    "io.k8s.api.rbac.v1.Role" { "rules": ATOMIC, }
    "io.k8s.api.rbac.v1.RoleBinding" { "subjects": ATOMIC, }
    "io.k8s.api.scheduling.v1alpha3.WorkloadPodGroupSchedulingConstraints" { "topology": ATOMIC, }
    "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinitionNames" {
        "shortNames": ATOMIC, "categories": ATOMIC,
    }
    "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinitionSpec" {
        "versions": ATOMIC,
    }
    "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinitionStatus" {
        "conditions": list_map(&["type"]), "storedVersions": ATOMIC,
    }
    "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinitionVersion" {
        "additionalPrinterColumns": ATOMIC, "selectableFields": ATOMIC,
    }
    "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSONSchemaProps" {
        "enum": ATOMIC, "required": ATOMIC, "allOf": ATOMIC, "oneOf": ATOMIC, "anyOf": ATOMIC,
        "x-kubernetes-list-map-keys": ATOMIC,
        "x-kubernetes-validations": merge_map("rule", &["rule"]),
    }
    "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.WebhookConversion" {
        "conversionReviewVersions": ATOMIC,
    }
    "io.k8s.apimachinery.pkg.apis.meta.v1.APIGroup" {
        "versions": ATOMIC, "serverAddressByClientCIDRs": ATOMIC,
    }
    "io.k8s.apimachinery.pkg.apis.meta.v1.APIGroupList" { "groups": ATOMIC, }
    "io.k8s.apimachinery.pkg.apis.meta.v1.APIResource" {
        "shortNames": ATOMIC, "categories": ATOMIC,
    }
    "io.k8s.apimachinery.pkg.apis.meta.v1.APIResourceList" { "resources": ATOMIC, }
    "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions" { "dryRun": ATOMIC, }
    "io.k8s.apimachinery.pkg.apis.meta.v1.FieldSelectorRequirement" { "values": ATOMIC, }
    "io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector" { "matchExpressions": ATOMIC, }
    "io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelectorRequirement" { "values": ATOMIC, }
    "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta" {
        "ownerReferences": merge_map("uid", &["uid"]), "finalizers": MERGE_SET,
        "managedFields": ATOMIC,
    }
    "io.k8s.apimachinery.pkg.apis.meta.v1.StatusDetails" { "causes": ATOMIC, }
};
