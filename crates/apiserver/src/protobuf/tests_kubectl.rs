//! Bodies kubectl 1.33 sent to a recording server (`testdata/*.bin`), read back as the JSON
//! the same commands send with `--dry-run=client -o json` (less `creationTimestamp: null`,
//! which Go writes for the zero time and the protobuf body leaves empty).

use serde_json::{json, Value};

use super::decode;

fn decoded(body: &[u8]) -> Value {
    decode(body).unwrap_or_else(|e| panic!("decode: {e}"))
}

#[test]
fn kubectl_create_deployment() {
    let got = decoded(include_bytes!("testdata/create-deployment.bin"));
    let want = json!({
        "kind": "Deployment",
        "apiVersion": "apps/v1",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [{
                        "name": "nginx",
                        "image": "nginx:1.27",
                        "ports": [{"containerPort": 8080}],
                        "resources": {},
                    }],
                },
            },
            "strategy": {},
        },
        "status": {},
    });
    assert_eq!(got, want);
}

#[test]
fn kubectl_create_secret_generic() {
    let got = decoded(include_bytes!("testdata/create-secret.bin"));
    let want = json!({
        "kind": "Secret",
        "apiVersion": "v1",
        "metadata": {"name": "db"},
        "data": {"password": "czNjcjN0"},
    });
    assert_eq!(got, want);
}

#[test]
fn kubectl_auth_can_i() {
    let got = decoded(include_bytes!("testdata/auth-can-i.bin"));
    let want = json!({
        "kind": "SelfSubjectAccessReview",
        "apiVersion": "authorization.k8s.io/v1",
        "metadata": {},
        "spec": {"resourceAttributes": {"namespace": "default", "verb": "create", "resource": "pods"}},
        "status": {},
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
        "metadata": {"name": "default", "namespace": "default"},
        "spec": {"expirationSeconds": 600},
        "status": {},
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

#[test]
#[ignore = "TEMPORARY"]
fn temporary_decode_dir() {
    let dir = std::env::var("PB_DIR").unwrap();
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "bin")
            && p.file_name().unwrap().to_str().unwrap().starts_with("body")
        {
            let out = match decode(&std::fs::read(&p).unwrap()) {
                Ok(v) => v,
                Err(e) => json!({"ERROR": e.to_string()}),
            };
            std::fs::write(
                p.with_extension("decoded.json"),
                serde_json::to_vec_pretty(&out).unwrap(),
            )
            .unwrap();
        }
    }
}
