//! The envelope: every served group's kinds resolve to their messages, and malformed
//! bodies, truncated messages and kinds not served are bad requests, never panics.

use prost_reflect::prost::Message;
use prost_reflect::{DynamicMessage, Value as Proto};
use serde_json::json;

use super::tests::{bad_request, body, deployment, m, msg, s};
use super::{decode, pool, MAGIC};

const CORE: &str = "k8s.io.api.core.v1.";

/// A kind of every served group version, and the message it is decoded as.
const SERVED_KINDS: &[(&str, &str, &str)] = &[
    ("v1", "Pod", "k8s.io.api.core.v1.Pod"),
    ("v1", "Namespace", "k8s.io.api.core.v1.Namespace"),
    ("apps/v1", "Deployment", "k8s.io.api.apps.v1.Deployment"),
    ("batch/v1", "CronJob", "k8s.io.api.batch.v1.CronJob"),
    (
        "coordination.k8s.io/v1",
        "Lease",
        "k8s.io.api.coordination.v1.Lease",
    ),
    (
        "discovery.k8s.io/v1",
        "EndpointSlice",
        "k8s.io.api.discovery.v1.EndpointSlice",
    ),
    ("autoscaling/v1", "Scale", "k8s.io.api.autoscaling.v1.Scale"),
    (
        "autoscaling/v2",
        "HorizontalPodAutoscaler",
        "k8s.io.api.autoscaling.v2.HorizontalPodAutoscaler",
    ),
    ("policy/v1", "Eviction", "k8s.io.api.policy.v1.Eviction"),
    (
        "rbac.authorization.k8s.io/v1",
        "RoleBinding",
        "k8s.io.api.rbac.v1.RoleBinding",
    ),
    (
        "certificates.k8s.io/v1",
        "CertificateSigningRequest",
        "k8s.io.api.certificates.v1.CertificateSigningRequest",
    ),
    (
        "authorization.k8s.io/v1",
        "SelfSubjectAccessReview",
        "k8s.io.api.authorization.v1.SelfSubjectAccessReview",
    ),
    (
        "authentication.k8s.io/v1",
        "SelfSubjectReview",
        "k8s.io.api.authentication.v1.SelfSubjectReview",
    ),
    (
        "authentication.k8s.io/v1beta1",
        "SelfSubjectReview",
        "k8s.io.api.authentication.v1beta1.SelfSubjectReview",
    ),
    (
        "admissionregistration.k8s.io/v1",
        "ValidatingWebhookConfiguration",
        "k8s.io.api.admissionregistration.v1.ValidatingWebhookConfiguration",
    ),
    (
        "scheduling.k8s.io/v1",
        "PriorityClass",
        "k8s.io.api.scheduling.v1.PriorityClass",
    ),
    (
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition",
        "k8s.io.apiextensions_apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinition",
    ),
    (
        "meta.k8s.io/v1",
        "DeleteOptions",
        "k8s.io.apimachinery.pkg.apis.meta.v1.DeleteOptions",
    ),
    (
        "apps/v1",
        "DeleteOptions",
        "k8s.io.apimachinery.pkg.apis.meta.v1.DeleteOptions",
    ),
    (
        "autoscaling/v2",
        "DeleteOptions",
        "k8s.io.apimachinery.pkg.apis.meta.v1.DeleteOptions",
    ),
];

#[test]
fn every_served_group_resolves_its_kinds() {
    let pool = pool().expect("descriptors load");
    for &(api_version, kind, message) in SERVED_KINDS {
        let desc = super::kind_message(pool, api_version, kind)
            .unwrap_or_else(|e| panic!("{api_version} {kind}: {e}"));
        assert_eq!(desc.full_name(), message);
        let got = decode(&body(api_version, kind, &DynamicMessage::new(desc)));
        assert_eq!(
            got.ok(),
            Some(json!({"apiVersion": api_version, "kind": kind})),
            "{api_version} {kind}"
        );
    }
}

#[test]
fn malformed_bodies_are_bad_requests() {
    let good = body("apps/v1", "Deployment", &deployment());
    assert!(bad_request(b"{\"kind\":\"Pod\"}").contains("expected prefix [107 56 115 0]"));
    assert!(bad_request(b"k8s").contains("does not appear to be a protobuf message"));
    assert_eq!(bad_request(b""), "empty data");
    assert_eq!(bad_request(MAGIC), "empty body");
    for cut in [good.len() - 1, good.len() / 2, 6] {
        let message = bad_request(&good[..cut]);
        assert!(
            message.contains("could not be decoded"),
            "cut at {cut}: {message}"
        );
    }
    let encoded = deployment().encode_to_vec();
    let type_meta = m(
        "k8s.io.apimachinery.pkg.runtime.TypeMeta",
        vec![("apiVersion", s("apps/v1")), ("kind", s("Deployment"))],
    );
    let unknown = msg(
        "k8s.io.apimachinery.pkg.runtime.Unknown",
        vec![
            ("typeMeta", type_meta),
            (
                "raw",
                Proto::Bytes(encoded[..encoded.len() - 2].to_vec().into()),
            ),
        ],
    );
    let mut inner_cut = MAGIC.to_vec();
    inner_cut.extend(unknown.encode_to_vec());
    let message = bad_request(&inner_cut);
    assert!(
        message.starts_with("the protobuf body of apps/v1 Deployment could not be decoded: "),
        "{message}"
    );
}

#[test]
fn unknown_kinds_are_bad_requests() {
    let empty = msg(&format!("{CORE}Pod"), vec![]);
    let cases = [
        ("apps/v1", "Frobnicator"),
        ("example.com/v1", "Pod"),
        ("v1", "PodSpec"),
        ("v1", "Pod.spec"),
        ("apps/v9", "Deployment"),
    ];
    for (api_version, kind) in cases {
        let message = bad_request(&body(api_version, kind, &empty));
        assert_eq!(
            message,
            format!("no kind {kind:?} is registered for version {api_version:?}")
        );
    }
    assert!(bad_request(&body("v1", "", &empty)).contains("'Kind' is missing"));
    assert!(bad_request(&body("", "Pod", &empty)).contains("'apiVersion' is missing"));
}
