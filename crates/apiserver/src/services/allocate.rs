//! Drawing a free ClusterIP or NodePort from the ranges, and checking one a Service asks
//! for: inside the range and not held by another Service.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use raft_store::Store;

use super::{ip_key, port_key, ServiceRanges, IP_PREFIX, PORT_PREFIX};
use crate::error::{FieldError, Result};
use crate::storage;

/// A value for the Service, or the field error that says why it gets none. (The outer
/// `Result` is the store's.)
pub(super) type Checked<T> = std::result::Result<T, FieldError>;

fn random_u32() -> u32 {
    let b = uuid::Uuid::new_v4();
    let b = b.as_bytes();
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

impl ServiceRanges {
    /// A ClusterIP no Service holds, from a random place in the range.
    pub(super) async fn pick_ip(&self, store: &Store) -> Result<Checked<Ipv4Addr>> {
        let used: BTreeSet<String> = storage::keys(store, IP_PREFIX).await?.into_iter().collect();
        let free = self.cluster_ips.size() - 2;
        let start = random_u32();
        let pick = (0..free)
            .map(|i| self.cluster_ips.nth_usable(start.wrapping_add(i)))
            .find(|ip| !self.cluster_ips.reserved(*ip) && !used.contains(&ip_key(*ip)));
        Ok(pick.ok_or_else(|| {
            FieldError::invalid(
                "spec.clusterIPs",
                "",
                format!(
                    "failed to allocate a serviceIP: range {} is full",
                    self.cluster_ips
                ),
            )
        }))
    }

    /// The ClusterIP `requested`, if it is an address in the range that no other Service
    /// holds (`old_ip` is the one this Service holds already).
    pub(super) async fn requested_ip(
        &self,
        store: &Store,
        requested: &str,
        old_ip: Option<Ipv4Addr>,
    ) -> Result<Checked<Ipv4Addr>> {
        let Ok(ip) = requested.parse::<Ipv4Addr>() else {
            return Ok(Err(FieldError::invalid(
                "spec.clusterIPs[0]",
                format!("{requested:?}"),
                "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
            )));
        };
        let fail = |why: String| {
            FieldError::invalid(
                "spec.clusterIPs",
                requested,
                format!("failed to allocate IP {requested}: {why}"),
            )
        };
        if Some(ip) != old_ip {
            if !self.cluster_ips.usable(ip) {
                return Ok(Err(fail(format!(
                    "the provided IP ({ip}) is not in the valid range. The range of valid IPs is {}",
                    self.cluster_ips
                ))));
            }
            if storage::exists(store, &ip_key(ip)).await? {
                return Ok(Err(fail("provided IP is already allocated".into())));
            }
        }
        Ok(Ok(ip))
    }

    /// A NodePort no Service holds and not `taken` by an earlier port of this one, from a
    /// random place in the range. `used` caches the allocated ports across calls.
    pub(super) async fn pick_node_port(
        &self,
        store: &Store,
        used: &mut Option<BTreeSet<String>>,
        taken: &[(u16, String)],
        path: &str,
    ) -> Result<Checked<u16>> {
        if used.is_none() {
            *used = Some(
                storage::keys(store, PORT_PREFIX)
                    .await?
                    .into_iter()
                    .collect(),
            );
        }
        let used = used.as_ref().expect("just listed");
        let size = u32::from(*self.node_ports.end() - *self.node_ports.start()) + 1;
        let start = random_u32();
        let pick = (0..size)
            .map(|k| self.node_ports.start() + (start.wrapping_add(k) % size) as u16)
            .find(|n| !used.contains(&port_key(*n)) && !taken.iter().any(|(q, _)| q == n));
        Ok(pick.ok_or_else(|| {
            FieldError::invalid(path, 0, "failed to allocate a nodePort: range is full")
        }))
    }

    /// The NodePort `n` a port (`proto`, at `path`) asks for, if it is a port number not
    /// `taken` by an earlier port for the same protocol, and either held already (in
    /// `old_ports` or by an earlier port) or in the range and free.
    pub(super) async fn requested_node_port(
        &self,
        store: &Store,
        n: i64,
        path: &str,
        proto: &str,
        old_ports: &BTreeSet<u16>,
        taken: &[(u16, String)],
    ) -> Result<Checked<u16>> {
        let Some(n) = u16::try_from(n).ok().filter(|n| *n > 0) else {
            return Ok(Err(FieldError::invalid(
                path,
                n,
                "must be between 1 and 65535, inclusive",
            )));
        };
        if taken.iter().any(|(q, pr)| *q == n && *pr == proto) {
            return Ok(Err(FieldError::duplicate(path, n.to_string())));
        }
        let ours = old_ports.contains(&n) || taken.iter().any(|(q, _)| *q == n);
        if !ours {
            if !self.node_ports.contains(&n) {
                return Ok(Err(FieldError::invalid(
                    path,
                    n,
                    format!(
                        "provided port is not in the valid range. The range of valid ports is {}-{}",
                        self.node_ports.start(),
                        self.node_ports.end()
                    ),
                )));
            }
            if storage::exists(store, &port_key(n)).await? {
                return Ok(Err(FieldError::invalid(
                    path,
                    n,
                    "provided port is already allocated",
                )));
            }
        }
        Ok(Ok(n))
    }
}
