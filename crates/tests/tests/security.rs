//! Attacks on a default cluster (three `rkube server` members started with nothing but the
//! cluster token): every one must fail with a clear error and write nothing.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use client::{Client, ClientConfig};
use pki::Usage;
use rkube_proto::api::{AddMemberRequest, ListRequest, TypeRef};
use rkube_proto::etcd::kv_client::KvClient;
use rkube_proto::etcd::{MemberAddRequest, PutRequest, RangeRequest};
use rkube_proto::raft::raft_peer_client::RaftPeerClient;
use rkube_proto::raft::{Payload, StoreBatch, StoreRequest};
use rkube_tests::{Clients, Cluster};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic::Code;

const DEADLINE: Duration = Duration::from_secs(120);

/// A call the TLS layer refused: the connection failed (the handshake, the alert that
/// ended it, or a plaintext HTTP/2 preface the TLS port could not parse), so the error comes
/// from the transport and no handler ever answered.
#[track_caller]
fn refused_by_tls(e: &tonic::Status, what: &str) {
    use std::error::Error;
    let transport = e
        .source()
        .is_some_and(|s| s.downcast_ref::<tonic::transport::Error>().is_some());
    assert!(transport, "{what}: not refused by the transport: {e}");
}

fn secrets() -> ListRequest {
    ListRequest {
        r#type: Some(TypeRef {
            api_version: "v1".into(),
            kind: "Secret".into(),
        }),
        ..Default::default()
    }
}

/// A client of `addr` that trusts the cluster CA and presents `identity`, if any.
fn tls_with(c: &Cluster, identity: Option<&pki::Issued>) -> ClientTlsConfig {
    let t = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(c.pki.ca.cert_pem()));
    match identity {
        Some(i) => t.identity(Identity::from_pem(&i.cert_pem, &i.key_pem)),
        None => t,
    }
}

fn channel(addr: SocketAddr, tls: Option<ClientTlsConfig>, server_name: &str) -> Channel {
    let scheme = if tls.is_some() { "https" } else { "http" };
    let mut ep = Endpoint::from_shared(format!("{scheme}://{addr}"))
        .unwrap()
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(10));
    if let Some(t) = tls {
        ep = ep.tls_config(t.domain_name(server_name)).unwrap();
    }
    ep.connect_lazy()
}

fn put(key: &str) -> PutRequest {
    PutRequest {
        key: Bytes::from(key.to_string()),
        value: Bytes::from_static(b"forged"),
        ..Default::default()
    }
}

/// Whether `key` exists, read with the admin certificate through the etcd API.
async fn exists(c: &Cluster, key: &str) -> bool {
    c.clients(0).value(key).await.is_some()
}

fn forward(key: &str) -> StoreBatch {
    StoreBatch {
        requests: vec![StoreRequest {
            op: Some(rkube_proto::raft::store_request::Op::Put(put(key))),
        }],
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_port_refuses_callers_without_credentials() {
    tokio::time::timeout(DEADLINE, async {
        let c = Cluster::start_default(3, &[]).await;
        let m = &c.members[0];

        // API port: TLS only, and no anonymous access.
        let plain = rkube_tests::http_get(m.client, "/healthz").await;
        assert!(
            !plain.as_deref().unwrap_or("").starts_with("HTTP/1.1 200"),
            "plaintext HTTP on the API port: {plain:?}"
        );
        let anon = ClientConfig {
            servers: vec![format!("https://{}", m.client)],
            ca: Some(c.pki.ca_file.clone()),
            ..Default::default()
        };
        let err = Client::new(anon)
            .unwrap()
            .with_failover_budget(Duration::ZERO)
            .list(secrets())
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::Unauthenticated, "{err}");
        assert!(c.api_client().list(secrets()).await.is_ok());

        // /metrics wants credentials; health checks do not.
        let none = c.get(m.client, "/metrics").await.unwrap();
        assert!(none.starts_with("HTTP/1.1 401"), "{none}");
        let admin = c.pki.rustls(Some(&c.pki.admin));
        let ok = pki::https_get(m.client, "/metrics", admin).await.unwrap();
        assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");

        // etcd API: its own port, a client certificate required; not on the API port.
        for tls in [None, Some(tls_with(&c, None))] {
            let e = KvClient::new(channel(m.etcd, tls, "127.0.0.1"))
                .put(put("/registry/forged"))
                .await
                .unwrap_err();
            refused_by_tls(&e, "etcd API without a certificate");
        }
        let e = Clients::connect(m.client, c.etcd_tls())
            .kv
            .range(RangeRequest {
                key: Bytes::from_static(b"/"),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(
            e.code(),
            Code::Unimplemented,
            "etcd API on the API port: {e}"
        );

        // Peer port: no certificate, no connection.
        for tls in [None, Some(tls_with(&c, None))] {
            let e = RaftPeerClient::new(channel(m.peer, tls, pki::MEMBER_SERVER_NAME))
                .forward(forward("/registry/forged"))
                .await
                .unwrap_err();
            refused_by_tls(&e, "peer port without a certificate");
        }
        assert!(!exists(&c, "/registry/forged").await);
        // The same call with a member's certificate goes through (at the leader, which
        // takes forwarded writes): only the credentials differed.
        let member = c.pki.issue(
            "system:rkube-member:n1",
            &[pki::MEMBERS_GROUP],
            Usage::ServerAndClient,
            &[],
        );
        let member = &member;
        rkube_tests::eventually(Duration::from_secs(10), "a member's forward", || async {
            let leader = c.wait_leader(Duration::from_secs(10)).await;
            let tls = Some(tls_with(&c, Some(member)));
            RaftPeerClient::new(channel(
                c.members[leader].peer,
                tls,
                pki::MEMBER_SERVER_NAME,
            ))
            .forward(forward("/peer-ok"))
            .await
            .ok()
        })
        .await;
        assert!(exists(&c, "/peer-ok").await);
    })
    .await
    .expect("within the deadline");
}

#[tokio::test(flavor = "multi_thread")]
async fn certificates_of_the_wrong_kind_or_another_ca_are_refused() {
    tokio::time::timeout(DEADLINE, async {
        let c = Cluster::start_default(3, &[]).await;
        let m = &c.members[0];
        let node = c
            .pki
            .issue("system:node:w1", &["system:nodes"], Usage::Client, &[]);
        let user = c.pki.issue("alice", &["dev"], Usage::Client, &[]);

        // The etcd API takes administrators and members only.
        for who in [&node, &user] {
            let e = KvClient::new(channel(m.etcd, Some(tls_with(&c, Some(who))), "127.0.0.1"))
                .put(put("/registry/forged"))
                .await
                .unwrap_err();
            assert_eq!(e.code(), Code::PermissionDenied, "{e}");
            assert!(e.message().contains("members and system:masters"), "{e}");
        }

        // The peer port takes member certificates only: an admin's is not one.
        let admin = c
            .pki
            .issue(pki::ADMIN_USER, &[pki::MASTERS_GROUP], Usage::Client, &[]);
        let e = RaftPeerClient::new(channel(
            m.peer,
            Some(tls_with(&c, Some(&admin))),
            pki::MEMBER_SERVER_NAME,
        ))
        .forward(forward("/registry/forged"))
        .await
        .unwrap_err();
        assert_eq!(e.code(), Code::PermissionDenied, "{e}");

        // A member certificate from another cluster's CA does not get through TLS.
        let other = rkube_tests::pki::TestPki::new(&c.dir.path().join("other-ca"));
        let impostor = other.issue(
            "system:rkube-member:n9",
            &[pki::MEMBERS_GROUP],
            Usage::ServerAndClient,
            &[],
        );
        let e = RaftPeerClient::new(channel(
            m.peer,
            Some(tls_with(&c, Some(&impostor))),
            pki::MEMBER_SERVER_NAME,
        ))
        .forward(forward("/registry/forged"))
        .await
        .unwrap_err();
        refused_by_tls(&e, "a member certificate from another CA");
        assert!(!exists(&c, "/registry/forged").await);

        // Membership changes are for administrators: not through the etcd API with a
        // user's certificate, nor through the rkube API with a node's.
        let e = rkube_proto::etcd::cluster_client::ClusterClient::new(channel(
            m.etcd,
            Some(tls_with(&c, Some(&user))),
            "127.0.0.1",
        ))
        .member_add(MemberAddRequest {
            peer_ur_ls: vec!["http://127.0.0.1:1".into()],
            is_learner: false,
        })
        .await
        .unwrap_err();
        assert_eq!(e.code(), Code::PermissionDenied, "{e}");
        let node_files = c.pki.issue_files("w1", "system:node:w1", &["system:nodes"]);
        let node_client = Client::new(c.pki.client_config(&[m.client], &node_files)).unwrap();
        let e = node_client
            .call(|ch| {
                let r = node_client.request(AddMemberRequest {
                    name: "evil".into(),
                    peer_url: "127.0.0.1:1".into(),
                });
                async move {
                    rkube_proto::api::cluster_client::ClusterClient::new(ch)
                        .add_member(r)
                        .await
                }
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::PermissionDenied, "{e}");
        assert!(e.to_string().contains("system:masters"), "{e}");
        assert_eq!(c.api_client().members().await.unwrap().members.len(), 3);
    })
    .await
    .expect("within the deadline");
}

/// A VoteRequest from a member (as the harness can make one with the token) with a term
/// of 2^64-1: refused, and no member panics or stops serving.
#[tokio::test(flavor = "multi_thread")]
async fn a_vote_with_an_absurd_term_neither_panics_nor_wedges_the_cluster() {
    tokio::time::timeout(DEADLINE, async {
        let mut c = Cluster::start_default(3, &[]).await;
        let member = c.pki.issue(
            "system:rkube-member:n1",
            &[pki::MEMBERS_GROUP],
            Usage::ServerAndClient,
            &[pki::MEMBER_SERVER_NAME],
        );
        let vote = openraft::raft::VoteRequest::new(
            openraft::Vote::new(
                u64::MAX,
                raft_store::member_id(&c.members[0].peer.to_string()),
            ),
            None,
        );
        let data = postcard::to_allocvec(&vote).unwrap();
        for m in &c.members {
            let mut peer = RaftPeerClient::new(channel(
                m.peer,
                Some(tls_with(&c, Some(&member))),
                pki::MEMBER_SERVER_NAME,
            ));
            let e = peer
                .vote(Payload {
                    data: data.clone().into(),
                })
                .await
                .unwrap_err();
            assert_eq!(e.code(), Code::InvalidArgument, "{e}");
            assert!(e.message().contains("term"), "{e}");
        }
        // Still one leader, still writing, on every member; and so after restarts.
        let api = c.api_client();
        api.list(secrets()).await.expect("the cluster serves");
        for i in 0..3 {
            c.kill(i);
            c.spawn(i, "new");
        }
        c.wait_leader(Duration::from_secs(30)).await;
        let mut kv = c.clients(0).kv;
        kv.put(put("/after-restart"))
            .await
            .expect("writes after the attack");
    })
    .await
    .expect("within the deadline");
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_peer_messages_are_refused() {
    tokio::time::timeout(DEADLINE, async {
        let c = Cluster::start_default(3, &["--max-peer-message-bytes", "8388608"]).await;
        let member = c.pki.issue(
            "system:rkube-member:n1",
            &[pki::MEMBERS_GROUP],
            Usage::ServerAndClient,
            &[],
        );
        let e = RaftPeerClient::new(channel(
            c.members[1].peer,
            Some(tls_with(&c, Some(&member))),
            pki::MEMBER_SERVER_NAME,
        ))
        .max_encoding_message_size(usize::MAX)
        .append_entries(Payload {
            data: vec![0u8; 10 << 20].into(),
        })
        .await
        .unwrap_err();
        assert_eq!(e.code(), Code::OutOfRange, "{e}");
        c.api_client()
            .list(secrets())
            .await
            .expect("the cluster serves");
    })
    .await
    .expect("within the deadline");
}
