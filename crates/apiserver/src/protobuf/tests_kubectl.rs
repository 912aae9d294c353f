//! Bodies kubectl 1.33 sent to a recording server (`testdata/*.bin`). Where kubectl can
//! print the object itself (`--dry-run=client -o json`, beside the body as `*.json`), the
//! decoded body must equal that JSON, less the `creationTimestamp: null` Go writes for the
//! zero time that the protobuf body leaves empty.

use serde_json::{json, Value};

use super::decode;

fn decoded(body: &[u8]) -> Value {
    decode(body).unwrap_or_else(|e| panic!("decode: {e}"))
}

/// `kubectl create …` bodies and kubectl's JSON of the same object.
const CREATED: &[(&str, &[u8], &str)] = &[
    (
        "deployment web --image=nginx:1.27 --port=8080 --replicas=0",
        include_bytes!("testdata/create-deployment.bin"),
        include_str!("testdata/create-deployment.json"),
    ),
    (
        "configmap cfg --from-literal=a=b --from-file=blob=<binary>",
        include_bytes!("testdata/create-configmap.bin"),
        include_str!("testdata/create-configmap.json"),
    ),
    (
        "secret generic db --from-literal=password=s3cr3t",
        include_bytes!("testdata/create-secret.bin"),
        include_str!("testdata/create-secret.json"),
    ),
    (
        "namespace team-a",
        include_bytes!("testdata/create-namespace.bin"),
        include_str!("testdata/create-namespace.json"),
    ),
    (
        "serviceaccount builder",
        include_bytes!("testdata/create-serviceaccount.bin"),
        include_str!("testdata/create-serviceaccount.json"),
    ),
    (
        "job once --image=busybox -- echo hi",
        include_bytes!("testdata/create-job.bin"),
        include_str!("testdata/create-job.json"),
    ),
    (
        "cronjob nightly --image=busybox --schedule='*/5 * * * *' -- date",
        include_bytes!("testdata/create-cronjob.bin"),
        include_str!("testdata/create-cronjob.json"),
    ),
    (
        "role reader --verb=get,list --resource=pods,deployments.apps",
        include_bytes!("testdata/create-role.bin"),
        include_str!("testdata/create-role.json"),
    ),
    (
        "rolebinding rb --role=reader --user=ana --serviceaccount=default:builder",
        include_bytes!("testdata/create-rolebinding.bin"),
        include_str!("testdata/create-rolebinding.json"),
    ),
    (
        "service clusterip svc --tcp=80:8080",
        include_bytes!("testdata/create-service.bin"),
        include_str!("testdata/create-service.json"),
    ),
    (
        "poddisruptionbudget pdb --selector=app=web --min-available=50%",
        include_bytes!("testdata/create-poddisruptionbudget.bin"),
        include_str!("testdata/create-poddisruptionbudget.json"),
    ),
];

fn without_null_creation_timestamps(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(k, v)| !(k == "creationTimestamp" && v.is_null()))
                .map(|(k, v)| (k, without_null_creation_timestamps(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(
            items
                .into_iter()
                .map(without_null_creation_timestamps)
                .collect(),
        ),
        other => other,
    }
}

#[test]
fn kubectl_create_bodies_read_as_kubectls_json() {
    for (command, body, printed) in CREATED {
        let want: Value = serde_json::from_str(printed)
            .unwrap_or_else(|e| panic!("kubectl create {command}: {e}"));
        let got = decode(body).unwrap_or_else(|e| panic!("kubectl create {command}: {e}"));
        assert_eq!(
            got,
            without_null_creation_timestamps(want),
            "kubectl create {command}"
        );
    }
}

#[test]
fn kubectl_auth_can_i() {
    let got = decoded(include_bytes!("testdata/auth-can-i.bin"));
    let want = json!({
        "kind": "SelfSubjectAccessReview",
        "apiVersion": "authorization.k8s.io/v1",
        "metadata": {},
        "spec": {"resourceAttributes": {"namespace": "default", "verb": "create", "resource": "pods"}},
        "status": {"allowed": false},
    });
    assert_eq!(got, want);
}

#[test]
fn kubectl_auth_whoami() {
    let got = decoded(include_bytes!("testdata/auth-whoami.bin"));
    let want = json!({
        "kind": "SelfSubjectReview",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {},
        "status": {"userInfo": {}},
    });
    assert_eq!(got, want);
}

#[test]
fn kubectl_create_token() {
    let got = decoded(include_bytes!("testdata/create-token.bin"));
    let want = json!({
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {},
        "spec": {"expirationSeconds": 600},
        "status": {"token": ""},
    });
    assert_eq!(got, want);
}

/// Prints how long decoding kubectl's Deployment takes; a measurement, not a check.
#[test]
#[ignore = "benchmark: run with --ignored --nocapture to print decode timings"]
fn decode_time_of_a_deployment() {
    let body = include_bytes!("testdata/create-deployment.bin");
    let started = std::time::Instant::now();
    decoded(body);
    println!(
        "first decode (loads the descriptors): {:?}",
        started.elapsed()
    );
    let rounds = 2_000u32;
    let started = std::time::Instant::now();
    for _ in 0..rounds {
        decoded(body);
    }
    println!(
        "decode of a {}-byte Deployment: {:?} each",
        body.len(),
        started.elapsed() / rounds
    );
}
