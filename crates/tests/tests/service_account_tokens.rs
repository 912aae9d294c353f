//! ServiceAccount tokens: the token controller fills a token Secret for every
//! ServiceAccount, every apiserver member authenticates the token with the shared key as
//! `system:serviceaccount:<ns>:<name>`, and deleting the ServiceAccount (or the pod a
//! token is bound to) revokes it.

use std::path::PathBuf;
use std::time::Duration;

use client::{Api, Client, ClientConfig};
use k8s_openapi::api::core::v1::{Pod, Secret, ServiceAccount};
use rkube_proto::api::CreateTokenRequest;
use rkube_tests::fake_kubelet::cluster_with_nodes;
use rkube_tests::{eventually, objects};
use serde_json::{json, Value};
use tonic::Code;

const SECRET_TYPE: &str = "kubernetes.io/service-account-token";

/// A client of member `addr` that presents `token`, with no failover: each member must
/// verify the token on its own.
fn with_token((ca, addr): &(PathBuf, String), token: &str) -> Client {
    let mut cfg = ClientConfig::from_servers(addr);
    cfg.ca = Some(ca.clone());
    cfg.token = Some(token.to_string());
    Client::new(cfg)
        .unwrap()
        .with_failover_budget(Duration::from_secs(2))
}

async fn whoami(c: &Client) -> Result<Value, client::Error> {
    let o = c.who_am_i().await?;
    let v: Value = serde_json::from_slice(&o.json).unwrap();
    Ok(v["status"]["userInfo"].clone())
}

fn unauthenticated(r: Result<Value, client::Error>) -> bool {
    matches!(r, Err(e) if e.code() == Code::Unauthenticated)
}

#[tokio::test(flavor = "multi_thread")]
async fn token_secrets_authenticate_on_every_member_and_die_with_their_account() {
    let (cluster, client, _kubelet) = cluster_with_nodes(3, &[]).await;
    // Each member over TLS (trusting the cluster CA), with no client certificate.
    let endpoints: Vec<(PathBuf, String)> = cluster
        .members
        .iter()
        .map(|m| (cluster.pki.ca_file.clone(), format!("https://{}", m.client)))
        .collect();
    let sas = Api::<ServiceAccount>::namespaced(client.clone(), "default");
    let secrets = Api::<Secret>::namespaced(client.clone(), "default");
    let sa = sas
        .create(
            &serde_json::from_value(json!({"apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": "robot"}}))
            .unwrap(),
        )
        .await
        .unwrap();
    let sa_uid = sa.metadata.uid.clone().unwrap();

    // The token controller makes and fills the token Secret.
    let (secret_name, token) = eventually(
        Duration::from_secs(30),
        "a filled token Secret for robot",
        || async {
            let list = secrets.list(&Default::default()).await.ok()?;
            list.items.into_iter().find_map(|s| {
                let a = s.metadata.annotations.clone().unwrap_or_default();
                let token = s.data.as_ref()?.get("token")?.0.clone();
                (s.type_.as_deref() == Some(SECRET_TYPE)
                    && a.get("kubernetes.io/service-account.name")
                        .map(String::as_str)
                        == Some("robot"))
                .then(|| {
                    (
                        s.metadata.name.clone().unwrap(),
                        String::from_utf8(token).unwrap(),
                    )
                })
            })
        },
    )
    .await;
    let s = secrets.get(&secret_name).await.unwrap();
    assert_eq!(
        s.metadata.annotations.unwrap()["kubernetes.io/service-account.uid"],
        sa_uid
    );
    assert_eq!(s.data.unwrap()["namespace"].0, b"default");

    // Every member knows the token: the key is shared through the store.
    for ep in &endpoints {
        let u = whoami(&with_token(ep, &token)).await.unwrap();
        assert_eq!(
            u["username"], "system:serviceaccount:default:robot",
            "{}",
            ep.1
        );
        assert_eq!(u["uid"], sa_uid.as_str());
        let groups: Vec<&str> = u["groups"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert!(
            groups.contains(&"system:serviceaccounts:default"),
            "{groups:?}"
        );
        assert!(groups.contains(&"system:authenticated"), "{groups:?}");
    }
    // Without credentials (anonymous access is off by default), with a tampered token or
    // with garbage: refused.
    let mut anon = ClientConfig::from_servers(&endpoints[0].1);
    anon.ca = Some(endpoints[0].0.clone());
    let anon = Client::new(anon)
        .unwrap()
        .with_failover_budget(Duration::ZERO);
    assert!(unauthenticated(whoami(&anon).await));
    let mut tampered = token.clone().into_bytes();
    let i = token.rfind('.').unwrap() + 3;
    tampered[i] = if tampered[i] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    assert!(unauthenticated(
        whoami(&with_token(&endpoints[1], &tampered)).await
    ));
    assert!(unauthenticated(
        whoami(&with_token(&endpoints[1], "not-a-token")).await
    ));

    // A TokenRequest bound to a pod: valid on another member, dead with the pod.
    let pods = Api::<Pod>::namespaced(client.clone(), "default");
    let mut pod = objects::pod("holder", "100m", "64Mi", json!({}));
    pod.spec.as_mut().unwrap().service_account_name = Some("robot".into());
    pods.create(&pod).await.unwrap();
    let resp = cluster
        .api_client_of(1)
        .create_token(CreateTokenRequest {
            namespace: "default".into(),
            name: "robot".into(),
            json: serde_json::to_vec(&json!({"spec": {"expirationSeconds": 600,
                "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "holder"}}}))
            .unwrap()
            .into(),
            secret_name: String::new(),
        })
        .await
        .unwrap();
    let tr: Value = serde_json::from_slice(&resp.json).unwrap();
    assert!(tr["status"]["expirationTimestamp"].is_string(), "{tr}");
    let bound = tr["status"]["token"].as_str().unwrap().to_string();
    let u = whoami(&with_token(&endpoints[2], &bound)).await.unwrap();
    assert_eq!(u["username"], "system:serviceaccount:default:robot");
    pods.delete("holder", Some(0)).await.unwrap();
    eventually(
        Duration::from_secs(10),
        "the pod-bound token refused",
        || async {
            unauthenticated(whoami(&with_token(&endpoints[2], &bound)).await).then_some(())
        },
    )
    .await;

    // Bad TokenRequests name the field.
    let err = client
        .create_token(CreateTokenRequest {
            namespace: "default".into(),
            name: "robot".into(),
            json: serde_json::to_vec(&json!({"spec": {"expirationSeconds": 5}}))
                .unwrap()
                .into(),
            secret_name: String::new(),
        })
        .await
        .unwrap_err();
    assert!(err.to_string().contains("spec.expirationSeconds"), "{err}");
    let err = client
        .create_token(CreateTokenRequest {
            namespace: "default".into(),
            name: "nobody".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err}");

    // Deleting the ServiceAccount deletes its Secret and revokes its tokens.
    sas.delete("robot", None).await.unwrap();
    eventually(
        Duration::from_secs(30),
        "the token Secret deleted",
        || async {
            secrets
                .get_opt(&secret_name)
                .await
                .ok()?
                .is_none()
                .then_some(())
        },
    )
    .await;
    for ep in &endpoints {
        assert!(
            unauthenticated(whoami(&with_token(ep, &token)).await),
            "{}",
            ep.1
        );
    }

    // A re-created ServiceAccount of the same name gets a new token; the old one stays dead.
    sas.create(
        &serde_json::from_value(json!({"apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": "robot"}}))
        .unwrap(),
    )
    .await
    .unwrap();
    let new_token = eventually(Duration::from_secs(30), "a new token", || async {
        let list = secrets.list(&Default::default()).await.ok()?;
        list.items.into_iter().find_map(|s| {
            let t = String::from_utf8(s.data.as_ref()?.get("token")?.0.clone()).ok()?;
            let a = s.metadata.annotations.clone().unwrap_or_default();
            (s.type_.as_deref() == Some(SECRET_TYPE)
                && a.get("kubernetes.io/service-account.name")
                    .map(String::as_str)
                    == Some("robot"))
            .then_some(t)
        })
    })
    .await;
    assert_ne!(new_token, token);
    assert!(unauthenticated(
        whoami(&with_token(&endpoints[0], &token)).await
    ));
    let u = whoami(&with_token(&endpoints[0], &new_token))
        .await
        .unwrap();
    assert_eq!(u["username"], "system:serviceaccount:default:robot");
}

/// The cluster CA as every namespace's `kube-root-ca.crt` ConfigMap: published in a new
/// namespace, put back when changed or deleted.
#[tokio::test(flavor = "multi_thread")]
async fn every_namespace_gets_the_cluster_ca() {
    use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
    let (cluster, client, _kubelet) = cluster_with_nodes(1, &[]).await;
    // Each member derives the CA certificate from the token: the same key, other bytes.
    let ca = pki::ca_fingerprint(cluster.pki.ca.cert_pem()).unwrap();
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "shop"}})).unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&ns)
        .await
        .unwrap();
    let cms = Api::<ConfigMap>::namespaced(client.clone(), "shop");
    let published = || async {
        let cm = cms.get_opt("kube-root-ca.crt").await.ok()??;
        (pki::ca_fingerprint(cm.data?.get("ca.crt")?).ok()? == ca).then_some(())
    };
    eventually(Duration::from_secs(30), "the CA in shop", published).await;
    eventually(Duration::from_secs(30), "the CA in default", || async {
        let cm = Api::<ConfigMap>::namespaced(client.clone(), "default")
            .get_opt("kube-root-ca.crt")
            .await
            .ok()??;
        (pki::ca_fingerprint(cm.data?.get("ca.crt")?).ok()? == ca).then_some(())
    })
    .await;

    // A forged CA is put right.
    let forged = json!({"data": {"ca.crt": "-----BEGIN CERTIFICATE-----\nforged\n"}});
    cms.patch("kube-root-ca.crt", client::PatchParams::Merge, &forged)
        .await
        .unwrap();
    eventually(Duration::from_secs(30), "the CA put back", published).await;
    // A deleted one comes back.
    cms.delete("kube-root-ca.crt", None).await.unwrap();
    eventually(Duration::from_secs(30), "the CA published again", published).await;
}
