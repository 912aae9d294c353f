//! What opening a member derives from its configuration: the checks it must pass, the Raft
//! configuration, the cluster id and the founding membership; and the data directory's
//! permissions.

use std::collections::BTreeMap;

use openraft::Config;

use super::StoreConfig;
use crate::error::{Error, Result};
use crate::types::{member_id, Member, NodeId};

/// The peer address this member is known by: its `--initial-cluster` entry, or where its
/// peer listener binds.
pub(super) fn own_addr(cfg: &StoreConfig) -> String {
    cfg.initial_cluster
        .get(&cfg.name)
        .cloned()
        .unwrap_or_else(|| cfg.peer_listen.to_string())
}

/// Refuses a founding member the initial cluster does not list, and a peer message limit
/// too small for the largest request.
pub(super) fn check(cfg: &StoreConfig) -> Result<()> {
    if cfg.initial_cluster_state == super::ClusterState::New
        && !cfg.initial_cluster.contains_key(&cfg.name)
    {
        return Err(Error::invalid(
            "initial-cluster",
            format!("does not list this member ({})", cfg.name),
        ));
    }
    // A single entry must always fit in one peer message, or replication would stall.
    let smallest = 4 * cfg.limits.max_request_bytes + (1 << 20);
    if cfg.max_peer_message_bytes < smallest {
        return Err(Error::invalid(
            "max-peer-message-bytes",
            format!("must be at least {smallest} (4 x max-request-bytes + 1 MiB)"),
        ));
    }
    Ok(())
}

pub(super) fn raft_config(cfg: &StoreConfig) -> Result<Config> {
    Config {
        cluster_name: "rkube".into(),
        heartbeat_interval: cfg.heartbeat_interval.as_millis() as u64,
        election_timeout_min: cfg.election_timeout.as_millis() as u64,
        // openraft grants no vote while a leader lease (= the maximum election timeout)
        // lasts, so a narrow range keeps failover close to one election timeout.
        election_timeout_max: cfg.election_timeout.as_millis() as u64 * 3 / 2,
        install_snapshot_timeout: 10_000,
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(cfg.snapshot_entries),
        max_in_snapshot_log_to_keep: cfg.snapshot_entries / 10,
        max_payload_entries: 256,
        ..Default::default()
    }
    .validate()
    .map_err(|e| Error::invalid("raft config", e.to_string()))
}

/// The cluster id: the same on every member, as it comes from the sorted initial cluster.
pub(super) fn cluster_id(cfg: &StoreConfig) -> u64 {
    let mut ids: Vec<String> = cfg
        .initial_cluster
        .iter()
        .map(|(n, a)| format!("{n}={a}"))
        .collect();
    ids.sort();
    member_id(&ids.join(","))
}

/// The membership a new cluster founds with.
pub(super) fn initial_members(cfg: &StoreConfig) -> BTreeMap<NodeId, Member> {
    cfg.initial_cluster
        .iter()
        .map(|(name, addr)| {
            (
                member_id(addr),
                Member {
                    name: name.clone(),
                    peer_addr: addr.clone(),
                },
            )
        })
        .collect()
}

/// Data directories are 0700 and their files 0600, also when an older version or another
/// umask created them.
pub(super) fn restrict_data(dir: &std::path::Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let err = |e: pki::Error| Error::Storage(e.to_string());
    pki::restrict_dir(dir).map_err(err)?;
    let db = dir.join("db");
    pki::restrict_dir(&db).map_err(err)?;
    let entries =
        std::fs::read_dir(&db).map_err(|e| Error::Storage(format!("{}: {e}", db.display())))?;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_file() {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                .map_err(|e| Error::Storage(format!("{}: {e}", path.display())))?;
        }
    }
    Ok(())
}
