//! The example provider in Python (`examples/cloud-provider-python/`): the conformance
//! suite, then load balancers and routes for a cluster, with its plugin process killed on
//! the way.

use std::path::Path;
use std::time::Duration;

use client::{Api, PatchParams};
use k8s_openapi::api::core::v1::{Node, Service};
use rkube_proto::cloudprovider as cp;
use rkube_tests::cloud_conformance::{self, InstancesFixture};
use rkube_tests::fake_kubelet::FakeKubelet;
use rkube_tests::objects::fake_node;
use rkube_tests::{eventually, Cluster, Flavor, FAST_CM_LEASE, FAST_SCHEDULER_LEASE};
use serde_json::json;

/// A process the test started, killed and reaped when dropped.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn example_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/cloud-provider-python")
}

/// The Python stubs of the protocol, generated into `dir` with grpcio-tools.
fn generate_python_stubs(dir: &Path) {
    let protos = Path::new(env!("CARGO_MANIFEST_DIR")).join("../proto/proto");
    let out = std::process::Command::new(rkube_tests::kubectl::python())
        .args(["-m", "grpc_tools.protoc", "-I"])
        .arg(&protos)
        .arg(format!("--python_out={}", dir.display()))
        .arg(format!("--grpc_python_out={}", dir.display()))
        .arg("cloudprovider.proto")
        .output()
        .expect("run python (set RKUBE_PYTHON to a python with grpcio-tools)");
    assert!(
        out.status.success(),
        "protoc: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn python_state(path: &Path) {
    let state = json!({
        "machines": {"n1": {"zone": "a", "state": "running"}, "n2": {"zone": "b", "state": "shutdown"}},
        "pool": ["198.51.100.10", "198.51.100.11", "198.51.100.12", "198.51.100.13"],
        "loadBalancers": {},
    });
    std::fs::write(path, serde_json::to_vec(&state).unwrap()).unwrap();
}

fn balancers(state: &Path) -> serde_json::Map<String, serde_json::Value> {
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(state).unwrap()).unwrap();
    v["loadBalancers"].as_object().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_python_provider_passes_the_suite() {
    let dir = tempfile::tempdir().unwrap();
    generate_python_stubs(dir.path());
    let state = dir.path().join("state.json");
    python_state(&state);
    let socket = dir.path().join("py.sock");
    let _provider = Child(
        std::process::Command::new(rkube_tests::kubectl::python())
            .arg(example_dir().join("provider.py"))
            .arg("--generated")
            .arg(dir.path())
            .arg("--socket")
            .arg(&socket)
            .arg("--state")
            .arg(&state)
            .stdin(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    eventually(Duration::from_secs(30), "the provider's socket", || async {
        socket.exists().then_some(())
    })
    .await;
    let p = cloud_conformance::identity(
        &socket,
        &[
            cp::Capability::Instances,
            cp::Capability::LoadBalancer,
            cp::Capability::Routes,
        ],
    )
    .await;
    assert_eq!(p.name(), "example-python");
    let fixture = InstancesFixture {
        running: "n1",
        shutdown: "n2",
        gone: "n3",
    };
    cloud_conformance::instances(&p, &fixture).await;
    cloud_conformance::load_balancer(&p).await;
    assert!(
        balancers(&state).is_empty(),
        "the suite leaves no balancer behind"
    );
}

/// The pid of the plugin process: the Python interpreter running with `state`, not the
/// cloud-controller-manager whose arguments also name it.
fn plugin_pid(state: &Path) -> Option<i32> {
    let state = state.to_str()?;
    cloud_conformance::find_pid(|args| {
        args.first().is_some_and(|a| a.contains("python")) && args.iter().any(|a| a == state)
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn load_balancer_services_get_addresses_from_the_provider_and_give_them_back() {
    let cluster = Cluster::start(
        Flavor::Server,
        1,
        &[FAST_SCHEDULER_LEASE, FAST_CM_LEASE].concat(),
    )
    .await;
    let client = cluster.api_client();
    let nodes = Api::<Node>::all(client.clone());
    for n in ["n1", "n2"] {
        nodes
            .create(&fake_node(n, "8", "16Gi", json!({})))
            .await
            .unwrap();
    }
    let _kubelet = FakeKubelet::start(client.clone(), &["n1", "n2"], Duration::from_millis(200));
    let gen = cluster.dir.path().join("python");
    std::fs::create_dir_all(&gen).unwrap();
    generate_python_stubs(&gen);
    let state = cluster.dir.path().join("state.json");
    python_state(&state);
    let config = cluster.config_for("ccm", "system:cloud-controller-manager", &[]);
    let python = rkube_tests::kubectl::python();
    let provider = example_dir().join("provider.py");
    let plugin = cloud_conformance::plugin_flags(
        &python,
        &[
            provider.to_str().unwrap(),
            "--generated",
            gen.to_str().unwrap(),
            "--state",
            state.to_str().unwrap(),
        ],
    );
    let _ccm = cloud_conformance::start_manager(
        cluster.dir.path(),
        "ccm",
        &config,
        &plugin,
        &[
            "--node-monitor-period-ms",
            "300",
            "--route-reconciliation-period-ms",
            "300",
        ],
    );
    let services = Api::<Service>::namespaced(client.clone(), "default");
    let lb = |name: &str| -> Service {
        serde_json::from_value(
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"type": "LoadBalancer", "selector": {"app": name}, "ports": [{"port": 80}]}}),
        )
        .unwrap()
    };
    services.create(&lb("web")).await.unwrap();
    let web_ip = eventually(Duration::from_secs(30), "an address for web", || async {
        cloud_conformance::ingress_ip(&services.get("web").await.ok()?)
    })
    .await;
    assert!(web_ip.starts_with("198.51.100."), "{web_ip}");
    let web = services.get("web").await.unwrap();
    assert!(web
        .metadata
        .finalizers
        .iter()
        .flatten()
        .any(|f| f == "service.kubernetes.io/load-balancer-cleanup"));
    let uid = web.metadata.uid.clone().unwrap();
    assert_eq!(balancers(&state)[&uid]["backends"], json!(["n1", "n2"]));

    // A node that is no longer Ready stops being a backend.
    drop(_kubelet);
    let _k1 = FakeKubelet::start(client.clone(), &["n1"], Duration::from_millis(200));
    let not_ready = json!({"status": {"conditions": [{"type": "Ready", "status": "False", "reason": "KubeletStopped"}]}});
    nodes
        .patch_status("n2", PatchParams::Strategic, &not_ready)
        .await
        .unwrap();
    eventually(
        Duration::from_secs(30),
        "n2 out of web's backends",
        || async { (balancers(&state).get(&uid)?["backends"] == json!(["n1"])).then_some(()) },
    )
    .await;

    // The plugin dies: it is started again, and the next Service converges.
    let pid = plugin_pid(&state).expect("the plugin process");
    let killed = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    services.create(&lb("api")).await.unwrap();
    let api_ip = eventually(
        Duration::from_secs(60),
        "an address for api after the plugin restarted",
        || async { cloud_conformance::ingress_ip(&services.get("api").await.ok()?) },
    )
    .await;
    assert_ne!(api_ip, web_ip);
    assert_ne!(plugin_pid(&state), Some(pid), "a new plugin process");
    assert_eq!(
        balancers(&state).len(),
        2,
        "one balancer per Service, none twice"
    );

    // Deleting a Service deletes its balancer first.
    services.delete("web", None).await.unwrap();
    eventually(
        Duration::from_secs(30),
        "web and its balancer gone",
        || async {
            (services.get_opt("web").await.ok()?.is_none() && !balancers(&state).contains_key(&uid))
                .then_some(())
        },
    )
    .await;
    assert_eq!(balancers(&state).len(), 1);

    // Every node's pod CIDR is routed to it, and the node says its network is available;
    // a node deleted loses its route.
    let cidr_of = |n: &Node| n.spec.as_ref().and_then(|s| s.pod_cidr.clone());
    let wanted = eventually(
        Duration::from_secs(30),
        "pod CIDRs for both nodes",
        || async {
            let (a, b) = (nodes.get("n1").await.ok()?, nodes.get("n2").await.ok()?);
            Some(json!({"n1": cidr_of(&a)?, "n2": cidr_of(&b)?}))
        },
    )
    .await;
    eventually(
        Duration::from_secs(30),
        "a route to each node's pod CIDR",
        || async { (routes_by_node(&state) == wanted).then_some(()) },
    )
    .await;
    let n1 = nodes.get("n1").await.unwrap();
    let available = n1
        .status
        .iter()
        .flat_map(|s| s.conditions.iter().flatten())
        .any(|c| {
            c.type_ == "NetworkUnavailable"
                && c.status == "False"
                && c.reason.as_deref() == Some("RouteCreated")
        });
    assert!(available, "{:?}", n1.status);
    nodes.delete("n2", None).await.unwrap();
    eventually(Duration::from_secs(30), "n2's route gone", || async {
        (routes_by_node(&state) == json!({"n1": wanted["n1"]})).then_some(())
    })
    .await;
}

/// The routes in the provider's state, as {node: cidr}.
fn routes_by_node(state: &Path) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(state).unwrap()).unwrap();
    let mut out = serde_json::Map::new();
    for r in v["routes"]["kubernetes"]
        .as_object()
        .into_iter()
        .flat_map(|m| m.values())
    {
        out.insert(
            r["node"].as_str().unwrap_or_default().to_string(),
            r["cidr"].clone(),
        );
    }
    serde_json::Value::Object(out)
}
