//! A cluster on machines (network namespaces on a bridge) with the `local` provider: one
//! `rkube server` member whose cloud-controller-manager dials the provider over mutual TLS
//! on the bridge, the provider itself, a node agent on every machine with its node's
//! certificate, and a Node per machine with its pod CIDR, providerID and address.

use std::path::Path;

use crate::component::Component;
use crate::machines::Machines;
use crate::objects::fake_node;
use crate::{rkube_bin, Cluster, Flavor, FAST_CM_LEASE};
use client::Api;
use k8s_openapi::api::core::v1::Node;
use serde_json::json;

use crate::cloud_conformance::{write, write_inventory};

pub struct LocalCloud {
    pub cluster: Cluster,
    /// The provider's `https://` address.
    pub url: String,
    _provider: Component,
}

impl LocalCloud {
    /// Starts it all; the member gets `member_args` too, and the provider the arguments
    /// `provider_args` makes of the cluster's directory. The manager starts before the
    /// provider, so it has to wait for it.
    pub async fn start(
        machines: &mut Machines,
        member_args: &[&str],
        provider_args: impl FnOnce(&Path) -> Vec<String>,
    ) -> LocalCloud {
        let host = machines.host_ip.to_string();
        let listen = format!("{host}:{}", crate::free_port());
        let url = format!("https://{listen}");
        let mut args = vec![
            "--cloud-plugin",
            url.as_str(),
            "--node-monitor-period-ms",
            "300",
        ];
        args.extend(FAST_CM_LEASE);
        args.extend(member_args);
        let cluster = Cluster::start(Flavor::Server, 1, &args).await;
        let dir = cluster.dir.path();
        let names: Vec<String> = machines.machines.iter().map(|m| m.name.clone()).collect();
        let listed: Vec<(&str, &str, &str)> = names
            .iter()
            .map(|n| (n.as_str(), n.as_str(), "running"))
            .collect();
        let inventory = dir.join("inventory.json");
        write_inventory(&inventory, &listed);
        let provider = start_provider(&cluster, &listen, &inventory, provider_args(dir));
        start_agents(machines, &cluster, &url);
        let nodes = Api::<Node>::all(cluster.api_client());
        for m in &machines.machines {
            let extra = json!({"spec": {"podCIDR": m.pod_cidr, "providerID": format!("local://{}", m.name)},
                "status": {"addresses": [{"type": "InternalIP", "address": m.ip.to_string()}]}});
            nodes
                .create(&fake_node(&m.name, "4", "8Gi", extra))
                .await
                .expect("a node");
        }
        LocalCloud {
            cluster,
            url,
            _provider: provider,
        }
    }
}

impl LocalCloud {
    /// [`LocalCloud::start`] with load balancers whose addresses the nodes hold
    /// (`--lb-announce nodes`), from a /29 of the machines' network.
    pub async fn with_node_balancers(machines: &mut Machines, member_args: &[&str]) -> LocalCloud {
        let net = machines.host_ip.octets();
        let pool = format!("{}.{}.{}.200/29", net[0], net[1], net[2]);
        let provider = ["--lb-pool", &pool, "--lb-announce", "nodes"].map(String::from);
        Self::start(machines, member_args, |_| provider.to_vec()).await
    }
}

/// The provider on `listen` (the bridge), with a serving certificate of the cluster CA
/// and the cluster CA for its callers.
fn start_provider(
    cluster: &Cluster,
    listen: &str,
    inventory: &Path,
    extra: Vec<String>,
) -> Component {
    let (dir, pki) = (cluster.dir.path(), &cluster.pki);
    let host = listen.rsplit_once(':').map_or(listen, |(h, _)| h);
    let serving = pki.issue("local-provider", &[], pki::Usage::Server, &[host]);
    let cert = write(dir, "provider.crt", &serving.cert_pem);
    let key = write(dir, "provider.key", &serving.key_pem);
    let mut args: Vec<String> = [
        "cloud-provider",
        "local",
        "--listen",
        listen,
        "--tls-cert-file",
        &cert.display().to_string(),
        "--tls-private-key-file",
        &key.display().to_string(),
        "--client-ca-file",
        &pki.ca_file.display().to_string(),
        "--inventory",
        &inventory.display().to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Component::start(dir, "provider", &args)
}

/// A node agent per machine, in its namespace, with its node's certificate.
fn start_agents(machines: &mut Machines, cluster: &Cluster, url: &str) {
    let (dir, pki) = (cluster.dir.path(), &cluster.pki);
    let ca_file = pki.ca_file.display().to_string();
    for i in 0..machines.machines.len() {
        let name = machines.machines[i].name.clone();
        let creds = pki.issue_files(
            &format!("agent-{name}"),
            &format!("system:node:{name}"),
            &["system:nodes"],
        );
        let netns = machines.machines[i].netns.clone();
        let (cert, key) = (
            creds.cert.display().to_string(),
            creds.key.display().to_string(),
        );
        let args = [
            "cloud-provider",
            "local-agent",
            "--provider",
            url,
            "--ca-file",
            &ca_file,
            "--cert-file",
            &cert,
            "--key-file",
            &key,
        ];
        machines.spawn(&netns, dir, &format!("agent-{name}"), &rkube_bin(), &args);
    }
}
