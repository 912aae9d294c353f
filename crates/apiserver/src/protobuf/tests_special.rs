//! The types whose JSON is not their protobuf shape: micro times, int-or-strings, raw JSON
//! and nested envelopes, managed fields, `ExtraValue` lists and apiextensions' schema unions.

use prost_reflect::Value as Proto;
use serde_json::json;

use super::decode;
use super::tests::{bad_request, body, int_or_string, list, m, map, msg, s};
use crate::error::Error;

const META: &str = "k8s.io.apimachinery.pkg.apis.meta.v1.";
const APIEXT: &str = "k8s.io.apiextensions_apiserver.pkg.apis.apiextensions.v1.";
const RAW: &str = "k8s.io.apimachinery.pkg.runtime.RawExtension";
const CORE: &str = "k8s.io.api.core.v1.";
const INT_OR_STRING: &str = "k8s.io.apimachinery.pkg.util.intstr.IntOrString";

fn named(name: &str) -> Proto {
    m(
        &format!("{META}ObjectMeta"),
        vec![("name", s(name)), ("namespace", s(""))],
    )
}

#[test]
fn lease_micro_times_keep_microseconds_and_pointer_zeros() {
    let spec = m(
        "k8s.io.api.coordination.v1.LeaseSpec",
        vec![
            ("holderIdentity", s("")),
            ("leaseDurationSeconds", Proto::I32(15)),
            ("acquireTime", m(&format!("{META}MicroTime"), vec![])),
            (
                "renewTime",
                m(
                    &format!("{META}MicroTime"),
                    vec![
                        ("seconds", Proto::I64(1_709_210_096)),
                        ("nanos", Proto::I32(123_456_789)),
                    ],
                ),
            ),
        ],
    );
    let lease = msg(
        "k8s.io.api.coordination.v1.Lease",
        vec![("metadata", named("leader")), ("spec", spec)],
    );
    let got = decode(&body("coordination.k8s.io/v1", "Lease", &lease));
    let want = json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": "leader"},
        "spec": {
            "holderIdentity": "",
            "leaseDurationSeconds": 15,
            "renewTime": "2024-02-29T12:34:56.123456Z",
        },
    });
    assert_eq!(got.ok(), Some(want));
}

fn revision(raw: Vec<u8>) -> prost_reflect::DynamicMessage {
    msg(
        "k8s.io.api.apps.v1.ControllerRevision",
        vec![
            ("metadata", named("web-1")),
            ("data", m(RAW, vec![("raw", Proto::Bytes(raw.into()))])),
            ("revision", Proto::I64(1)),
        ],
    )
}

#[test]
fn raw_extensions_hold_json_or_a_nested_protobuf_object() {
    let got = decode(&body(
        "apps/v1",
        "ControllerRevision",
        &revision(br#"{"spec":{"replicas":2}}"#.to_vec()),
    ));
    assert_eq!(
        got.ok().and_then(|v| v.get("data").cloned()),
        Some(json!({"spec": {"replicas": 2}}))
    );

    let config_map = msg(
        "k8s.io.api.core.v1.ConfigMap",
        vec![
            ("metadata", named("blob")),
            (
                "binaryData",
                map(vec![("bin", Proto::Bytes(vec![0, 1, 254].into()))]),
            ),
        ],
    );
    let nested = body("v1", "ConfigMap", &config_map);
    let got = decode(&body("apps/v1", "ControllerRevision", &revision(nested)));
    let want = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "blob"},
        "binaryData": {"bin": "AAH+"},
    });
    assert_eq!(got.ok().and_then(|v| v.get("data").cloned()), Some(want));
}

#[test]
fn raw_extensions_that_are_not_json_name_their_field() {
    let got = decode(&body(
        "apps/v1",
        "ControllerRevision",
        &revision(b"{oops".to_vec()),
    ));
    match got {
        Err(Error::BadRequest(message)) => assert!(
            message.starts_with(
                "the protobuf body of apps/v1 ControllerRevision is invalid: data.raw: is not JSON"
            ),
            "{message}"
        ),
        other => panic!("want BadRequest, got {other:?}"),
    }
}

#[test]
fn envelopes_nested_too_deep_are_refused() {
    let mut raw = br#"{}"#.to_vec();
    for _ in 0..12 {
        raw = body("apps/v1", "ControllerRevision", &revision(raw));
    }
    match decode(&raw) {
        Err(Error::BadRequest(message)) => {
            assert!(message.contains("nest more than 8 deep"), "{message}")
        }
        other => panic!("want BadRequest, got {other:?}"),
    }
}

#[test]
fn managed_fields_and_extra_values() {
    let entry = m(
        &format!("{META}ManagedFieldsEntry"),
        vec![
            ("manager", s("kubectl")),
            ("operation", s("Update")),
            ("fieldsType", s("FieldsV1")),
            (
                "fieldsV1",
                m(
                    &format!("{META}FieldsV1"),
                    vec![("Raw", Proto::Bytes(br#"{"f:data":{}}"#.to_vec().into()))],
                ),
            ),
        ],
    );
    let metadata = m(
        &format!("{META}ObjectMeta"),
        vec![("managedFields", list(vec![entry]))],
    );
    let extra = map(vec![(
        "scopes",
        m(
            "k8s.io.api.authorization.v1.ExtraValue",
            vec![("items", list(vec![s("read"), s("write")]))],
        ),
    )]);
    let spec = m(
        "k8s.io.api.authorization.v1.SubjectAccessReviewSpec",
        vec![("user", s("ana")), ("extra", extra)],
    );
    let review = msg(
        "k8s.io.api.authorization.v1.SubjectAccessReview",
        vec![("metadata", metadata), ("spec", spec)],
    );
    let got = decode(&body(
        "authorization.k8s.io/v1",
        "SubjectAccessReview",
        &review,
    ));
    let want = json!({
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "metadata": {"managedFields": [{
            "manager": "kubectl",
            "operation": "Update",
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:data": {}},
        }]},
        "spec": {"user": "ana", "extra": {"scopes": ["read", "write"]}},
    });
    assert_eq!(got.ok(), Some(want));
}

#[test]
fn json_schema_props_take_their_json_names_and_union_forms() {
    let props = |fields| m(&format!("{APIEXT}JSONSchemaProps"), fields);
    let schema = props(vec![
        ("type", s("object")),
        ("ref", s("#/definitions/x")),
        ("maximum", Proto::F64(10.5)),
        ("xKubernetesPreserveUnknownFields", Proto::Bool(false)),
        ("xKubernetesEmbeddedResource", Proto::Bool(false)),
        (
            "default",
            m(
                &format!("{APIEXT}JSON"),
                vec![("raw", Proto::Bytes(br#"{"a":1}"#.to_vec().into()))],
            ),
        ),
        (
            "additionalProperties",
            m(
                &format!("{APIEXT}JSONSchemaPropsOrBool"),
                vec![("allows", Proto::Bool(false))],
            ),
        ),
        (
            "items",
            m(
                &format!("{APIEXT}JSONSchemaPropsOrArray"),
                vec![("schema", props(vec![("type", s("string"))]))],
            ),
        ),
    ]);
    let validation = m(
        &format!("{APIEXT}CustomResourceValidation"),
        vec![("openAPIV3Schema", schema)],
    );
    let version = m(
        &format!("{APIEXT}CustomResourceDefinitionVersion"),
        vec![
            ("name", s("v1")),
            ("served", Proto::Bool(true)),
            ("schema", validation),
        ],
    );
    let spec = m(
        &format!("{APIEXT}CustomResourceDefinitionSpec"),
        vec![
            ("group", s("example.com")),
            ("versions", list(vec![version])),
        ],
    );
    let crd = msg(
        &format!("{APIEXT}CustomResourceDefinition"),
        vec![("metadata", named("widgets.example.com")), ("spec", spec)],
    );
    let got = decode(&body(
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition",
        &crd,
    ));
    let want_schema = json!({
        "type": "object",
        "$ref": "#/definitions/x",
        "maximum": 10.5,
        "x-kubernetes-preserve-unknown-fields": false,
        "default": {"a": 1},
        "additionalProperties": false,
        "items": {"type": "string"},
    });
    assert_eq!(
        got.ok().and_then(|v| v
            .pointer("/spec/versions/0/schema/openAPIV3Schema")
            .cloned()),
        Some(want_schema)
    );
}

#[test]
fn values_json_cannot_hold_name_their_field() {
    let service = |target: Proto| {
        let port = m(
            &format!("{CORE}ServicePort"),
            vec![("port", Proto::I32(80)), ("targetPort", target)],
        );
        let spec = m(
            &format!("{CORE}ServiceSpec"),
            vec![("ports", list(vec![port]))],
        );
        msg(&format!("{CORE}Service"), vec![("spec", spec)])
    };
    let bad_type = m(INT_OR_STRING, vec![("type", Proto::I64(7))]);
    let message = bad_request(&body("v1", "Service", &service(bad_type)));
    assert_eq!(
        message,
        "the protobuf body of v1 Service is invalid: spec.ports[0].targetPort: \
         IntOrString type 7 is neither 0 (int) nor 1 (string)"
    );
    let good = decode(&body("v1", "Service", &service(int_or_string(Some(0), ""))));
    assert_eq!(
        good.ok()
            .and_then(|v| v.pointer("/spec/ports/0/targetPort").cloned()),
        Some(json!(0))
    );
}
