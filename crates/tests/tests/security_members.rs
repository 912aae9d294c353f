//! A default cluster against processes without its token, and what it keeps on disk:
//! a member restarted with another token refuses to start, an impostor founder with
//! another token can neither vote nor be voted for, data directories are 0700 with 0600
//! files, and serving certificates are renewed while the member runs.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use rkube_proto::etcd::StatusRequest;
use rkube_tests::pki::TestPki;
use rkube_tests::Cluster;

const DEADLINE: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread")]
async fn a_member_with_another_token_refuses_to_start_and_cannot_vote() {
    tokio::time::timeout(DEADLINE, async {
        let mut c = Cluster::start_default(3, &[]).await;
        let leader = c.wait_leader(Duration::from_secs(20)).await;
        let victim = (leader + 1) % 3;
        let term = |st: rkube_proto::etcd::StatusResponse| st.raft_term;
        let term_before = term(
            c.clients(leader)
                .maintenance
                .status(StatusRequest {})
                .await
                .unwrap()
                .into_inner(),
        );

        // Restarted with another cluster's token: it says why and exits.
        c.kill(victim);
        let good = std::mem::replace(&mut c.pki, TestPki::new(&c.dir.path().join("other")));
        c.spawn(victim, "new");
        let status = c.wait_exit(victim, Duration::from_secs(20)).await;
        assert!(status.is_some_and(|s| !s.success()), "{status:?}");
        let log = c.log(victim);
        assert!(log.contains("belongs to the cluster with CA"), "{log}");

        // Its data wiped, as a new founder with the other token: its elections reach
        // nobody, so the cluster's term does not move and it never learns a leader.
        std::fs::remove_dir_all(&c.members[victim].data_dir).unwrap();
        let before = c.log(victim).len();
        c.spawn(victim, "new");
        tokio::time::sleep(Duration::from_secs(3)).await;
        let impostor = c.log(victim)[before..].to_string();
        c.kill(victim);
        c.pki = good;
        let st = c
            .clients(leader)
            .maintenance
            .status(StatusRequest {})
            .await
            .unwrap()
            .into_inner();
        assert_eq!(term(st.clone()), term_before, "the impostor moved the term");
        assert_eq!(
            st.leader,
            st.header.unwrap().member_id,
            "the leader kept its place"
        );
        assert!(
            !impostor.contains("bootstrap namespaces present"),
            "{impostor}"
        );
    })
    .await
    .expect("within the deadline");
}

#[tokio::test(flavor = "multi_thread")]
async fn data_directories_are_private_and_certificates_renew_while_running() {
    tokio::time::timeout(DEADLINE, async {
        let c = Cluster::start_default(1, &["--cert-validity-secs", "6"]).await;
        let addr = c.members[0].client;
        let serial = || async {
            let tls = c.pki.rustls(None);
            let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            let name = pki::rustls::pki_types::ServerName::IpAddress(addr.ip().into());
            let s = tokio_rustls::TlsConnector::from(tls)
                .connect(name, tcp)
                .await
                .unwrap();
            let der = s.get_ref().1.peer_certificates().unwrap()[0].to_vec();
            let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
            cert.raw_serial().to_vec()
        };
        let first = serial().await;
        let client = c.api_client();
        let renewed = rkube_tests::eventually(
            Duration::from_secs(20),
            "a renewed serving certificate",
            || async {
                let now = serial().await;
                (now != first).then_some(now)
            },
        )
        .await;
        assert_ne!(renewed, first);
        // Renewed once per two thirds of a lifetime (4 s here), not over and over: over 3 s
        // of handshakes at most one more certificate appears.
        let mut seen = vec![renewed.clone()];
        let until = std::time::Instant::now() + Duration::from_secs(3);
        while std::time::Instant::now() < until {
            let s = serial().await;
            if !seen.contains(&s) {
                seen.push(s);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(seen.len() <= 2, "{} certificates in 3 s", seen.len());
        client.members().await.expect("clients keep working");

        for entry in walk(&c.members[0].data_dir) {
            let meta = std::fs::metadata(&entry).unwrap();
            let mode = meta.permissions().mode() & 0o777;
            if meta.is_dir() {
                assert_eq!(mode, 0o700, "{}", entry.display());
            } else {
                assert_eq!(mode & 0o077, 0, "{} is {mode:o}", entry.display());
            }
        }
    })
    .await
    .expect("within the deadline");
}

/// A node's credentials minted from the cluster token (`rkube token node-config`) name the
/// node; another token's are refused.
#[tokio::test(flavor = "multi_thread")]
async fn node_configs_from_the_token_authenticate_as_the_node() {
    tokio::time::timeout(DEADLINE, async {
        let c = Cluster::start_default(1, &[]).await;
        let dir = c.dir.path().join("w9");
        let server = c.members[0].client.to_string();
        let mint = |token: &str, dir: &std::path::Path| {
            std::process::Command::new(rkube_tests::rkube_bin())
                .args(["token", "node-config", "--name", "w9", "--server", &server])
                .args(["--token", token])
                .arg("--dir")
                .arg(dir)
                .output()
                .unwrap()
        };
        let out = mint(&c.pki.token, &dir);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let whoami = |config: std::path::PathBuf| {
            std::process::Command::new(rkube_tests::rkube_bin())
                .args(["ctl", "auth", "whoami", "--config"])
                .arg(config)
                .output()
                .unwrap()
        };
        let out = whoami(dir.join("w9.config"));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("system:node:w9"),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains("system:nodes"), "{text}");

        // Minted with another cluster's token: the member does not trust that CA.
        let other = TestPki::new(&c.dir.path().join("other"));
        let odir = c.dir.path().join("w9-other");
        assert!(mint(&other.token, &odir).status.success());
        let out = whoami(odir.join("w9.config"));
        assert!(
            !out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    })
    .await
    .expect("within the deadline");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![dir.to_path_buf()];
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
