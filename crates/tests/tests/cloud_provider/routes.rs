//! Routes of the `local` provider across three machines (network namespaces on a bridge,
//! each with a pod behind it): the cloud-controller-manager, run in the member and dialing
//! the provider over mutual TLS, routes every node's pod CIDR,
//! each machine's node agent installs the routes to the other machines, and a pod on one
//! machine reaches a pod on another by its pod IP. Who may watch routes, and who may
//! change them, is attacked too.

use std::time::Duration;

use client::Api;
use controllers::cloud::plugin::Address;
use k8s_openapi::api::core::v1::Node;
use rkube_proto::cloudlocal as cl;
use rkube_proto::cloudprovider as cp;
use rkube_tests::eventually;
use rkube_tests::machines::Machines;

use rkube_tests::local_cloud::LocalCloud;

/// The routes the agent installed in `netns`, as "destination via gateway".
fn agent_routes(netns: &str) -> Vec<String> {
    let out = Machines::exec(netns, &["ip", "route", "show", "proto", "82"]).unwrap_or_default();
    let mut routes: Vec<String> = out
        .lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            (w.len() >= 3 && w[1] == "via").then(|| format!("{} via {}", w[0], w[2]))
        })
        .collect();
    routes.sort();
    routes
}

/// An HTTP GET from a pod's namespace: the status line's code, or why it failed.
fn get_from(netns: &str, url: &str) -> Result<String, String> {
    let script =
        format!("import urllib.request; print(urllib.request.urlopen('{url}', timeout=2).status)");
    Machines::exec(netns, &["python3", "-c", &script]).map(|s| s.trim().to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn machines_route_pod_traffic_through_the_local_providers_agents() {
    let mut machines = Machines::new(3);
    let cloud = LocalCloud::start(
        &mut machines,
        &["--route-reconciliation-period-ms", "300"],
        |dir| {
            vec![
                "--route-state".into(),
                dir.join("routes.json").display().to_string(),
            ]
        },
    )
    .await;
    let (url, pki, dir) = (&cloud.url, &cloud.cluster.pki, cloud.cluster.dir.path());
    let nodes = Api::<Node>::all(cloud.cluster.api_client());

    // Each machine has a route to the other two pod CIDRs, via their machines.
    let want = |i: usize| -> Vec<String> {
        let mut w: Vec<String> = machines
            .machines
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, m)| format!("{} via {}", m.pod_cidr, m.ip))
            .collect();
        w.sort();
        w
    };
    for (i, m) in machines.machines.iter().enumerate() {
        eventually(
            Duration::from_secs(30),
            "every machine's routes",
            || async { (agent_routes(&m.netns) == want(i)).then_some(()) },
        )
        .await;
    }

    // A pod on m1 reaches the pod on m3 by its pod IP, and the answer finds its way back.
    let (m1, m3) = (&machines.machines[0], &machines.machines[2]);
    let (p1, p3, ip3) = (
        m1.pod_netns.clone(),
        m3.pod_netns.clone(),
        m3.pod_ip.to_string(),
    );
    let python = std::path::PathBuf::from("python3");
    machines.spawn(
        &p3,
        dir,
        "pod-m3",
        &python,
        &["-m", "http.server", "8080", "--bind", &ip3],
    );
    let pod_url = format!("http://{ip3}:8080/");
    let code = eventually(
        Duration::from_secs(20),
        "m1's pod to reach m3's pod",
        || async { get_from(&p1, &pod_url).ok() },
    )
    .await;
    assert_eq!(code, "200");

    attacks(url, pki, dir).await;

    // m3's node deleted: its route goes from the other machines, and m1 no longer reaches
    // m3's pod.
    nodes.delete("m3", None).await.unwrap();
    let m1_ns = machines.machines[0].netns.clone();
    let m2 = &machines.machines[1];
    let only = |m: &rkube_tests::machines::Machine| format!("{} via {}", m.pod_cidr, m.ip);
    eventually(Duration::from_secs(30), "m3's route gone", || async {
        (agent_routes(&m1_ns) == vec![only(m2)]).then_some(())
    })
    .await;
    assert!(get_from(&p1, &pod_url).is_err(), "m3's pod still reachable");
}

/// A channel to the provider at `url` as `who`, or none if TLS lets it not connect.
async fn channel_as(url: &str, ca: &str, who: &pki::Issued) -> Option<tonic::transport::Channel> {
    let Some(Address::Tcp { tls, .. }) = Address::tcp(url, ca, &who.cert_pem, &who.key_pem) else {
        panic!("{url}: not an https address");
    };
    let endpoint = tonic::transport::Channel::from_shared(url.to_string()).ok()?;
    endpoint.tls_config(tls).ok()?.connect().await.ok()
}

/// A node may watch its own routes but not change any; a user who is not a node may not
/// watch them, and a certificate of another CA is not let in.
async fn attacks(url: &str, pki: &rkube_tests::pki::TestPki, dir: &std::path::Path) {
    let ca = pki.ca.cert_pem().to_string();
    let node = pki.issue("system:node:m1", &["system:nodes"], pki::Usage::Client, &[]);
    let ch = channel_as(url, &ca, &node).await.expect("a node connects");
    let create = cp::CreateRouteRequest {
        cluster_name: "kubernetes".into(),
        name_hint: "evil".into(),
        route: Some(cp::Route {
            target_node: "m1".into(),
            destination_cidr: "0.0.0.0/0".into(),
            ..Default::default()
        }),
    };
    let created = cp::routes_client::RoutesClient::new(ch)
        .create_route(create)
        .await;
    assert_eq!(
        created.map(|_| ()).map_err(|s| s.code()),
        Err(tonic::Code::PermissionDenied),
        "a node changed a route"
    );
    let watch = |who: pki::Issued| {
        let ca = ca.clone();
        async move {
            let Some(ch) = channel_as(url, &ca, &who).await else {
                return Err(tonic::Code::Unavailable);
            };
            cl::node_agent_client::NodeAgentClient::new(ch)
                .watch_routes(cl::WatchRoutesRequest {})
                .await
                .map(|_| ())
                .map_err(|s| s.code())
        }
    };
    let eve = pki.issue("eve", &["system:masters"], pki::Usage::Client, &[]);
    assert_eq!(watch(eve).await, Err(tonic::Code::PermissionDenied));
    let posing = pki.issue("system:node:m2", &[], pki::Usage::Client, &[]);
    assert_eq!(
        watch(posing).await,
        Err(tonic::Code::PermissionDenied),
        "a node name without the group"
    );
    let foreign = rkube_tests::pki::TestPki::new(&dir.join("foreign"));
    let forged = foreign.issue("system:node:m1", &["system:nodes"], pki::Usage::Client, &[]);
    assert!(watch(forged).await.is_err(), "a foreign CA's node");
    assert_eq!(watch(node).await, Ok(()));
}
