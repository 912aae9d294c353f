//! A cluster of store processes: rkube (`rkube store`) or etcd, started the same way.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rkube_proto::etcd::StatusRequest;

pub use crate::clients::Clients;
use crate::{eventually, free_addr, rkube_bin};

/// Which store a cluster runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    /// `rkube store` members.
    Rkube,
    /// `rkube apiserver` members: the store and the API on one port.
    Apiserver,
    /// `rkube server` members: the apiserver plus the scheduler.
    Server,
    Etcd,
}

/// One member process.
pub struct Member {
    pub name: String,
    pub client: SocketAddr,
    pub peer: SocketAddr,
    /// The etcd API's own port (`--client-listen`), used by clusters with default ports.
    pub etcd: SocketAddr,
    pub data_dir: PathBuf,
    child: Option<Child>,
}

/// A store cluster on loopback. Dropping it kills every member.
pub struct Cluster {
    pub flavor: Flavor,
    pub members: Vec<Member>,
    pub extra_args: Vec<String>,
    pub dir: tempfile::TempDir,
    /// The cluster token and the certificates the harness uses (unused for etcd).
    pub pki: crate::pki::TestPki,
    /// Members serve the etcd API on its own port, as by default, instead of on the API
    /// port where the harness usually reaches it.
    pub default_ports: bool,
    /// Members run with `--insecure-plaintext` (no token, no TLS): for benchmarks that
    /// measure what TLS costs.
    pub plaintext: bool,
    initial_cluster: String,
}

impl Cluster {
    /// Starts `n` members and waits until they agree on a leader.
    pub async fn start(flavor: Flavor, n: usize, extra_args: &[&str]) -> Cluster {
        let c = Self::start_unchecked(flavor, n, extra_args);
        c.wait_ready().await;
        c
    }

    /// Waits for a leader and, for apiservers, for every member's `/readyz`.
    async fn wait_ready(&self) {
        self.wait_leader(Duration::from_secs(20)).await;
        if matches!(self.flavor, Flavor::Apiserver | Flavor::Server) {
            for m in &self.members {
                let addr = m.client;
                eventually(
                    Duration::from_secs(20),
                    "every apiserver ready",
                    || async move {
                        let r = self.get(addr, "/readyz").await.ok()?;
                        r.starts_with("HTTP/1.1 200").then_some(())
                    },
                )
                .await;
            }
        }
    }

    /// Starts `n` `rkube server` members with nothing but the token: every port as a
    /// default cluster has it (the etcd API on `--client-listen`), and waits until they
    /// are ready.
    pub async fn start_default(n: usize, extra_args: &[&str]) -> Cluster {
        let mut c = Self::prepare(Flavor::Server, n, extra_args);
        c.default_ports = true;
        for i in 0..n {
            c.spawn(i, "new");
        }
        c.wait_ready().await;
        c
    }

    /// Starts `n` `rkube server` members whose scheduler and controller-manager take
    /// their Leases at once ([`crate::FAST_SCHEDULER_LEASE`], [`crate::FAST_CM_LEASE`]).
    pub async fn start_with_controllers(n: usize) -> Cluster {
        let args = [crate::FAST_SCHEDULER_LEASE, crate::FAST_CM_LEASE].concat();
        Self::start(Flavor::Server, n, &args).await
    }

    /// Starts `n` members without waiting for them (for members whose port speaks TLS).
    pub fn start_unchecked(flavor: Flavor, n: usize, extra_args: &[&str]) -> Cluster {
        let mut c = Self::prepare(flavor, n, extra_args);
        for i in 0..n {
            c.spawn(i, "new");
        }
        c
    }

    fn prepare(flavor: Flavor, n: usize, extra_args: &[&str]) -> Cluster {
        // RKUBE_TEST_KEEP=1 keeps data directories and member logs for inspection.
        let dir = tempfile::Builder::new()
            .prefix("rkube-cluster-")
            .disable_cleanup(std::env::var_os("RKUBE_TEST_KEEP").is_some())
            .tempdir()
            .expect("temp dir");
        eprintln!("cluster data and logs in {}", dir.path().display());
        let members: Vec<Member> = (1..=n)
            .map(|i| Member {
                name: format!("n{i}"),
                client: free_addr(),
                etcd: free_addr(),
                peer: free_addr(),
                data_dir: dir.path().join(format!("n{i}")),
                child: None,
            })
            .collect();
        let initial_cluster = members
            .iter()
            .map(|m| match flavor {
                Flavor::Rkube | Flavor::Apiserver | Flavor::Server => {
                    format!("{}={}", m.name, m.peer)
                }
                Flavor::Etcd => format!("{}=http://{}", m.name, m.peer),
            })
            .collect::<Vec<_>>()
            .join(",");
        let pki = crate::pki::TestPki::new(&dir.path().join("harness-pki"));
        Cluster {
            flavor,
            members,
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
            dir,
            pki,
            default_ports: false,
            plaintext: false,
            initial_cluster,
        }
    }

    /// Adds a member entry (not started) with fresh ports, for MemberAdd tests.
    pub fn add_member_slot(&mut self, name: &str) -> usize {
        self.members.push(Member {
            name: name.into(),
            client: free_addr(),
            etcd: free_addr(),
            peer: free_addr(),
            data_dir: self.dir.path().join(name),
            child: None,
        });
        self.members.len() - 1
    }

    /// Starts `n` members with `--insecure-plaintext` and waits for a leader.
    pub async fn start_plaintext(flavor: Flavor, n: usize, extra_args: &[&str]) -> Cluster {
        let mut c = Self::prepare(flavor, n, extra_args);
        c.plaintext = true;
        for i in 0..n {
            c.spawn(i, "new");
        }
        c.wait_ready().await;
        c
    }

    fn security_args(&self) -> Vec<String> {
        if self.plaintext {
            let mut a = vec!["--insecure-plaintext".to_string()];
            // Without TLS there are no certificates to authenticate with.
            // and so no identities to authorize: everyone may do everything.
            if self.flavor != Flavor::Rkube {
                a.push("--anonymous-auth=true".into());
                a.push("--authorization-mode=AlwaysAllow".into());
            }
            a
        } else {
            vec!["--token".into(), self.pki.token.clone()]
        }
    }

    /// Starts member `i` (again); `state` is `new` or `existing`.
    pub fn spawn(&mut self, i: usize, state: &str) {
        let m = &self.members[i];
        let log = crate::process::open_log(self.dir.path(), &m.name);
        let mut cmd = match self.flavor {
            Flavor::Rkube => {
                let mut c = Command::new(rkube_bin());
                c.arg("store")
                    .args(["--name", &m.name])
                    .arg("--data-dir")
                    .arg(&m.data_dir)
                    .args(["--client-listen", &m.client.to_string()])
                    .args(["--peer-listen", &m.peer.to_string()])
                    .args(["--initial-cluster", &self.initial_cluster])
                    .args(["--initial-cluster-state", state])
                    .args(self.security_args());
                c
            }
            Flavor::Apiserver | Flavor::Server => {
                let mut c = Command::new(rkube_bin());
                c.arg(if self.flavor == Flavor::Server {
                    "server"
                } else {
                    "apiserver"
                })
                .args(["--name", &m.name])
                .arg("--data-dir")
                .arg(&m.data_dir)
                .args(["--listen", &m.client.to_string()])
                .args(["--initial-cluster", &self.initial_cluster])
                .args(["--initial-cluster-state", state])
                .args(["--bookmark-interval-ms", "500"])
                .args(self.security_args());
                if self.default_ports {
                    c.args(["--client-listen", &m.etcd.to_string()]);
                } else {
                    // The harness reaches the etcd API on the API port (with the admin
                    // certificate); a default member serves it only on --client-listen.
                    c.arg("--etcd-on-api-port");
                }
                c
            }
            Flavor::Etcd => {
                let mut c = Command::new("etcd");
                c.args(["--name", &m.name])
                    .arg("--data-dir")
                    .arg(&m.data_dir)
                    .args(["--listen-client-urls", &format!("http://{}", m.client)])
                    .args(["--advertise-client-urls", &format!("http://{}", m.client)])
                    .args(["--listen-peer-urls", &format!("http://{}", m.peer)])
                    .args([
                        "--initial-advertise-peer-urls",
                        &format!("http://{}", m.peer),
                    ])
                    .args(["--initial-cluster", &self.initial_cluster])
                    .args(["--initial-cluster-state", state])
                    .args(["--logger", "zap", "--log-level", "error"]);
                c
            }
        };
        cmd.args(&self.extra_args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("start {:?}: {e}", self.flavor));
        self.members[i].child = Some(child);
    }

    /// Sets the `--initial-cluster` used for members started from now on.
    pub fn set_initial_cluster(&mut self, s: String) {
        self.initial_cluster = s;
    }

    /// SIGKILLs member `i` and reaps it.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.members[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Resident memory of member `i` in bytes (Linux), if it runs.
    pub fn rss_bytes(&self, i: usize) -> Option<u64> {
        let pid = self.members[i].child.as_ref()?.id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(kb * 1024)
    }

    /// Waits up to `timeout` for member `i` to exit by itself; its exit status.
    pub async fn wait_exit(
        &mut self,
        i: usize,
        timeout: Duration,
    ) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            let child = self.members[i].child.as_mut()?;
            if let Ok(Some(status)) = child.try_wait() {
                self.members[i].child = None;
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }

    /// What member `i` has logged so far.
    pub fn log(&self, i: usize) -> String {
        let path = self
            .dir
            .path()
            .join(format!("{}.log", self.members[i].name));
        std::fs::read_to_string(path).unwrap_or_default()
    }

    pub fn pid(&self, i: usize) -> Option<u32> {
        self.members[i].child.as_ref().map(Child::id)
    }

    pub fn is_running(&self, i: usize) -> bool {
        self.members[i].child.is_some()
    }

    /// etcd API clients of member `i` (with the admin certificate on rkube members).
    pub fn clients(&self, i: usize) -> Clients {
        let m = &self.members[i];
        let addr = if self.default_ports { m.etcd } else { m.client };
        Clients::connect(addr, self.etcd_tls())
    }

    /// The TLS configuration of the etcd API's clients: the admin certificate.
    pub fn etcd_tls(&self) -> Option<tonic::transport::ClientTlsConfig> {
        (self.flavor != Flavor::Etcd && !self.plaintext)
            .then(|| self.pki.tonic_tls(&self.pki.admin))
    }

    /// One HTTP GET of `path` on the member listening at `addr`: HTTPS (trusting the
    /// cluster CA, with no client certificate) on rkube members.
    pub async fn get(&self, addr: SocketAddr, path: &str) -> std::io::Result<String> {
        match self.flavor {
            _ if self.plaintext => crate::http_get(addr, path).await,
            Flavor::Etcd => crate::http_get(addr, path).await,
            _ => crate::pki::https_get(addr, path, self.pki.rustls(None)).await,
        }
    }

    /// The admin's client configuration for every member (written once, for `--config`).
    pub fn admin_config(&self) -> PathBuf {
        let path = self.pki.dir.join("admin.yaml");
        if !path.exists() {
            let addrs: Vec<SocketAddr> = self.members.iter().map(|m| m.client).collect();
            self.pki
                .client_config_file("admin", &addrs, &self.pki.admin);
        }
        path
    }

    /// How `rkube` commands and clients reach this cluster's API as its admin: the path of
    /// a client configuration file (see [`crate::client_flags`]).
    pub fn api_access(&self) -> String {
        if self.plaintext {
            return self.endpoints();
        }
        self.admin_config().to_string_lossy().into_owned()
    }

    /// What node agent `name` connects with: a `system:node:<name>` client configuration
    /// (the endpoints on a plaintext cluster).
    pub fn node_access(&self, name: &str) -> String {
        if self.plaintext {
            return self.endpoints();
        }
        let user = format!("system:node:{name}");
        self.config_for(name, &user, &["system:nodes"])
            .to_string_lossy()
            .into_owned()
    }

    /// A client configuration file for `user` in `groups` (a node, a component).
    pub fn config_for(&self, name: &str, user: &str, groups: &[&str]) -> PathBuf {
        let creds = self.pki.issue_files(name, user, groups);
        let addrs: Vec<SocketAddr> = self.members.iter().map(|m| m.client).collect();
        self.pki.client_config_file(name, &addrs, &creds)
    }

    pub fn endpoints(&self) -> String {
        self.members
            .iter()
            .map(|m| m.client.to_string())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// An rkube API client of every member (`Flavor::Apiserver` or `Server`), failing over among them.
    pub fn api_client(&self) -> client::Client {
        if self.plaintext {
            return client::Client::from_servers(&self.endpoints()).expect("client");
        }
        let addrs: Vec<SocketAddr> = self.members.iter().map(|m| m.client).collect();
        client::Client::new(self.pki.client_config(&addrs, &self.pki.admin)).expect("client")
    }

    /// An rkube API client of member `i` alone.
    pub fn api_client_of(&self, i: usize) -> client::Client {
        if self.plaintext {
            let addr = self.members[i].client.to_string();
            return client::Client::from_servers(&addr).expect("client");
        }
        let cfg = self
            .pki
            .client_config(&[self.members[i].client], &self.pki.admin);
        client::Client::new(cfg).expect("client")
    }

    /// The index of the member every running member names as leader. Fails at once when a
    /// member's process has exited, and after `timeout` with what each member answered;
    /// both with the members' last log lines.
    pub async fn wait_leader(&self, timeout: Duration) -> usize {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let answers = self.leader_answers().await;
            if let Some(i) = self.agreed_leader(&answers) {
                return i;
            }
            let exited = self.members.iter().any(|m| {
                m.child
                    .as_ref()
                    .is_some_and(|c| crate::process::has_exited(c.id()))
            });
            assert!(
                !exited && std::time::Instant::now() < deadline,
                "{} waiting for every running member to name the same leader:\n{}",
                if exited {
                    "a member exited"
                } else {
                    "timed out"
                },
                self.leader_report(&answers)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// What each running member says about the leader: (member id, leader id), or why it
    /// did not answer.
    async fn leader_answers(&self) -> Vec<Option<Result<(u64, u64), String>>> {
        let mut answers = Vec::new();
        for (i, m) in self.members.iter().enumerate() {
            if m.child.is_none() {
                answers.push(None);
                continue;
            }
            let mut c = self.clients(i).maintenance;
            let st =
                tokio::time::timeout(Duration::from_millis(500), c.status(StatusRequest {})).await;
            answers.push(Some(match st {
                Ok(Ok(st)) => {
                    let st = st.into_inner();
                    Ok((st.header.map_or(0, |h| h.member_id), st.leader))
                }
                Ok(Err(e)) => Err(e.message().to_string()),
                Err(_) => Err("no status within 500 ms".into()),
            }));
        }
        answers
    }

    /// The index of the leader, when every running member answered and names it.
    fn agreed_leader(&self, answers: &[Option<Result<(u64, u64), String>>]) -> Option<usize> {
        let mut leader = None;
        for a in answers.iter().flatten() {
            let (_, l) = a.as_ref().ok()?;
            if *l == 0 || leader.is_some_and(|x| x != *l) {
                return None;
            }
            leader = Some(*l);
        }
        let leader = leader?;
        answers
            .iter()
            .position(|a| matches!(a, Some(Ok((id, _))) if *id == leader))
    }

    /// Each member's last answer and log lines, for a failure message.
    fn leader_report(&self, answers: &[Option<Result<(u64, u64), String>>]) -> String {
        let mut out = String::new();
        for (m, a) in self.members.iter().zip(answers) {
            let said = match a {
                None => "not running".to_string(),
                Some(Ok((id, leader))) => format!("member {id:x} names leader {leader:x}"),
                Some(Err(e)) => format!("no answer: {e}"),
            };
            let tail = crate::process::log_tail(self.dir.path(), &m.name, 15);
            out.push_str(&format!("--- {} ({}): {said}\n{tail}\n", m.name, m.client));
        }
        out
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
    }
}
