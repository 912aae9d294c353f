//! A cluster on loopback whose members reach each other only through TCP fault proxies,
//! one per direction of every pair: the harness for the chaos suite where network
//! namespaces (root) are not available. A blocked proxy stops forwarding bytes, so the
//! peer sees a silent network, not a refused connection — as a dropped link.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::chaos::faults::Faults;
use crate::process::{open_log, MemberProcess};
use crate::{free_addr, rkube_bin};

/// A one-direction link: connections accepted here are forwarded to `target` while open.
struct Link {
    addr: SocketAddr,
    blocked: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    blocked: Arc<AtomicBool>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        // A blocked link swallows what it gets, as a network that drops packets.
        if blocked.load(Ordering::Relaxed) {
            continue;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

impl Link {
    /// Forwards what `listener` (bound already) accepts to `target`.
    fn start(listener: std::net::TcpListener, target: SocketAddr) -> Link {
        listener.set_nonblocking(true).expect("non-blocking");
        let listener = TcpListener::from_std(listener).expect("proxy listener");
        let addr = listener.local_addr().expect("addr");
        let blocked = Arc::new(AtomicBool::new(false));
        let b = blocked.clone();
        let task = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let b = b.clone();
                tokio::spawn(async move {
                    if b.load(Ordering::Relaxed) {
                        // New connections over a cut link hang, as unanswered SYNs would.
                        let _keep = inbound;
                        while b.load(Ordering::Relaxed) {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                        return;
                    }
                    let Ok(outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    let _ = inbound.set_nodelay(true);
                    let _ = outbound.set_nodelay(true);
                    let (ir, iw) = inbound.into_split();
                    let (or, ow) = outbound.into_split();
                    tokio::select! {
                        _ = pipe(ir, ow, b.clone()) => {}
                        _ = pipe(or, iw, b) => {}
                    }
                });
            }
        });
        Link {
            addr,
            blocked,
            task,
        }
    }
}

struct ProxyMember {
    name: String,
    api: SocketAddr,
    peer: SocketAddr,
    data_dir: std::path::PathBuf,
    child: MemberProcess,
}

/// `n` `rkube server` members on loopback, linked through fault proxies.
pub struct ProxyCluster {
    members: Vec<ProxyMember>,
    /// links[i][j]: member i's connections to member j.
    links: Vec<Vec<Option<Link>>>,
    dir: tempfile::TempDir,
    initial_cluster: String,
}

impl ProxyCluster {
    pub async fn start(n: usize) -> ProxyCluster {
        let dir = tempfile::Builder::new()
            .prefix("rkube-chaos-proxy-")
            .tempdir()
            .expect("temp dir");
        eprintln!(
            "chaos cluster (TCP fault proxies) data and logs in {}",
            dir.path().display()
        );
        // The links' ports are taken before the members' ports are picked, so a link can
        // never land on a port a member is about to bind.
        let mut listeners: Vec<std::net::TcpListener> = (0..n * n)
            .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("proxy listener"))
            .collect();
        let members: Vec<ProxyMember> = (1..=n)
            .map(|i| ProxyMember {
                name: format!("n{i}"),
                api: free_addr(),
                peer: free_addr(),
                data_dir: dir.path().join(format!("n{i}")),
                child: MemberProcess::default(),
            })
            .collect();
        let mut links = Vec::new();
        for i in 0..n {
            let mut row = Vec::new();
            for (j, m) in members.iter().enumerate() {
                row.push(if i == j {
                    None
                } else {
                    Some(Link::start(listeners.pop().expect("a listener"), m.peer))
                });
            }
            links.push(row);
        }
        let initial_cluster = members
            .iter()
            .map(|m| format!("{}={}", m.name, m.peer))
            .collect::<Vec<_>>()
            .join(",");
        let mut c = ProxyCluster {
            members,
            links,
            dir,
            initial_cluster,
        };
        for i in 0..n {
            c.spawn(i, "new");
        }
        c.wait_leader(Duration::from_secs(30)).await;
        c
    }

    fn set(&self, from: usize, to: usize, blocked: bool) {
        if let Some(l) = &self.links[from][to] {
            l.blocked.store(blocked, Ordering::Relaxed);
        }
    }
}

impl Faults for ProxyCluster {
    fn size(&self) -> usize {
        self.members.len()
    }

    fn api_addr(&self, i: usize) -> SocketAddr {
        self.members[i].api
    }

    fn peer_addr(&self, i: usize) -> String {
        self.members[i].peer.to_string()
    }

    fn process(&self, i: usize) -> &MemberProcess {
        &self.members[i].child
    }

    fn process_mut(&mut self, i: usize) -> &mut MemberProcess {
        &mut self.members[i].child
    }

    fn data_dir(&self, i: usize) -> &Path {
        &self.members[i].data_dir
    }

    fn spawn(&mut self, i: usize, state: &str) {
        let m = &self.members[i];
        let overrides: Vec<String> = (0..self.members.len())
            .filter(|j| *j != i)
            .filter_map(|j| {
                Some(format!(
                    "{}={}",
                    self.members[j].peer,
                    self.links[i][j].as_ref()?.addr
                ))
            })
            .collect();
        let log = open_log(self.dir.path(), &m.name);
        let child = Command::new(rkube_bin())
            .arg("server")
            .args(["--name", &m.name])
            .arg("--data-dir")
            .arg(&m.data_dir)
            .args(["--listen", &m.api.to_string()])
            .args(["--peer-listen", &m.peer.to_string()])
            .args(["--initial-cluster", &self.initial_cluster])
            .args(["--initial-cluster-state", state])
            .args(["--auto-compaction-retention", "0"])
            .args(["--peer-dial-override", &overrides.join(",")])
            .args(["--token", &crate::chaos::access().token])
            .arg("--etcd-on-api-port")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start rkube server");
        self.members[i].child.started(child);
    }

    fn isolate(&self, i: usize) {
        for j in 0..self.members.len() {
            self.set(i, j, true);
            self.set(j, i, true);
        }
    }

    fn drop_one_way(&self, from: usize, to: usize) {
        self.set(from, to, true);
    }

    fn heal(&self) {
        for i in 0..self.members.len() {
            for j in 0..self.members.len() {
                self.set(i, j, false);
            }
        }
    }

    fn keep(&mut self) {
        self.dir.disable_cleanup(true);
    }

    fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for ProxyCluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
        for row in &self.links {
            for l in row.iter().flatten() {
                l.task.abort();
            }
        }
    }
}
