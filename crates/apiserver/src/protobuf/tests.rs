//! Protobuf bodies built as Kubernetes' serializer writes them — every non-pointer scalar
//! on the wire, zero or not — read back as the JSON kubectl would have sent instead.

use std::collections::HashMap;

use prost_reflect::prost::Message;
use prost_reflect::{DynamicMessage, MapKey, Value as Proto};
use serde_json::{json, Value};

use super::{decode, pool, MAGIC};
use crate::error::Error;

const META: &str = "k8s.io.apimachinery.pkg.apis.meta.v1.";
const CORE: &str = "k8s.io.api.core.v1.";
const APPS: &str = "k8s.io.api.apps.v1.";
const QUANTITY: &str = "k8s.io.apimachinery.pkg.api.resource.Quantity";
const INT_OR_STRING: &str = "k8s.io.apimachinery.pkg.util.intstr.IntOrString";

/// A message of the named type with the given fields set (set means written to the wire).
pub(super) fn msg(name: &str, fields: Vec<(&str, Proto)>) -> DynamicMessage {
    let pool = pool().expect("descriptors load");
    let desc = pool
        .get_message_by_name(name)
        .unwrap_or_else(|| panic!("no message {name}"));
    let mut m = DynamicMessage::new(desc);
    for (field, value) in fields {
        m.try_set_field_by_name(field, value)
            .unwrap_or_else(|e| panic!("{name}.{field}: {e}"));
    }
    m
}

pub(super) fn m(name: &str, fields: Vec<(&str, Proto)>) -> Proto {
    Proto::Message(msg(name, fields))
}

pub(super) fn s(v: &str) -> Proto {
    Proto::String(v.to_string())
}

pub(super) fn list(items: Vec<Proto>) -> Proto {
    Proto::List(items)
}

pub(super) fn map(entries: Vec<(&str, Proto)>) -> Proto {
    let entries: HashMap<MapKey, Proto> = entries
        .into_iter()
        .map(|(k, v)| (MapKey::String(k.to_string()), v))
        .collect();
    Proto::Map(entries)
}

fn quantity(v: &str) -> Proto {
    m(QUANTITY, vec![("string", s(v))])
}

pub(super) fn int_or_string(int: Option<i32>, string: &str) -> Proto {
    m(
        INT_OR_STRING,
        vec![
            ("type", Proto::I64(i64::from(int.is_none()))),
            ("intVal", Proto::I32(int.unwrap_or(0))),
            ("strVal", s(string)),
        ],
    )
}

/// Go's zero `metav1.Time`: an empty message on the wire.
fn zero_time() -> Proto {
    m(&format!("{META}Time"), vec![])
}

/// ObjectMeta as Go writes it: every string field, zero or not, and the zero time.
fn object_meta(name: &str, extra: Vec<(&str, Proto)>) -> Proto {
    let mut fields = vec![
        ("name", s(name)),
        ("generateName", s("")),
        ("namespace", s("")),
        ("uid", s("")),
        ("resourceVersion", s("")),
        ("generation", Proto::I64(0)),
        ("creationTimestamp", zero_time()),
    ];
    fields.extend(extra);
    m(&format!("{META}ObjectMeta"), fields)
}

/// The body kubectl sends: magic, then `runtime.Unknown` around the encoded object.
pub(super) fn body(api_version: &str, kind: &str, object: &DynamicMessage) -> Vec<u8> {
    let type_meta = m(
        "k8s.io.apimachinery.pkg.runtime.TypeMeta",
        vec![("apiVersion", s(api_version)), ("kind", s(kind))],
    );
    let unknown = msg(
        "k8s.io.apimachinery.pkg.runtime.Unknown",
        vec![
            ("typeMeta", type_meta),
            ("raw", Proto::Bytes(object.encode_to_vec().into())),
            ("contentEncoding", s("")),
            ("contentType", s("")),
        ],
    );
    let mut out = MAGIC.to_vec();
    out.extend(unknown.encode_to_vec());
    out
}

pub(super) fn bad_request(body: &[u8]) -> String {
    match decode(body) {
        Err(Error::BadRequest(message)) => message,
        other => panic!("want BadRequest, got {other:?}"),
    }
}

#[test]
fn self_subject_access_review_from_kubectl_auth_can_i() {
    let attributes = m(
        "k8s.io.api.authorization.v1.ResourceAttributes",
        vec![
            ("namespace", s("default")),
            ("verb", s("create")),
            ("group", s("")),
            ("version", s("")),
            ("resource", s("pods")),
            ("subresource", s("")),
            ("name", s("")),
        ],
    );
    let review = msg(
        "k8s.io.api.authorization.v1.SelfSubjectAccessReview",
        vec![
            ("metadata", object_meta("", vec![])),
            (
                "spec",
                m(
                    "k8s.io.api.authorization.v1.SelfSubjectAccessReviewSpec",
                    vec![("resourceAttributes", attributes)],
                ),
            ),
            (
                "status",
                m(
                    "k8s.io.api.authorization.v1.SubjectAccessReviewStatus",
                    vec![("allowed", Proto::Bool(false)), ("reason", s(""))],
                ),
            ),
        ],
    );
    let got = decode(&body(
        "authorization.k8s.io/v1",
        "SelfSubjectAccessReview",
        &review,
    ));
    let want = json!({
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "metadata": {},
        "spec": {"resourceAttributes": {"namespace": "default", "verb": "create", "resource": "pods"}},
        "status": {"allowed": false},
    });
    assert_eq!(got.ok(), Some(want));
}

#[test]
fn token_request_from_kubectl_create_token() {
    let request = msg(
        "k8s.io.api.authentication.v1.TokenRequest",
        vec![
            (
                "metadata",
                object_meta("builder", vec![("namespace", s("ci"))]),
            ),
            (
                "spec",
                m(
                    "k8s.io.api.authentication.v1.TokenRequestSpec",
                    vec![
                        ("audiences", list(vec![s("https://kubernetes.default.svc")])),
                        ("expirationSeconds", Proto::I64(600)),
                    ],
                ),
            ),
            (
                "status",
                m(
                    "k8s.io.api.authentication.v1.TokenRequestStatus",
                    vec![("token", s("")), ("expirationTimestamp", zero_time())],
                ),
            ),
        ],
    );
    let got = decode(&body("authentication.k8s.io/v1", "TokenRequest", &request));
    let want = json!({
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "metadata": {"name": "builder", "namespace": "ci"},
        "spec": {"audiences": ["https://kubernetes.default.svc"], "expirationSeconds": 600},
        "status": {"token": ""},
    });
    assert_eq!(got.ok(), Some(want));
}

fn web_container() -> Proto {
    let port = m(
        &format!("{CORE}ContainerPort"),
        vec![
            ("name", s("")),
            ("hostPort", Proto::I32(0)),
            ("containerPort", Proto::I32(8080)),
            ("protocol", s("TCP")),
            ("hostIP", s("")),
        ],
    );
    let env = m(
        &format!("{CORE}EnvVar"),
        vec![("name", s("MODE")), ("value", s("prod"))],
    );
    let resources = m(
        &format!("{CORE}ResourceRequirements"),
        vec![
            (
                "limits",
                map(vec![
                    ("cpu", quantity("500m")),
                    ("memory", quantity("128Mi")),
                ]),
            ),
            ("requests", map(vec![("cpu", quantity("250m"))])),
        ],
    );
    m(
        &format!("{CORE}Container"),
        vec![
            ("name", s("web")),
            ("image", s("nginx:1.27")),
            ("args", list(vec![s("--port=8080"), s("")])),
            ("ports", list(vec![port])),
            ("env", list(vec![env])),
            ("resources", resources),
            ("imagePullPolicy", s("")),
            ("stdin", Proto::Bool(false)),
        ],
    )
}

pub(super) fn deployment() -> DynamicMessage {
    let labels = || map(vec![("app", s("web"))]);
    let pod_spec = m(
        &format!("{CORE}PodSpec"),
        vec![
            ("containers", list(vec![web_container()])),
            ("restartPolicy", s("")),
            ("automountServiceAccountToken", Proto::Bool(false)),
            ("hostNetwork", Proto::Bool(false)),
        ],
    );
    let template = m(
        &format!("{CORE}PodTemplateSpec"),
        vec![
            ("metadata", object_meta("", vec![("labels", labels())])),
            ("spec", pod_spec),
        ],
    );
    let strategy = m(
        &format!("{APPS}DeploymentStrategy"),
        vec![
            ("type", s("RollingUpdate")),
            (
                "rollingUpdate",
                m(
                    &format!("{APPS}RollingUpdateDeployment"),
                    vec![
                        ("maxUnavailable", int_or_string(Some(0), "")),
                        ("maxSurge", int_or_string(None, "25%")),
                    ],
                ),
            ),
        ],
    );
    let created = m(
        &format!("{META}Time"),
        vec![
            ("seconds", Proto::I64(1_709_210_096)),
            ("nanos", Proto::I32(0)),
        ],
    );
    let spec = m(
        &format!("{APPS}DeploymentSpec"),
        vec![
            ("replicas", Proto::I32(0)),
            (
                "selector",
                m(
                    &format!("{META}LabelSelector"),
                    vec![("matchLabels", labels())],
                ),
            ),
            ("template", template),
            ("strategy", strategy),
            ("minReadySeconds", Proto::I32(0)),
            ("paused", Proto::Bool(false)),
        ],
    );
    let status = m(
        &format!("{APPS}DeploymentStatus"),
        vec![
            ("observedGeneration", Proto::I64(0)),
            ("replicas", Proto::I32(0)),
        ],
    );
    msg(
        &format!("{APPS}Deployment"),
        vec![
            (
                "metadata",
                object_meta(
                    "web",
                    vec![("creationTimestamp", created), ("labels", labels())],
                ),
            ),
            ("spec", spec),
            ("status", status),
        ],
    )
}

fn deployment_json() -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "web",
            "creationTimestamp": "2024-02-29T12:34:56Z",
            "labels": {"app": "web"},
        },
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "automountServiceAccountToken": false,
                    "containers": [{
                        "name": "web",
                        "image": "nginx:1.27",
                        "args": ["--port=8080", ""],
                        "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                        "env": [{"name": "MODE", "value": "prod"}],
                        "resources": {
                            "limits": {"cpu": "500m", "memory": "128Mi"},
                            "requests": {"cpu": "250m"},
                        },
                    }],
                },
            },
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "25%"},
            },
        },
        "status": {},
    })
}

#[test]
fn deployment_from_kubectl_create_deployment() {
    let got = decode(&body("apps/v1", "Deployment", &deployment()));
    let got = got.unwrap_or_else(|e| panic!("decode: {e}"));
    assert_eq!(got, deployment_json());
    let typed: k8s_openapi::api::apps::v1::Deployment =
        serde_json::from_value(got).unwrap_or_else(|e| panic!("not a Deployment: {e}"));
    assert_eq!(typed.spec.replicas, Some(0));
}

#[test]
fn secret_data_is_base64() {
    let secret = msg(
        &format!("{CORE}Secret"),
        vec![
            ("metadata", object_meta("db", vec![])),
            (
                "data",
                map(vec![
                    ("password", Proto::Bytes(b"s3cr3t\x00\xff"[..].into())),
                    ("empty", Proto::Bytes(Default::default())),
                ]),
            ),
            ("stringData", map(vec![("user", s("admin"))])),
            ("type", s("Opaque")),
            ("immutable", Proto::Bool(false)),
        ],
    );
    let got = decode(&body("v1", "Secret", &secret));
    let want = json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "db"},
        "data": {"password": "czNjcjN0AP8=", "empty": ""},
        "stringData": {"user": "admin"},
        "type": "Opaque",
        "immutable": false,
    });
    assert_eq!(got.ok(), Some(want));
}

#[test]
fn eviction_keeps_a_zero_grace_period() {
    let eviction = msg(
        "k8s.io.api.policy.v1.Eviction",
        vec![
            (
                "metadata",
                object_meta("web-0", vec![("namespace", s("prod"))]),
            ),
            (
                "deleteOptions",
                m(
                    &format!("{META}DeleteOptions"),
                    vec![
                        ("gracePeriodSeconds", Proto::I64(0)),
                        ("dryRun", list(vec![s("All")])),
                    ],
                ),
            ),
        ],
    );
    let got = decode(&body("policy/v1", "Eviction", &eviction));
    let want = json!({
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": {"name": "web-0", "namespace": "prod"},
        "deleteOptions": {"gracePeriodSeconds": 0, "dryRun": ["All"]},
    });
    assert_eq!(got.ok(), Some(want));
}
