//! A cluster for cluster DNS tests and benchmarks: three members, one node agent (its pods
//! on their own network, on the process runtime or on containerd; userspace proxy) whose
//! DNS server forwards to a resolver the test runs and answers only loopback, the node and
//! the pod network; the names every runtime's pods must resolve; and ways to run commands
//! in its pods.

use std::time::{Duration, Instant};

use client::{Api, Client};
use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use serde_json::json;

use crate::containerd::Containerd;
use crate::dns::{Upstream, OUTSIDE_IP};
use crate::node_agent::NodeAgent;
use crate::pod_lifecycle::ctl;
use crate::Cluster;

/// The namespace of the pods.
pub const NS: &str = "shop";

/// Where the node's pods run, and what differs with it. Each runtime has its own node name
/// and Service range, so that the tests of both can run at once on one host: two nodes of
/// one name would share the proxy's interface, and two proxies on one ClusterIP its port.
pub struct PodRuntime {
    /// The node's name.
    pub node: &'static str,
    /// The Service range: `kubernetes` is .1, `kube-dns` .10.
    pub service_cidr: &'static str,
    /// The pods' network: the cluster's pod CIDR, which the DNS server answers.
    pub pod_cidr: String,
    /// The image of the pods (the process runtime runs host binaries whatever it says).
    pub image: &'static str,
    /// `rkube node` flags that select the runtime and its pod network.
    flags: Vec<String>,
}

impl PodRuntime {
    /// The process runtime, its pods on a bridge of the test's own.
    pub fn process() -> PodRuntime {
        let bridge = format!("rkd{}", std::process::id() % 100_000);
        PodRuntime {
            node: "dns-w1",
            service_cidr: "10.187.0.0/24",
            pod_cidr: "10.117.0.0/16".into(),
            image: "busybox",
            flags: vec![
                "--pod-network".into(),
                "cni".into(),
                "--cni-bridge".into(),
                bridge,
            ],
        }
    }

    /// The CRI runtime on `containerd`, its pods on the bridge of containerd's CNI
    /// configuration (that subnet is the cluster's pod CIDR, so the node's is the same).
    pub fn cri(containerd: &Containerd) -> PodRuntime {
        let socket = containerd.socket().to_string_lossy().into_owned();
        PodRuntime {
            node: "dns-cri1",
            service_cidr: "10.188.0.0/24",
            pod_cidr: containerd.pod_subnet().into(),
            image: crate::containerd::IMAGE,
            flags: vec![
                "--runtime".into(),
                "cri".into(),
                "--cri-socket".into(),
                socket,
            ],
        }
    }

    /// The `n`th address of the Service range.
    pub fn service_ip(&self, n: u32) -> String {
        let net: std::net::Ipv4Addr = self
            .service_cidr
            .split('/')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        std::net::Ipv4Addr::from(u32::from(net) + n).to_string()
    }
}

/// Creates the object `v` in `ns`.
pub async fn create<K>(client: &Client, ns: &str, v: serde_json::Value) -> K
where
    K: client::ApiObject<Scope = k8s_openapi::NamespaceResourceScope>,
{
    let obj: K = serde_json::from_value(v).unwrap();
    Api::<K>::namespaced(client.clone(), ns)
        .create(&obj)
        .await
        .expect("create")
}

/// Waits until `nslookup ARGS` in the client pod prints every one of `want`.
pub async fn resolves(cluster: &Cluster, args: &[&str], want: &[&str]) -> String {
    let mut cmd = vec!["/bin/busybox", "nslookup"];
    cmd.extend_from_slice(args);
    shows(&cluster.api_access(), "client", &cmd, want).await
}

/// Waits until `cmd` in the client pod prints every one of `want`.
pub async fn shows(access: &str, pod: &str, cmd: &[&str], want: &[&str]) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = tokio::task::block_in_place(|| in_pod_output(access, pod, cmd));
        if want.iter().all(|w| out.contains(w)) {
            return out;
        }
        assert!(
            Instant::now() < deadline,
            "{cmd:?} never showed {want:?}; last: {out}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `cmd` run in `pod`: what it printed, whether it failed or not.
pub fn in_pod_output(access: &str, pod: &str, cmd: &[&str]) -> String {
    let mut args = vec!["exec", "-n", NS, pod, "--"];
    args.extend_from_slice(cmd);
    let out = ctl(access, &args);
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

pub struct Setup {
    pub cluster: Cluster,
    pub client: Client,
    pub node: NodeAgent,
    pub runtime: PodRuntime,
    _fake: crate::fake_kubelet::FakeKubelet,
    pub upstream: Upstream,
}

/// Starts the cluster and its node on the process runtime.
pub async fn start() -> Setup {
    start_on(PodRuntime::process()).await
}

/// Starts the cluster and its node on `runtime`.
pub async fn start_on(runtime: PodRuntime) -> Setup {
    let upstream = Upstream::start().await;
    let pods = runtime.pod_cidr.as_str();
    let (cluster, client, fake) = crate::fake_kubelet::cluster_with_nodes_and(
        3,
        &[],
        &[
            "--cluster-cidr",
            pods,
            "--service-cluster-ip-range",
            runtime.service_cidr,
            "--service-node-port-range",
            "31800-31999",
            "--endpoint-lease-ttl-seconds",
            "3",
        ],
    )
    .await;
    let up = upstream.addr.to_string();
    let mut flags: Vec<&str> = runtime.flags.iter().map(String::as_str).collect();
    // The userspace proxy: kube-dns's endpoint is the node's DNS server at the node's IP,
    // 127.0.0.1 here, where the nftables proxy's DNAT cannot send a pod's packets (the
    // kernel drops them as martians).
    flags.extend([
        "--proxy-mode",
        "userspace",
        "--dns-listen",
        "0.0.0.0:0",
        "--dns-upstream",
        &up,
        "--dns-allow",
        pods,
        "--cluster-cidr",
        pods,
    ]);
    let node = NodeAgent::start(&cluster.node_access(runtime.node), runtime.node, &flags);
    node.wait_ready(&client).await;
    Setup {
        cluster,
        client,
        node,
        runtime,
        _fake: fake,
        upstream,
    }
}

impl Setup {
    /// A pod on the node that sleeps, labelled app=web, with `extra` merged in.
    pub fn sleeper(&self, name: &str, extra: serde_json::Value) -> serde_json::Value {
        let mut v = json!({"metadata": {"name": name, "labels": {"app": "web"}},
            "spec": {"nodeName": self.runtime.node, "terminationGracePeriodSeconds": 1,
                "containers": [{"name": "c", "image": self.runtime.image,
                    "command": ["/bin/busybox", "sleep", "3600"]}]}});
        crate::objects::merge(&mut v, extra);
        v
    }

    /// Waits until pod `name` in [`NS`] is Ready; its IP.
    pub async fn ready_ip(&self, name: &str) -> String {
        let pods = Api::<Pod>::namespaced(self.client.clone(), NS);
        let p = crate::eventually(
            Duration::from_secs(60),
            &format!("{name} Ready"),
            || async { pods.get(name).await.ok().filter(crate::objects::pod_ready) },
        )
        .await;
        p.status.and_then(|s| s.pod_ip).unwrap_or_default()
    }
}

/// The namespace [`NS`] and what the lookups ask for: the Services `db` (a ClusterIP with
/// a named port), `web` (headless, selecting app=web) and `ext` (ExternalName for
/// `outside.example`); the pods `web-0` and `web-1` (hostname and subdomain `web`, as a
/// StatefulSet's) and `client`, where the lookups run. Returns without waiting for them.
pub async fn create_names(s: &Setup) {
    let client = &s.client;
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": NS}})).unwrap();
    Api::all(client.clone()).create(&ns).await.unwrap();
    let services = [
        json!({"metadata": {"name": "db"},
            "spec": {"ports": [{"name": "pg", "port": 5432}]}}),
        json!({"metadata": {"name": "web"},
            "spec": {"clusterIP": "None", "selector": {"app": "web"},
                "ports": [{"name": "http", "port": 8080}]}}),
        json!({"metadata": {"name": "ext"},
            "spec": {"type": "ExternalName", "externalName": "outside.example"}}),
    ];
    for v in services {
        create::<Service>(client, NS, v).await;
    }
    for name in ["web-0", "web-1"] {
        let v = s.sleeper(
            name,
            json!({"spec": {"hostname": name, "subdomain": "web"}}),
        );
        create::<Pod>(client, NS, v).await;
    }
    let v = s.sleeper("client", json!({"metadata": {"labels": {"app": "client"}}}));
    create::<Pod>(client, NS, v).await;
}

/// From inside the client pod, once the pods of [`create_names`] are Ready (on the pod
/// network): its resolv.conf names the kube-dns ClusterIP; Service, headless, per-pod
/// (hostname.subdomain), SRV, pod and ExternalName records resolve, and a name outside the
/// cluster through the upstream; the `db` Service's name is NXDOMAIN once it is deleted.
pub async fn check_lookups(s: &Setup) {
    let net: node::dns::IpNet = s.runtime.pod_cidr.parse().unwrap();
    let mut ips = Vec::new();
    for name in ["web-0", "web-1", "client"] {
        let ip = s.ready_ip(name).await;
        let on_net = ip
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| net.contains(&ip));
        assert!(on_net, "{name}'s IP {ip:?} is not on the pod network {net}");
        ips.push(ip);
    }
    resolv_conf(s).await;
    let cluster = &s.cluster;
    let db_ip = cluster_ip(&s.client, NS, "db").await;
    let api_ip = s.runtime.service_ip(1);
    resolves(cluster, &["db.shop.svc.cluster.local"], &[&db_ip]).await;
    resolves(cluster, &["db"], &[&db_ip]).await;
    resolves(cluster, &["kubernetes.default"], &[&api_ip]).await;
    resolves(cluster, &["web"], &[&ips[0], &ips[1]]).await;
    resolves(cluster, &["web-1.web.shop.svc.cluster.local"], &[&ips[1]]).await;
    let srv = ["-type=srv", "_pg._tcp.db.shop.svc.cluster.local"];
    resolves(cluster, &srv, &["5432", "db.shop.svc.cluster.local"]).await;
    let pod_name = format!("{}.shop.pod.cluster.local", ips[0].replace('.', "-"));
    resolves(cluster, &[&pod_name], &[&ips[0]]).await;
    let ext = ["outside.example", OUTSIDE_IP];
    resolves(cluster, &["ext.shop.svc.cluster.local"], &ext).await;
    resolves(cluster, &["outside.example"], &[OUTSIDE_IP]).await;

    // A deleted Service's name is gone.
    Api::<Service>::namespaced(s.client.clone(), NS)
        .delete("db", None)
        .await
        .unwrap();
    let deleted = Instant::now();
    resolves(cluster, &["db.shop.svc.cluster.local"], &["NXDOMAIN"]).await;
    eprintln!("NXDOMAIN {:?} after the delete", deleted.elapsed());
}

/// dnsPolicy ClusterFirst (the default): the client pod's resolver is the kube-dns
/// ClusterIP, with the cluster's search path.
async fn resolv_conf(s: &Setup) {
    let dns_ip = s.runtime.service_ip(10);
    let cat = ["/bin/busybox", "cat", "/etc/resolv.conf"];
    let conf = in_pod_output(&s.cluster.api_access(), "client", &cat);
    assert!(conf.contains(&format!("nameserver {dns_ip}\n")), "{conf}");
    let search = "search shop.svc.cluster.local svc.cluster.local cluster.local";
    assert!(conf.contains(search), "{conf}");
    assert!(conf.contains("options ndots:5"), "{conf}");
}

/// The ClusterIP of Service `ns/name`.
async fn cluster_ip(client: &Client, ns: &str, name: &str) -> String {
    let svc = Api::<Service>::namespaced(client.clone(), ns)
        .get(name)
        .await
        .unwrap_or_else(|e| panic!("Service {ns}/{name}: {e}"));
    svc.spec.and_then(|s| s.cluster_ip).unwrap_or_default()
}
