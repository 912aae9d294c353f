//! Authentication: static bearer tokens and TLS client certificates; requests without
//! valid credentials get Unauthenticated when anonymous access is off.

use std::time::Duration;

use client::{Client, ClientConfig};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rkube_proto::api::{ListRequest, TypeRef};
use rkube_tests::{Cluster, Flavor};
use tonic::Code;

fn list() -> ListRequest {
    ListRequest {
        r#type: Some(TypeRef {
            api_version: "v1".into(),
            kind: "Namespace".into(),
        }),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_and_client_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n);
    // A CA, a serving certificate for 127.0.0.1, and a client certificate for alice.
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "rkube-ca");
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let srv_key = KeyPair::generate().unwrap();
    let srv = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .unwrap()
        .signed_by(&srv_key, &issuer)
        .unwrap();
    let cli_key = KeyPair::generate().unwrap();
    let mut cli_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    cli_params
        .distinguished_name
        .push(DnType::CommonName, "alice");
    cli_params
        .distinguished_name
        .push(DnType::OrganizationName, "dev");
    let cli = cli_params.signed_by(&cli_key, &issuer).unwrap();
    for (n, text) in [
        ("ca.pem", ca_cert.pem()),
        ("srv.pem", srv.pem()),
        ("srv-key.pem", srv_key.serialize_pem()),
        ("cli.pem", cli.pem()),
        ("cli-key.pem", cli_key.serialize_pem()),
        (
            "tokens.csv",
            "s3cret,bob,1001,\"system:masters\"\n".to_string(),
        ),
    ] {
        std::fs::write(p(n), text).unwrap();
    }
    let s = |n: &str| p(n).to_str().unwrap().to_string();
    let args = [
        "--tls-cert-file".to_string(),
        s("srv.pem"),
        "--tls-private-key-file".to_string(),
        s("srv-key.pem"),
        "--client-ca-file".to_string(),
        s("ca.pem"),
        "--token-auth-file".to_string(),
        s("tokens.csv"),
        "--anonymous-auth=false".to_string(),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let cluster = Cluster::start_unchecked(Flavor::Apiserver, 1, &args);
    let url = format!("https://{}", cluster.members[0].client);
    let cfg = |token: Option<&str>, cert: bool| ClientConfig {
        servers: vec![url.clone()],
        token: token.map(String::from),
        ca: Some(p("ca.pem")),
        cert: cert.then(|| p("cli.pem")),
        key: cert.then(|| p("cli-key.pem")),
        ..Default::default()
    };
    let ok = rkube_tests::eventually(
        Duration::from_secs(20),
        "the apiserver to serve over TLS",
        || async {
            Client::new(cfg(Some("s3cret"), false))
                .unwrap()
                .list(list())
                .await
                .ok()
                .filter(|l| l.items.iter().any(|n| n.name == "default"))
        },
    )
    .await;
    assert!(ok.items.iter().any(|n| n.name == "default"));

    let err = Client::new(cfg(None, false))
        .unwrap()
        .list(list())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err}");
    let err = Client::new(cfg(Some("wrong"), false))
        .unwrap()
        .list(list())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err}");
    // alice's certificate authenticates her; no role lets her list namespaces.
    let err = Client::new(cfg(None, true))
        .unwrap()
        .list(list())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err}");
    assert!(err.to_string().contains("\"alice\""), "{err}");
}
