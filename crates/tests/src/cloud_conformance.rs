//! The conformance suite of cloud provider plugins: what every provider must answer, and
//! answer the same when asked again (the controllers retry). A provider's test brings the
//! plugin up with a fixture of three machines and runs the parts it offers.

use controllers::cloud::plugin::{Address, CallPolicy, Plugin};
use rkube_proto::cloudprovider as cp;
use tonic::Code;

/// The machines the fixture of a provider must have.
pub struct InstancesFixture<'a> {
    /// A running machine, with its node's name.
    pub running: &'a str,
    /// A machine that is shut down.
    pub shutdown: &'a str,
    /// A node whose machine does not exist.
    pub gone: &'a str,
}

fn req(name: &str, provider_id: &str) -> cp::InstanceRequest {
    cp::InstanceRequest {
        node: Some(cp::Node {
            name: name.into(),
            provider_id: provider_id.into(),
            ..Default::default()
        }),
    }
}

async fn exists(p: &Plugin, r: cp::InstanceRequest) -> Result<bool, Code> {
    p.call("InstanceExists", r, |ch, r| async move {
        cp::instances_client::InstancesClient::new(ch)
            .instance_exists(r)
            .await
    })
    .await
    .map(|a| a.exists)
    .map_err(code)
}

async fn shutdown(p: &Plugin, r: cp::InstanceRequest) -> Result<bool, Code> {
    p.call("InstanceShutdown", r, |ch, r| async move {
        cp::instances_client::InstancesClient::new(ch)
            .instance_shutdown(r)
            .await
    })
    .await
    .map(|a| a.shutdown)
    .map_err(code)
}

async fn metadata(
    p: &Plugin,
    r: cp::InstanceRequest,
) -> Result<cp::InstanceMetadataResponse, Code> {
    p.call("InstanceMetadata", r, |ch, r| async move {
        cp::instances_client::InstancesClient::new(ch)
            .instance_metadata(r)
            .await
    })
    .await
    .map_err(code)
}

fn code(e: controllers::cloud::plugin::PluginError) -> Code {
    match e {
        controllers::cloud::plugin::PluginError::Call { status, .. } => status.code(),
        other => panic!("not a call error: {other}"),
    }
}

/// Identity: a name, protocol version 1, ready, and the capabilities it claims.
pub async fn identity(socket: &std::path::Path, capabilities: &[cp::Capability]) -> Plugin {
    identity_at(&Address::Unix(socket.into()), capabilities).await
}

/// [`identity`] of a plugin at any address.
pub async fn identity_at(addr: &Address, capabilities: &[cp::Capability]) -> Plugin {
    let p = Plugin::connect(addr, CallPolicy::default())
        .await
        .unwrap_or_else(|e| panic!("connecting to the plugin: {e}"));
    assert!(!p.info.name.is_empty(), "a provider has a name");
    assert_eq!(
        p.info.protocol_version,
        cp::ProtocolVersion::ProtocolVersion1 as i32
    );
    for c in capabilities {
        assert!(p.offers(*c), "{} offers {c:?}", p.info.name);
    }
    let probe = p
        .call("Probe", cp::ProbeRequest {}, |ch, r| async move {
            cp::identity_client::IdentityClient::new(ch).probe(r).await
        })
        .await
        .unwrap();
    assert!(probe.ready, "{} is ready", p.info.name);
    p
}

/// Instances: existence, shutdown and metadata of the fixture's machines, each asked twice,
/// by node name and by the providerID the provider gave.
pub async fn instances(p: &Plugin, f: &InstancesFixture<'_>) {
    for _ in 0..2 {
        assert_eq!(
            exists(p, req(f.running, "")).await,
            Ok(true),
            "{} exists",
            f.running
        );
        assert_eq!(
            exists(p, req(f.shutdown, "")).await,
            Ok(true),
            "{} exists",
            f.shutdown
        );
        assert_eq!(
            exists(p, req(f.gone, "")).await,
            Ok(false),
            "{} is gone",
            f.gone
        );
        assert_eq!(shutdown(p, req(f.running, "")).await, Ok(false));
        assert_eq!(shutdown(p, req(f.shutdown, "")).await, Ok(true));
    }
    let md = metadata(p, req(f.running, "")).await.unwrap();
    assert!(!md.provider_id.is_empty(), "a providerID for {}", f.running);
    assert_eq!(
        metadata(p, req(f.running, "")).await.unwrap(),
        md,
        "the same answer twice"
    );
    // A node renamed but with its providerID is the same machine.
    let by_id = metadata(p, req("renamed", &md.provider_id)).await.unwrap();
    assert_eq!(by_id.provider_id, md.provider_id);
    assert_eq!(exists(p, req("renamed", &md.provider_id)).await, Ok(true));
    assert_eq!(
        metadata(p, req(f.gone, "")).await.unwrap_err(),
        Code::NotFound
    );
    let no_node = cp::InstanceRequest { node: None };
    assert_eq!(exists(p, no_node).await.unwrap_err(), Code::InvalidArgument);
}

fn lb_request(uid: &str, name: &str) -> cp::LoadBalancerRequest {
    cp::LoadBalancerRequest {
        cluster_name: "conformance".into(),
        service: Some(cp::Service {
            namespace: "default".into(),
            name: name.into(),
            uid: uid.into(),
            ports: vec![cp::ServicePort {
                name: "http".into(),
                protocol: "TCP".into(),
                port: 80,
                node_port: 30080,
            }],
            external_traffic_policy: "Cluster".into(),
            ..Default::default()
        }),
        nodes: vec![cp::Node {
            name: "n1".into(),
            ready: true,
            ..Default::default()
        }],
    }
}

async fn ensure(p: &Plugin, r: cp::LoadBalancerRequest) -> cp::LoadBalancerStatus {
    p.call("EnsureLoadBalancer", r, |ch, r| async move {
        cp::load_balancer_client::LoadBalancerClient::new(ch)
            .ensure_load_balancer(r)
            .await
    })
    .await
    .unwrap()
}

async fn get(p: &Plugin, r: cp::LoadBalancerRequest) -> cp::GetLoadBalancerResponse {
    p.call("GetLoadBalancer", r, |ch, r| async move {
        cp::load_balancer_client::LoadBalancerClient::new(ch)
            .get_load_balancer(r)
            .await
    })
    .await
    .unwrap()
}

async fn delete(p: &Plugin, r: cp::LoadBalancerRequest) {
    p.call("EnsureLoadBalancerDeleted", r, |ch, r| async move {
        cp::load_balancer_client::LoadBalancerClient::new(ch)
            .ensure_load_balancer_deleted(r)
            .await
    })
    .await
    .unwrap();
}

/// LoadBalancer: a balancer per Service, the same address when ensured again, distinct
/// addresses for distinct Services, and deletes that may be repeated.
pub async fn load_balancer(p: &Plugin) {
    let (a, b) = (lb_request("conf-a", "a"), lb_request("conf-b", "b"));
    assert!(
        !get(p, a.clone()).await.exists,
        "no balancer before the first ensure"
    );
    let first = ensure(p, a.clone()).await;
    assert!(!first.ingress.is_empty(), "an address for the balancer");
    assert_eq!(
        ensure(p, a.clone()).await,
        first,
        "the same address when ensured again"
    );
    let got = get(p, a.clone()).await;
    assert!(got.exists);
    assert_eq!(got.status, Some(first.clone()));
    let other = ensure(p, b.clone()).await;
    assert_ne!(other, first, "two Services, two addresses");
    for r in [a.clone(), a.clone(), b.clone()] {
        delete(p, r).await;
    }
    assert!(!get(p, a).await.exists, "deleted");
    assert!(!get(p, b).await.exists, "deleted");
}

async fn routes(p: &Plugin, cluster: &str) -> Vec<cp::Route> {
    let r = cp::ListRoutesRequest {
        cluster_name: cluster.into(),
    };
    p.call("ListRoutes", r, |ch, r| async move {
        cp::routes_client::RoutesClient::new(ch)
            .list_routes(r)
            .await
    })
    .await
    .unwrap()
    .routes
}

/// Routes: a created route is listed once however often it is created, under the cluster
/// it was created for, and deletes may be repeated.
pub async fn routes_suite(p: &Plugin) {
    let route = cp::Route {
        name: "conf-n1".into(),
        target_node: "n1".into(),
        destination_cidr: "10.250.1.0/24".into(),
        ..Default::default()
    };
    let create = cp::CreateRouteRequest {
        cluster_name: "conformance".into(),
        name_hint: "conf-n1".into(),
        route: Some(route.clone()),
    };
    for _ in 0..2 {
        p.call("CreateRoute", create.clone(), |ch, r| async move {
            cp::routes_client::RoutesClient::new(ch)
                .create_route(r)
                .await
        })
        .await
        .unwrap();
    }
    let listed = routes(p, "conformance").await;
    assert_eq!(
        listed.len(),
        1,
        "one route however often created: {listed:?}"
    );
    assert_eq!(
        (
            listed[0].target_node.as_str(),
            listed[0].destination_cidr.as_str()
        ),
        ("n1", "10.250.1.0/24")
    );
    assert!(routes(p, "another-cluster").await.is_empty());
    let delete = cp::DeleteRouteRequest {
        cluster_name: "conformance".into(),
        route: Some(listed[0].clone()),
    };
    for _ in 0..2 {
        p.call("DeleteRoute", delete.clone(), |ch, r| async move {
            cp::routes_client::RoutesClient::new(ch)
                .delete_route(r)
                .await
        })
        .await
        .unwrap();
    }
    assert!(routes(p, "conformance").await.is_empty());
}

/// `--cloud-plugin-exec` flags that start `plugin` with `args` (each passed with
/// `--cloud-plugin-arg`), for `rkube cloud-controller-manager` or `rkube server`.
pub fn plugin_flags(plugin: &std::path::Path, args: &[&str]) -> Vec<String> {
    let mut out = vec![
        "--cloud-plugin-exec".to_string(),
        plugin.display().to_string(),
    ];
    for a in args {
        out.extend(["--cloud-plugin-arg".to_string(), a.to_string()]);
    }
    out
}

/// [`plugin_flags`] for the built-in `local` provider with `inventory`, and `extra`
/// arguments of it.
pub fn local_provider_flags(inventory: &std::path::Path, extra: &[&str]) -> Vec<String> {
    let inventory = inventory.display().to_string();
    let mut args = vec!["cloud-provider", "local", "--inventory", &inventory];
    args.extend(extra);
    plugin_flags(&crate::rkube_bin(), &args)
}

/// Starts `rkube cloud-controller-manager` as `name` with the client configuration
/// `config`, the `plugin` flags, no Lease and no secure port, and `extra` flags.
pub fn start_manager(
    log_dir: &std::path::Path,
    name: &str,
    config: &std::path::Path,
    plugin: &[String],
    extra: &[&str],
) -> crate::component::Component {
    let config = config.display().to_string();
    let mut args: Vec<&str> = vec![
        "cloud-controller-manager",
        "--config",
        &config,
        "--leader-elect=false",
        "--secure-port",
        "0",
    ];
    args.extend(plugin.iter().map(String::as_str));
    args.extend(extra);
    crate::component::Component::start(log_dir, name, &args)
}

/// The pid of the process whose arguments `matches` accepts (argv[0] first), if any.
pub fn find_pid(matches: impl Fn(&[String]) -> bool) -> Option<i32> {
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: i32 = e.file_name().to_str()?.parse().ok()?;
        let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
        let args: Vec<String> = cmd
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        matches(&args).then_some(pid)
    })
}

/// The first ingress IP of a LoadBalancer Service.
pub fn ingress_ip(s: &k8s_openapi::api::core::v1::Service) -> Option<String> {
    s.status
        .as_ref()?
        .load_balancer
        .as_ref()?
        .ingress
        .as_ref()?
        .first()?
        .ip
        .clone()
}

/// Writes a `local` provider inventory of `machines` (name, zone, state) to `path`,
/// whole, then renamed: the provider never reads half a file.
pub fn write_inventory(path: &std::path::Path, machines: &[(&str, &str, &str)]) {
    let machines: Vec<_> = machines
        .iter()
        .map(|(name, zone, state)| serde_json::json!({"name": name, "zone": zone, "state": state}))
        .collect();
    let text = serde_json::to_string(&serde_json::json!({"region": "home", "machines": machines}))
        .expect("an inventory");
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).expect("write the inventory");
    std::fs::rename(&tmp, path).expect("rename the inventory");
}

/// Writes `text` to `dir/name`; returns the path.
pub fn write(dir: &std::path::Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write a file");
    p
}

/// What the volumes part of the suite asks a provider for.
pub struct VolumesFixture<'a> {
    /// A node whose machine can hold volumes, with its providerID.
    pub node: &'a str,
    pub provider_id: &'a str,
    /// StorageClass parameters for the provider.
    pub parameters: &'a [(&'a str, &'a str)],
}

async fn volumes_call<R, T, F, Fut>(p: &Plugin, what: &'static str, r: R, f: F) -> Result<T, Code>
where
    R: Clone + Send + 'static,
    F: Fn(cp::volumes_client::VolumesClient<tonic::transport::Channel>, tonic::Request<R>) -> Fut
        + Clone
        + Send
        + 'static,
    Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>> + Send,
    T: Send + 'static,
{
    p.call(what, r, move |ch, r| {
        let f = f.clone();
        async move { f(cp::volumes_client::VolumesClient::new(ch), r).await }
    })
    .await
    .map_err(code)
}

/// Volumes: a volume is created once however often it is asked for by the same name, on
/// the node preferred, with at least the size asked; attach answers the same publish
/// context twice; detach and delete may be repeated; a request without a name is refused.
pub async fn volumes_suite(p: &Plugin, f: &VolumesFixture<'_>) {
    let topology = cp::Topology {
        segments: [("kubernetes.io/hostname".to_string(), f.node.to_string())].into(),
    };
    let create = cp::CreateVolumeRequest {
        name: "pvc-conformance".into(),
        capacity_range: Some(cp::CapacityRange {
            required_bytes: 16 << 20,
            limit_bytes: 0,
        }),
        parameters: f
            .parameters
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        accessibility_requirements: Some(cp::TopologyRequirement {
            requisite: vec![topology.clone()],
            preferred: vec![topology.clone()],
        }),
        volume_mode: "Filesystem".into(),
    };
    let mut made = Vec::new();
    for _ in 0..2 {
        let v = volumes_call(p, "CreateVolume", create.clone(), |mut c, r| async move {
            c.create_volume(r).await
        })
        .await
        .unwrap()
        .volume
        .expect("CreateVolume answers a volume");
        made.push(v);
    }
    assert_eq!(
        made[0].volume_id, made[1].volume_id,
        "the same volume twice"
    );
    assert!(!made[0].volume_id.is_empty());
    assert!(made[0].accessible_topology.contains(&topology), "{made:?}");
    let attach = cp::AttachRequest {
        volume_id: made[0].volume_id.clone(),
        node_id: f.provider_id.into(),
        readonly: false,
        volume_context: made[0].volume_context.clone(),
    };
    let mut contexts = Vec::new();
    for _ in 0..2 {
        let a = volumes_call(p, "Attach", attach.clone(), |mut c, r| async move {
            c.attach(r).await
        })
        .await
        .unwrap();
        contexts.push(a.publish_context);
    }
    assert!(!contexts[0].is_empty(), "attach says where the volume is");
    assert_eq!(contexts[0], contexts[1], "the same attachment twice");
    let detach = cp::DetachRequest {
        volume_id: made[0].volume_id.clone(),
        node_id: f.provider_id.into(),
    };
    let delete = cp::DeleteVolumeRequest {
        volume_id: made[0].volume_id.clone(),
    };
    for _ in 0..2 {
        volumes_call(p, "Detach", detach.clone(), |mut c, r| async move {
            c.detach(r).await
        })
        .await
        .unwrap();
    }
    for _ in 0..2 {
        volumes_call(p, "DeleteVolume", delete.clone(), |mut c, r| async move {
            c.delete_volume(r).await
        })
        .await
        .unwrap();
    }
    let unnamed = cp::CreateVolumeRequest {
        name: String::new(),
        ..create
    };
    let refused = volumes_call(p, "CreateVolume", unnamed, |mut c, r| async move {
        c.create_volume(r).await
    })
    .await;
    assert_eq!(refused.unwrap_err(), Code::InvalidArgument);
}
