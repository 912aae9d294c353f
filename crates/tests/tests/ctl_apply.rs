//! `rkube ctl apply -f` of an upstream-style manifest round-trips through `get -o yaml`.

use std::process::Command;

use rkube_tests::{rkube_bin, Cluster, Flavor};
use serde_json::Value;

const MANIFEST: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: nginx-deployment
  labels:
    app: nginx
spec:
  replicas: 3
  selector:
    matchLabels:
      app: nginx
  template:
    metadata:
      labels:
        app: nginx
    spec:
      containers:
      - name: nginx
        image: nginx:1.14.2
        ports:
        - containerPort: 80
---
apiVersion: v1
kind: Service
metadata:
  name: my-service
spec:
  selector:
    app.kubernetes.io/name: MyApp
  ports:
    - protocol: TCP
      port: 80
      targetPort: 9376
"#;

fn ctl(server: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(rkube_bin())
        .arg("ctl")
        .args(["--config", server])
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("run rkube ctl");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn apply_round_trips_through_get_yaml() {
    let cluster = Cluster::start(Flavor::Apiserver, 3, &[]).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("app.yaml");
    std::fs::write(&file, MANIFEST).unwrap();
    let server = cluster.api_access();
    let f = file.to_str().unwrap();

    let (ok, out, err) = ctl(&server, &["apply", "-f", f]);
    assert!(ok, "apply failed: {err}");
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        vec![
            "deployment.apps/nginx-deployment created",
            "service/my-service created"
        ]
    );
    let (ok, out, err) = ctl(&server, &["apply", "-f", dir.path().to_str().unwrap()]);
    assert!(ok, "second apply failed: {err}");
    assert!(
        out.contains("deployment.apps/nginx-deployment unchanged"),
        "{out}"
    );

    let (ok, yaml, err) = ctl(
        &server,
        &["get", "deployment", "nginx-deployment", "-o", "yaml"],
    );
    assert!(ok, "get failed: {err}");
    let got: Value = serde_yaml_ng::from_str(&yaml).unwrap();
    let want: Value = serde_yaml_ng::from_str(MANIFEST.split("---").next().unwrap()).unwrap();
    assert_eq!(got["spec"]["replicas"], want["spec"]["replicas"]);
    assert_eq!(got["spec"]["selector"], want["spec"]["selector"]);
    assert_eq!(got["metadata"]["labels"], want["metadata"]["labels"]);
    assert_eq!(
        got["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.14.2"
    );
    assert_eq!(
        got["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"],
        80
    );
    assert!(got["metadata"]["uid"].is_string() && got["metadata"]["resourceVersion"].is_string());

    // A changed manifest applies as an update; a dropped label is removed.
    let changed = MANIFEST.replacen("replicas: 3", "replicas: 5", 1).replacen(
        "  labels:\n    app: nginx\nspec:",
        "spec:",
        1,
    );
    std::fs::write(&file, changed).unwrap();
    let (ok, out, err) = ctl(&server, &["apply", "-f", f]);
    assert!(
        ok && out.contains("deployment.apps/nginx-deployment configured"),
        "{out}{err}"
    );
    let (_, yaml, _) = ctl(&server, &["get", "deploy/nginx-deployment", "-o", "json"]);
    let got: Value = serde_json::from_str(&yaml).unwrap();
    assert_eq!(got["spec"]["replicas"], 5);
    assert!(
        got["metadata"]["labels"].get("app").is_none(),
        "label kept: {}",
        got["metadata"]["labels"]
    );

    let (ok, table, _) = ctl(&server, &["get", "svc"]);
    assert!(
        ok && table.lines().next().unwrap().starts_with("NAME") && table.contains("my-service"),
        "{table}"
    );
    let (ok, _, err) = ctl(&server, &["delete", "-f", f]);
    assert!(ok, "{err}");
    let (ok, _, err) = ctl(&server, &["get", "svc", "my-service"]);
    assert!(!ok && err.contains("not found"), "{err}");
}
