//! [`Store`]: one member of the replicated store, as an in-process API.
//!
//! Any member accepts every request: writes that reach a follower are forwarded to the
//! leader over the peer port, and linearizable reads on a follower first learn a read
//! index from the leader (ReadIndex) and wait until they have applied it.

mod background;
mod cluster;
mod kv;
mod lease;
mod peer;
mod propose;
mod raft_runtime;
mod read_index;
mod setup;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::RaftError;
use rocksdb::{ColumnFamilyDescriptor, Options, DB};
use tokio::task::JoinHandle;
use tonic::Status;

pub use lease::Lessor;

use crate::error::{Error, Result};
use crate::log_store::{LogStore, CF_LOGS, CF_RAFT};
use crate::mvcc::{CF_LEASES, CF_REVS, CF_SM_META};
use crate::network::Peers;
use crate::state_machine::{SmShared, StateMachine};
use crate::types::{member_id, Member, NodeId, Raft};
use crate::validate::Limits;

/// Whether this member founds a new cluster or joins an existing one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ClusterState {
    /// Every member of `--initial-cluster` starts with the same list; the cluster forms
    /// once a quorum of them is up.
    #[default]
    New,
    /// The member was added with MemberAdd and waits to be replicated to.
    Existing,
}

/// Configuration of one store member.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    pub name: String,
    pub data_dir: PathBuf,
    /// Address the peer (Raft) listener binds.
    pub peer_listen: SocketAddr,
    /// `name -> peer address` of the founding members; identical on every member.
    pub initial_cluster: BTreeMap<String, String>,
    pub initial_cluster_state: ClusterState,
    /// Client URLs this member publishes (MemberList's `clientURLs`).
    pub client_urls: Vec<String>,
    pub limits: Limits,
    pub heartbeat_interval: Duration,
    /// Minimum election timeout; elections start between this and 1.5 times this.
    pub election_timeout: Duration,
    /// How long a request waits for a leader or a quorum before it fails.
    pub request_timeout: Duration,
    /// Automatic compaction keeps this many revisions of history; 0 turns it off.
    pub auto_compaction_retention: i64,
    /// A snapshot is built after this many log entries; the log is purged up to it.
    pub snapshot_entries: u64,
    /// Buffered revisions per watcher before a watcher that does not keep up is cancelled.
    pub watch_buffer: usize,
    /// How often a watch that asked for progress notifications gets one when idle.
    pub watch_progress_interval: Duration,
    /// Dial these members' advertised peer addresses at other addresses (proxies, NAT).
    pub peer_dial_overrides: std::collections::HashMap<String, String>,
    /// This member's certificate from the cluster CA: the peer port is mutual TLS and
    /// accepts members only. `None` (plaintext, anyone) only under an `--insecure-` flag.
    pub tls: Option<Arc<pki::RenewingCert>>,
    /// Largest peer message sent or accepted, in bytes.
    pub max_peer_message_bytes: usize,
}

impl StoreConfig {
    /// A configuration with defaults for everything but the names and addresses.
    pub fn new(
        name: &str,
        data_dir: PathBuf,
        peer_listen: SocketAddr,
        initial_cluster: BTreeMap<String, String>,
    ) -> Self {
        StoreConfig {
            name: name.to_string(),
            data_dir,
            peer_listen,
            initial_cluster,
            initial_cluster_state: ClusterState::New,
            client_urls: Vec::new(),
            limits: Limits::default(),
            heartbeat_interval: Duration::from_millis(50),
            election_timeout: Duration::from_millis(100),
            request_timeout: Duration::from_secs(5),
            auto_compaction_retention: 10_000,
            snapshot_entries: 10_000,
            watch_buffer: 4096,
            watch_progress_interval: Duration::from_secs(600),
            peer_dial_overrides: Default::default(),
            tls: None,
            max_peer_message_bytes: 64 << 20,
        }
    }

    /// Parses etcd's `--initial-cluster` form: `n1=127.0.0.1:2380,n2=...` (an `http://`
    /// scheme is accepted and dropped).
    pub fn parse_initial_cluster(s: &str) -> Result<BTreeMap<String, String>> {
        let mut out = BTreeMap::new();
        for part in s.split(',').filter(|p| !p.is_empty()) {
            let (name, addr) = part.split_once('=').ok_or_else(|| {
                Error::invalid("initial-cluster", format!("{part:?} is not name=host:port"))
            })?;
            let addr = strip_scheme(addr);
            if addr.parse::<SocketAddr>().is_err() && !addr.contains(':') {
                return Err(Error::invalid(
                    "initial-cluster",
                    format!("{addr:?} is not host:port"),
                ));
            }
            if out.insert(name.to_string(), addr.to_string()).is_some() {
                return Err(Error::invalid(
                    "initial-cluster",
                    format!("member {name} is listed twice"),
                ));
            }
        }
        if out.is_empty() {
            return Err(Error::invalid("initial-cluster", "no members listed"));
        }
        Ok(out)
    }
}

/// `http://host:port` or `host:port` as `host:port`.
pub fn strip_scheme(url: &str) -> &str {
    url.trim_start_matches("http://")
        .trim_start_matches("https://")
        .trim_end_matches('/')
}

pub(crate) struct Inner {
    pub id: NodeId,
    pub cluster_id: u64,
    pub cfg: StoreConfig,
    pub raft: Raft,
    pub sm: Arc<SmShared>,
    pub peers: Peers,
    pub lessor: Lessor,
    proposer: propose::Proposer,
    reads: read_index::ReadBatcher,
    tasks: parking_lot::Mutex<Vec<JoinHandle<()>>>,
    /// Where client-facing work runs (the runtime that opened the store).
    pub(crate) main: tokio::runtime::Handle,
    /// Where Raft runs; last, so it is dropped after everything that uses it.
    raft_rt: raft_runtime::RaftRuntime,
}

/// One member of the replicated store. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    pub(crate) inner: Arc<Inner>,
}

/// Opens the RocksDB database with every column family of the log store and the state
/// machine.
pub(crate) fn open_db(dir: &std::path::Path) -> Result<DB> {
    let mut opts = Options::default();
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    opts.increase_parallelism(2);
    let cfs = [CF_LOGS, CF_RAFT, CF_REVS, CF_LEASES, CF_SM_META]
        .into_iter()
        .map(|n| ColumnFamilyDescriptor::new(n, Options::default()));
    Ok(DB::open_cf_descriptors(&opts, dir.join("db"), cfs)?)
}

impl Store {
    /// Opens (or creates) the member's data, starts its peer listener and Raft, and — for a
    /// new cluster — proposes the initial membership. Returns before the cluster has formed.
    pub async fn open(cfg: StoreConfig) -> Result<Store> {
        let own_addr = setup::own_addr(&cfg);
        setup::check(&cfg)?;
        let id = member_id(&own_addr);
        setup::restrict_data(&cfg.data_dir)?;
        let db = Arc::new(open_db(&cfg.data_dir)?);
        let log = LogStore::new(db.clone())?;
        let sm = StateMachine::new(db.clone(), cfg.data_dir.clone())?;
        let shared = sm.shared.clone();

        let raft_cfg = setup::raft_config(&cfg)?;
        let peers = Peers::new(
            cfg.peer_dial_overrides.clone(),
            cfg.tls.clone(),
            cfg.max_peer_message_bytes,
        );
        // Raft's tasks are spawned by `Raft::new`, so it runs on the Raft runtime.
        let raft_rt = raft_runtime::RaftRuntime::start(&cfg.name)?;
        let factory = peers.clone();
        let raft = raft_rt
            .handle()
            .spawn(async move { Raft::new(id, Arc::new(raft_cfg), factory, log, sm).await })
            .await
            .map_err(|e| Error::Storage(format!("starting Raft: {e}")))?
            .map_err(|e| Error::Storage(e.to_string()))?;

        let store = Store {
            inner: Arc::new(Inner {
                id,
                cluster_id: setup::cluster_id(&cfg),
                cfg: cfg.clone(),
                raft,
                sm: shared,
                peers,
                lessor: Lessor::default(),
                proposer: Default::default(),
                reads: Default::default(),
                tasks: Default::default(),
                main: tokio::runtime::Handle::current(),
                raft_rt,
            }),
        };

        let listener = std::net::TcpListener::bind(cfg.peer_listen)
            .and_then(|l| l.set_nonblocking(true).map(|()| l))
            .map_err(|e| Error::invalid("peer-listen", format!("{}: {e}", cfg.peer_listen)))?;
        let server = peer::serve(store.clone(), listener, store.inner.raft_rt.handle())?;
        store.inner.tasks.lock().push(server);
        if let Some(t) = &cfg.tls {
            store.inner.tasks.lock().push(t.spawn_renewal());
        }

        if cfg.initial_cluster_state == ClusterState::New {
            // Every founding member proposes the same membership at log index 0; on a
            // restart the log is not empty and this is refused, so it never re-initialises.
            match store
                .inner
                .raft
                .initialize(setup::initial_members(&cfg))
                .await
            {
                Ok(()) => tracing::info!(member = %cfg.name, "initialised the cluster membership"),
                Err(RaftError::APIError(openraft::error::InitializeError::NotAllowed(_))) => {}
                Err(e) => return Err(Error::Storage(e.to_string())),
            }
        }
        background::spawn_all(&store);
        Ok(store)
    }

    pub fn id(&self) -> NodeId {
        self.inner.id
    }

    pub fn name(&self) -> &str {
        &self.inner.cfg.name
    }

    pub fn cluster_id(&self) -> u64 {
        self.inner.cluster_id
    }

    pub fn limits(&self) -> &Limits {
        &self.inner.cfg.limits
    }

    pub fn config(&self) -> &StoreConfig {
        &self.inner.cfg
    }

    /// Raft metrics of this member (leader, term, indexes, membership).
    pub fn metrics(&self) -> crate::types::RaftMetrics {
        self.inner.raft.metrics().borrow().clone()
    }

    /// The current Raft term, as this member knows it.
    pub fn term(&self) -> u64 {
        self.inner.raft.metrics().borrow().current_term
    }

    /// The leader this member knows of, if any.
    pub fn leader(&self) -> Option<NodeId> {
        self.inner.raft.metrics().borrow().current_leader
    }

    pub fn is_leader(&self) -> bool {
        self.leader() == Some(self.inner.id)
    }

    /// The current revision of this member's state (as applied here).
    pub fn revision(&self) -> i64 {
        self.inner.sm.mvcc.read().revision
    }

    pub fn compact_revision(&self) -> i64 {
        self.inner.sm.mvcc.read().compact_revision
    }

    /// Waits until a leader is known, up to `timeout`.
    pub async fn wait_for_leader(&self, timeout: Duration) -> Result<NodeId> {
        let mut rx = self.inner.raft.metrics();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(l) = rx.borrow_and_update().current_leader {
                return Ok(l);
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Err(_) => return Err(Error::NoLeader(None)),
                Ok(Err(_)) => return Err(Error::Stopped),
                Ok(Ok(())) => {}
            }
        }
    }

    /// Waits until a leader other than `old` (of `term`) is known — another member, or
    /// `old` again in a later term — since `old` could not take a request. After twice the
    /// election timeout without a change, returns the leader known then, to try it again.
    pub(crate) async fn wait_for_new_leader(
        &self,
        old: NodeId,
        term: u64,
        deadline: tokio::time::Instant,
    ) -> Result<NodeId> {
        let mut rx = self.inner.raft.metrics();
        let patience = tokio::time::Instant::now() + self.inner.cfg.election_timeout * 2;
        loop {
            let (leader, now_term) = {
                let m = rx.borrow_and_update();
                (m.current_leader, m.current_term)
            };
            if let Some(l) = leader.filter(|l| *l != old || now_term > term) {
                return Ok(l);
            }
            match tokio::time::timeout_at(deadline.min(patience), rx.changed()).await {
                Err(_) if tokio::time::Instant::now() >= deadline => {
                    return Err(Error::NoLeader(None))
                }
                Err(_) => return leader.ok_or(Error::NoLeader(None)),
                Ok(Err(_)) => return Err(Error::Stopped),
                Ok(Ok(())) => {}
            }
        }
    }

    /// Sends a request to the leader with `call`, and again to the next leader when the
    /// leader could not be reached (the request never left this member).
    pub(crate) async fn call_leader<T, F, Fut>(&self, call: F) -> Result<T>
    where
        F: Fn(
            rkube_proto::raft::raft_peer_client::RaftPeerClient<tonic::transport::Channel>,
        ) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<T>, Status>>,
    {
        let deadline = tokio::time::Instant::now() + self.inner.cfg.request_timeout;
        let mut leader = self.wait_for_leader(self.inner.cfg.request_timeout).await?;
        loop {
            let term = self.term();
            let node = self.leader_member(leader).ok_or(Error::NoLeader(None))?;
            let res =
                tokio::time::timeout_at(deadline, call(self.inner.peers.client(&node.peer_addr)))
                    .await
                    .map_err(|_| Error::Timeout)?;
            match res {
                Ok(r) => return Ok(r.into_inner()),
                Err(s) if not_delivered(&s) || s.message() == NOT_LEADER => {
                    leader = self.wait_for_new_leader(leader, term, deadline).await?;
                }
                Err(s) => return Err(forward_error(s, &node)),
            }
        }
    }

    pub(crate) fn leader_member(&self, leader: NodeId) -> Option<Member> {
        // Borrowed, not cloned: this runs for every forwarded batch.
        self.inner
            .raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .get_node(&leader)
            .cloned()
    }

    /// Resolves when Raft has stopped on a fatal error (a panic in its core, a storage
    /// error), with the error's text. Such a member serves nothing any more; its process
    /// should exit so that a supervisor restarts it.
    pub async fn fatal(&self) -> String {
        let mut rx = self.inner.raft.metrics();
        loop {
            if let Err(e) = &rx.borrow_and_update().running_state {
                return e.to_string();
            }
            if rx.changed().await.is_err() {
                return "Raft stopped".into();
            }
        }
    }

    /// Whether Raft is still running (no fatal error).
    pub fn is_running(&self) -> bool {
        self.inner.raft.metrics().borrow().running_state.is_ok()
    }

    /// Stops Raft and the peer listener.
    pub async fn shutdown(&self) {
        let _ = self.inner.raft.shutdown().await;
        for t in self.inner.tasks.lock().drain(..) {
            t.abort();
        }
    }

    pub(crate) fn spawn(&self, t: JoinHandle<()>) {
        self.inner.tasks.lock().push(t);
    }
}

/// The message of a peer's refusal because it is not (or no longer) the leader.
pub(crate) const NOT_LEADER: &str = "not the leader";

/// Whether a failed peer call certainly never reached the peer's service.
pub(crate) fn not_delivered(s: &Status) -> bool {
    s.code() == tonic::Code::Unavailable && s.message().contains("connect")
}

/// A forwarded request failed in transport: the leader may have gone; the client retries.
pub(crate) fn forward_error(s: Status, leader: &Member) -> Error {
    match s.code() {
        tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Cancelled => {
            Error::NoLeader(Some(format!("{leader}: {}", s.message())))
        }
        _ => Error::Remote(s),
    }
}
