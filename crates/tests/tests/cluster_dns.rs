//! Cluster DNS from inside pods, on both runtimes (the process runtime with its own pod
//! network, and containerd over CRI; userspace proxy either way): Service, headless, SRV,
//! per-pod, pod and ExternalName records; a name outside the cluster forwarded to a
//! resolver the test runs; NXDOMAIN once a Service is deleted; the pod's resolv.conf. On
//! the process runtime also the `kubernetes` Service used by an in-cluster client, and a
//! server outside the cluster reached through the node's masquerade rule. Attacks: a zone
//! transfer and a query from a network the server does not serve are REFUSED. Needs root.

use std::time::Duration;

use client::{Api, Client};
use hickory_server::proto::op::ResponseCode;
use hickory_server::proto::rr::RecordType;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use rkube_tests::cluster_dns::{
    check_lookups, create, create_names, shows, start, start_on, PodRuntime, Setup, NS,
};
use rkube_tests::containerd::Containerd;
use rkube_tests::dns::{query, OUTSIDE_IP};
use rkube_tests::eventually;
use rkube_tests::machines::Machines;
use rkube_tests::netns::is_root;
use rkube_tests::pod_lifecycle::allow_privileged;
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn pods_resolve_cluster_names_and_reach_the_api() {
    assert!(
        is_root(),
        "cluster DNS pods need their own network: run as root"
    );
    let mut s = start().await;
    let client = &s.client.clone();
    create_names(&s).await;
    // Privileged: the Python client pod runs the host's Python, which lies in a directory
    // an unprivileged pod of the process runtime does not see.
    allow_privileged(client, NS).await;
    let rb = json!({"metadata": {"name": "default-view"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
        "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": NS}]});
    create::<k8s_openapi::api::rbac::v1::RoleBinding>(client, NS, rb).await;
    let privileged = json!({"metadata": {"labels": {"app": "py"}},
        "spec": {"containers": [{"name": "c", "image": "busybox",
            "command": ["/bin/busybox", "sleep", "3600"],
            "securityContext": {"privileged": true}}]}});
    create::<Pod>(client, NS, s.sleeper("py", privileged)).await;

    check_lookups(&s).await;
    s.ready_ip("py").await;
    attacks(&s).await;
    in_cluster_client(&mut s).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pods_on_containerd_resolve_cluster_names() {
    assert!(is_root(), "containerd needs root");
    // Dropped after the node agent, so the agent cannot start containers on the way out.
    let containerd = Containerd::start();
    // The lookups check that the pods' addresses come from containerd's CNI bridge.
    let s = start_on(PodRuntime::cri(&containerd)).await;
    create_names(&s).await;
    check_lookups(&s).await;
}

/// The address of the node's DNS server, from its Node.
async fn dns_server(client: &Client, node: &str) -> std::net::SocketAddr {
    let n = Api::<Node>::all(client.clone()).get(node).await.unwrap();
    n.metadata.annotations.unwrap()["dns.rkube.io/server"]
        .parse()
        .unwrap()
}

/// A Python client inside the pod, configured only by what Kubernetes gives a pod (the
/// Service variables, the token and the CA), lists pods through `kubernetes.default.svc`;
/// with a member killed, it still does.
async fn in_cluster_client(s: &mut Setup) {
    let Ok(python) = std::env::var("RKUBE_PYTHON") else {
        panic!("RKUBE_PYTHON names the Python with the kubernetes client (.ci/run sets it)");
    };
    let script = "from kubernetes import client, config\n\
        c = client.Configuration(); config.load_incluster_config(client_configuration=c)\n\
        c.host = 'https://kubernetes.default.svc'\n\
        try:\n    pods = client.CoreV1Api(client.ApiClient(c)).list_namespaced_pod('shop')\n\
        except client.exceptions.ApiException as e:\n    print('status', e.status, e.body); raise\n\
        print('pods:', sorted(p.metadata.name for p in pods.items))";
    let cmd = [python.as_str(), "-c", script];
    let want = ["pods:", "'client'", "'web-0'"];
    shows(&s.cluster.api_access(), "py", &cmd, &want).await;
    s.cluster.kill(0);
    let killed = s.cluster.members[0].client.port().to_string();
    let slices = Api::<EndpointSlice>::namespaced(s.cluster.api_client_of(1), "default");
    eventually(
        Duration::from_secs(30),
        "the killed member out of kubernetes",
        || async {
            let l = slices.list(&Default::default()).await.ok()?;
            let ports: Vec<String> = l
                .items
                .iter()
                .filter(|s| {
                    s.metadata
                        .name
                        .as_deref()
                        .is_some_and(|n| n.starts_with("kubernetes"))
                })
                .flat_map(|s| s.ports.iter().flatten().filter_map(|p| p.port))
                .map(|p| p.to_string())
                .collect();
            (!ports.is_empty() && !ports.contains(&killed)).then_some(())
        },
    )
    .await;
    // Members 2 and 3 are still reachable through the client's flags.
    let access = s.cluster.api_access();
    shows(&access, "py", &cmd, &want).await;
}

/// A pod reaches a server outside the cluster (a machine that has no route to the pods):
/// its traffic leaves with the node's address.
async fn egress(s: &Setup, m: &mut Machines) {
    let www = tempfile::tempdir().unwrap();
    std::fs::write(www.path().join("index.html"), "hello from outside").unwrap();
    let netns = m.machines[0].netns.clone();
    let root = www.path().to_string_lossy().to_string();
    let busybox = std::path::Path::new("/bin/busybox");
    m.spawn(
        &netns,
        www.path(),
        "httpd",
        busybox,
        &["httpd", "-f", "-p", "8080", "-h", &root],
    );
    // busybox's wget crashes on this host; nc sends the request.
    let get = format!(
        "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | /bin/busybox nc -w 2 {} 8080",
        m.machines[0].ip
    );
    let cmd = ["/bin/busybox", "sh", "-c", &get];
    shows(
        &s.cluster.api_access(),
        "client",
        &cmd,
        &["hello from outside"],
    )
    .await;
}

async fn attacks(s: &Setup) {
    let server = dns_server(&s.client, s.runtime.node).await;
    // From the node itself (allowed): answers, but no zone transfer.
    let (code, answers) = query(
        server,
        "kubernetes.default.svc.cluster.local.",
        RecordType::A,
    )
    .await
    .unwrap();
    assert_eq!(
        (code, answers),
        (ResponseCode::NoError, vec![s.runtime.service_ip(1)])
    );
    let (code, _) = query(server, "cluster.local.", RecordType::AXFR)
        .await
        .unwrap();
    assert_eq!(code, ResponseCode::Refused);
    // From a network it does not serve: REFUSED, for cluster names and for recursion.
    let mut m = Machines::new(1);
    let at = format!("{}:{}", m.host_ip, server.port());
    for name in ["kubernetes.default.svc.cluster.local", "outside.example"] {
        let out = std::process::Command::new("ip")
            .args(["netns", "exec", &m.machines[0].netns])
            .args(["/bin/busybox", "nslookup", name, &at])
            .output()
            .unwrap();
        let out = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.contains("REFUSED"),
            "{name} from {}: {out}",
            m.machines[0].ip
        );
        assert!(
            !out.contains(&s.runtime.service_ip(1)) && !out.contains(OUTSIDE_IP),
            "{out}"
        );
    }
    egress(s, &mut m).await;
    let _ = &s.upstream;
    let _ = &s.node;
    let slices = Api::<EndpointSlice>::namespaced(s.client.clone(), "kube-system");
    let dns = slices.get("kube-dns").await.unwrap();
    let ep = &dns.endpoints.unwrap()[0];
    assert_eq!(ep.node_name.as_deref(), Some(s.runtime.node));
}
