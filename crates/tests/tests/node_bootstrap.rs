//! Node TLS bootstrap: a node joins with nothing but a join token (a bootstrap token that
//! pins the cluster CA), gets its client and serving certificates through
//! CertificateSigningRequests, and every attack on the way fails with a clear error.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use client::{Api, Client, ClientConfig};
use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestSpec,
};
use k8s_openapi::api::core::v1::{Node, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::ByteString;
use rkube_tests::fake_kubelet::cluster_with_nodes;
use rkube_tests::node_agent::NodeAgent;
use rkube_tests::{eventually, rkube_bin, Cluster};
use serde_json::json;
use tonic::Code;

const CLIENT_SIGNER: &str = "kubernetes.io/kube-apiserver-client-kubelet";
const SERVING_SIGNER: &str = "kubernetes.io/kubelet-serving";

/// `rkube token create` as the administrator: the join token.
fn token_create(cluster: &Cluster, ttl: &str) -> String {
    let out = std::process::Command::new(rkube_bin())
        .args([
            "token",
            "create",
            "--config",
            &cluster.api_access(),
            "--ttl",
            ttl,
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "rkube token create: {stderr}");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A client of every member that trusts the cluster CA and sends `token`.
fn bearer_client(cluster: &Cluster, token: &str) -> Client {
    Client::new(ClientConfig {
        servers: cluster
            .endpoints()
            .split(',')
            .map(|e| format!("https://{e}"))
            .collect(),
        token: Some(token.into()),
        ca: Some(cluster.pki.ca_file.clone()),
        ..Default::default()
    })
    .unwrap()
    .with_failover_budget(Duration::from_secs(5))
}

fn request(cn: &str, orgs: &[&str], signer: &str, usages: &[&str]) -> CertificateSigningRequest {
    let orgs: Vec<String> = orgs.iter().map(|o| o.to_string()).collect();
    let (pem, _key) = pki::new_request(cn, &orgs, &[]).unwrap();
    CertificateSigningRequest {
        metadata: ObjectMeta {
            generate_name: Some("attack-".into()),
            ..Default::default()
        },
        spec: CertificateSigningRequestSpec {
            request: ByteString(pem.into_bytes()),
            signer_name: signer.into(),
            usages: Some(usages.iter().map(|u| u.to_string()).collect()),
            // Claims the apiserver must overwrite with the caller's real identity.
            username: Some("system:node:w2".into()),
            groups: Some(vec!["system:masters".into()]),
            ..Default::default()
        },
        status: None,
    }
}

/// The message of the True condition `type_`, once the request has one.
async fn wait_condition(api: &Api<CertificateSigningRequest>, name: &str, type_: &str) -> String {
    eventually(
        Duration::from_secs(30),
        &format!("{name} {type_}"),
        || async {
            let c = api.get(name).await.ok()?;
            c.status?
                .conditions?
                .into_iter()
                .find(|c| c.type_ == type_ && c.status == "True")
                .map(|c| c.message.unwrap_or_default())
        },
    )
    .await
}

fn signed_by(list: &[CertificateSigningRequest], signer: &str) -> Vec<CertificateSigningRequest> {
    list.iter()
        .filter(|c| c.spec.signer_name == signer)
        .filter(|c| {
            c.status
                .as_ref()
                .and_then(|s| s.certificate.as_ref())
                .is_some()
        })
        .cloned()
        .collect()
}

/// Calls the agent at `port` as `identity`, expecting the certificate of `node`.
async fn agent_exec(
    cluster: &Cluster,
    port: u16,
    node: &str,
    identity: &pki::Issued,
) -> Result<tonic::Code, String> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let expected = pki::Expected {
        ca_pem: cluster.pki.ca.cert_pem(),
        identity: (&identity.cert_pem, &identity.key_pem),
        common_name: &format!("system:node:{node}"),
    };
    let ch = pki::dial_verified(addr, expected, Duration::from_secs(5))
        .await
        .map_err(|e| e.to_string())?;
    let err = rkube_proto::api::node_agent_client::NodeAgentClient::new(ch)
        .exec(rkube_proto::api::ExecRequest {
            namespace: "default".into(),
            pod: "nothing-here".into(),
            command: vec!["/bin/true".into()],
            ..Default::default()
        })
        .await
        .map(|_| ())
        .unwrap_err();
    Ok(err.code())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_joins_with_a_join_token_and_the_apiserver_calls_only_the_right_agent() {
    assert!(rkube_tests::netns::is_root(), "the node agent needs root");
    let (cluster, client, _fake) = cluster_with_nodes(1, &[]).await;
    let join = token_create(&cluster, "10m");
    assert!(join.starts_with("K10"), "{join}");
    let mut node = NodeAgent::start(&cluster.endpoints(), "w1", &["--token", &join]);
    let n = node.wait_ready(&client).await;
    let port = n
        .status
        .unwrap()
        .daemon_endpoints
        .unwrap()
        .kubelet_endpoint
        .unwrap()
        .port as u16;

    let csrs = Api::<CertificateSigningRequest>::all(client.clone());
    let list = csrs.list(&Default::default()).await.unwrap().items;
    let clients = signed_by(&list, CLIENT_SIGNER);
    assert_eq!(clients.len(), 1, "one client certificate: {list:?}");
    let user = clients[0].spec.username.clone().unwrap_or_default();
    assert!(
        user.starts_with("system:bootstrap:"),
        "requested by the bootstrapper: {user}"
    );
    let key = node.data_dir().join("pki").join("node-client.key");
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{}", key.display());

    // The serving certificate comes from the node itself and names its address.
    let admin = cluster.pki.issue(
        pki::ADMIN_USER,
        &[pki::MASTERS_GROUP],
        pki::Usage::Client,
        &[],
    );
    let code = eventually(
        Duration::from_secs(30),
        "the agent serves its certificate",
        || async { agent_exec(&cluster, port, "w1", &admin).await.ok() },
    )
    .await;
    assert_eq!(
        code,
        Code::NotFound,
        "the administrator passes the agent's checks"
    );
    let list = csrs.list(&Default::default()).await.unwrap().items;
    let serving = signed_by(&list, SERVING_SIGNER);
    assert_eq!(serving.len(), 1, "{list:?}");
    assert_eq!(serving[0].spec.username.as_deref(), Some("system:node:w1"));

    // A Node whose status points at w1's agent: the apiserver sees w1's certificate where
    // it expects w2's, and refuses, without sending anything.
    let api_nodes = Api::<Node>::all(client.clone());
    let fake: Node = serde_json::from_value(json!({"metadata": {"name": "w2"},
        "status": {"addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
                   "daemonEndpoints": {"kubeletEndpoint": {"Port": port}}}}))
    .unwrap();
    api_nodes.create(&fake).await.unwrap();
    rkube_tests::pod_lifecycle::create(
        &client,
        json!({"metadata": {"name": "lured"},
        "spec": {"nodeName": "w2", "containers": [{"name": "c", "image": "busybox"}]}}),
    )
    .await;
    let err = client
        .pod_exec(rkube_proto::api::ExecRequest {
            namespace: "default".into(),
            pod: "lured".into(),
            command: vec!["/bin/true".into()],
            ..Default::default()
        })
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("names \"system:node:w1\", not \"system:node:w2\""),
        "the impostor is named: {msg}"
    );

    // A restart keeps the node's certificate: no new request.
    node.restart();
    node.wait_ready(&client).await;
    let list = csrs.list(&Default::default()).await.unwrap().items;
    let requested = list
        .iter()
        .filter(|c| c.spec.signer_name == CLIENT_SIGNER)
        .count();
    assert_eq!(requested, 1, "{list:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn bootstrap_tokens_and_node_requests_are_checked() {
    let (cluster, client, _fake) = cluster_with_nodes(1, &[]).await;
    let secrets = Api::<Secret>::namespaced(client.clone(), "kube-system");
    let usages = ["digital signature", "client auth"];

    // An expired token is refused and says so.
    let expired: Secret = serde_json::from_value(json!({
        "metadata": {"name": "bootstrap-token-old001", "namespace": "kube-system"},
        "type": "bootstrap.kubernetes.io/token",
        "stringData": {}, "data": {
            "token-id": b64("old001"), "token-secret": b64("0123456789abcdef"),
            "usage-bootstrap-authentication": b64("true"),
            "expiration": b64("2020-01-01T00:00:00Z")}}))
    .unwrap();
    secrets.create(&expired).await.unwrap();
    let old = bearer_client(&cluster, "old001.0123456789abcdef");
    let err = Api::<CertificateSigningRequest>::all(old)
        .create(&request(
            "system:node:w9",
            &["system:nodes"],
            CLIENT_SIGNER,
            &usages,
        ))
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            client::Error::Api {
                code: Code::Unauthenticated,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("expired"), "{err}");

    // A valid token may make requests, and nothing else.
    let join = token_create(&cluster, "10m");
    let bearer = join.split_once("::").unwrap().1.to_string();
    let boot = bearer_client(&cluster, &bearer);
    let boot_csrs = Api::<CertificateSigningRequest>::all(boot.clone());
    let err = Api::<Secret>::namespaced(boot.clone(), "kube-system")
        .list(&Default::default())
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            client::Error::Api {
                code: Code::PermissionDenied,
                ..
            }
        ),
        "{err}"
    );

    // A bootstrapper asking for system:masters is denied, and its claimed identity was
    // replaced by its real one.
    let made = boot_csrs
        .create(&request(
            "system:node:w9",
            &["system:masters"],
            CLIENT_SIGNER,
            &usages,
        ))
        .await
        .unwrap();
    let name = made.metadata.name.clone().unwrap();
    assert!(made.spec.username.unwrap().starts_with("system:bootstrap:"));
    assert!(!made
        .spec
        .groups
        .unwrap()
        .contains(&"system:masters".to_string()));
    let admin_csrs = Api::<CertificateSigningRequest>::all(client.clone());
    let why = wait_condition(&admin_csrs, &name, "Denied").await;
    assert!(why.contains("organizations"), "{why}");
    let denied = admin_csrs.get(&name).await.unwrap();
    assert!(denied.status.unwrap().certificate.is_none());

    // A node asking for another node's certificate is denied.
    let w1 = cluster.config_for("w1", "system:node:w1", &["system:nodes"]);
    let w1 = Client::new(ClientConfig::load(&w1).unwrap()).unwrap();
    let made = Api::<CertificateSigningRequest>::all(w1)
        .create(&request(
            "system:node:w2",
            &["system:nodes"],
            CLIENT_SIGNER,
            &usages,
        ))
        .await
        .unwrap();
    let why = wait_condition(&admin_csrs, &made.metadata.name.unwrap(), "Denied").await;
    assert!(
        why.contains("may not request a certificate for w2"),
        "{why}"
    );

    // The same bootstrapper's well-formed request is approved and signed...
    let made = boot_csrs
        .create(&request(
            "system:node:w9",
            &["system:nodes"],
            CLIENT_SIGNER,
            &usages,
        ))
        .await
        .unwrap();
    let name = made.metadata.name.unwrap();
    wait_condition(&admin_csrs, &name, "Approved").await;
    eventually(Duration::from_secs(30), "signed", || async {
        admin_csrs.get(&name).await.ok()?.status?.certificate
    })
    .await;

    // A request for a user is left to an administrator, who approves it with ctl.
    let made = admin_csrs
        .create(&request(
            "alice",
            &["dev"],
            "kubernetes.io/kube-apiserver-client",
            &usages,
        ))
        .await
        .unwrap();
    let alice = made.metadata.name.unwrap();
    let out = std::process::Command::new(rkube_bin())
        .args([
            "ctl",
            "--config",
            &cluster.api_access(),
            "certificate",
            "approve",
            &alice,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let approved = admin_csrs.get(&alice).await.unwrap();
    let cond = &approved.status.unwrap().conditions.unwrap()[0];
    assert_eq!(
        cond.reason.as_deref(),
        Some("KubectlApprove"),
        "not approved automatically"
    );
    eventually(Duration::from_secs(30), "alice's certificate", || async {
        admin_csrs.get(&alice).await.ok()?.status?.certificate
    })
    .await;

    // ...and once its token is deleted, the bootstrapper is nobody.
    let id = bearer.split('.').next().unwrap();
    secrets
        .delete(&format!("bootstrap-token-{id}"), None)
        .await
        .unwrap();
    let err = eventually(
        Duration::from_secs(30),
        "the deleted token is refused",
        || async { boot_csrs.get(&name).await.err() },
    )
    .await;
    assert!(
        matches!(
            &err,
            client::Error::Api {
                code: Code::Unauthenticated,
                ..
            }
        ),
        "{err}"
    );
}

fn b64(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[tokio::test(flavor = "multi_thread")]
async fn node_certificates_are_renewed_before_they_expire() {
    assert!(rkube_tests::netns::is_root(), "the node agent needs root");
    // 30 s certificates: renewed after 20 s, so by 45 s the first ones have expired and
    // the node has renewed twice, the second time with its first renewed certificate.
    let (cluster, client, _fake) = rkube_tests::fake_kubelet::cluster_with_nodes_and(
        1,
        &[],
        &["--cluster-signing-duration-secs", "30"],
    )
    .await;
    let join = token_create(&cluster, "10m");
    let node = NodeAgent::start(&cluster.endpoints(), "w1", &["--token", &join]);
    let n = node.wait_ready(&client).await;
    let port = n
        .status
        .unwrap()
        .daemon_endpoints
        .unwrap()
        .kubelet_endpoint
        .unwrap()
        .port as u16;
    let first = std::fs::read_to_string(node.data_dir().join("pki/node-client.crt")).unwrap();
    let csrs = Api::<CertificateSigningRequest>::all(client.clone());
    let by_node = |list: &[CertificateSigningRequest], signer: &str| {
        signed_by(list, signer)
            .iter()
            .filter(|c| c.spec.username.as_deref() == Some("system:node:w1"))
            .count()
    };
    eventually(
        Duration::from_secs(90),
        "two renewals of each certificate",
        || async {
            let list = csrs.list(&Default::default()).await.ok()?.items;
            // The first serving certificate is the node's own request too.
            (by_node(&list, CLIENT_SIGNER) >= 2 && by_node(&list, SERVING_SIGNER) >= 3)
                .then_some(())
        },
    )
    .await;
    let now = std::fs::read_to_string(node.data_dir().join("pki/node-client.crt")).unwrap();
    assert_ne!(first, now, "the stored client certificate was replaced");
    // The first serving certificate has expired: a handshake now proves the renewed one
    // is served.
    let admin = cluster.pki.issue(
        pki::ADMIN_USER,
        &[pki::MASTERS_GROUP],
        pki::Usage::Client,
        &[],
    );
    let code = agent_exec(&cluster, port, "w1", &admin).await.unwrap();
    assert_eq!(code, Code::NotFound);
    // And the node still reports in with its renewed client certificate.
    let before = lease_renewed(&client).await;
    eventually(
        Duration::from_secs(10),
        "a heartbeat after the renewals",
        || async { (lease_renewed(&client).await > before).then_some(()) },
    )
    .await;
}

async fn lease_renewed(client: &Client) -> Option<k8s_openapi::jiff::Timestamp> {
    let lease = Api::<k8s_openapi::api::coordination::v1::Lease>::namespaced(
        client.clone(),
        "kube-node-lease",
    )
    .get("w1")
    .await
    .unwrap();
    lease.spec.unwrap().renew_time.map(|t| t.0)
}
