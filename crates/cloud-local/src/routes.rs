//! Routes: the table the cloud-controller-manager's route loop keeps (a node's pod CIDR
//! to that node), saved in a state file, and what each machine must install from it.
//!
//! The provider does not touch the kernel of the machine it runs on: routes belong on
//! every machine. Each machine's node agent ([`crate::agent`]) watches its part of the
//! table and installs it, so a route exists on every machine but the one it points to.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use rkube_proto::cloudlocal as cl;
use rkube_proto::cloudprovider as cp;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

/// One route as the provider keeps it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoredRoute {
    pub name: String,
    pub target_node: String,
    pub destination_cidr: String,
    /// The target node's address; none when the route loop gave no IPv4 address.
    pub gateway: Option<Ipv4Addr>,
}

/// Routes by cluster name, then by destination CIDR: a CIDR routes to one node.
type Table = BTreeMap<String, BTreeMap<String, StoredRoute>>;

/// Why a route could not be kept.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    #[error("{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

/// The route table, and everyone watching it.
pub struct Routes {
    state: PathBuf,
    table: watch::Sender<Table>,
}

impl Routes {
    /// The routes of the state file `state` (none if it does not exist yet).
    pub fn restore(state: PathBuf) -> Result<Routes, RouteError> {
        let table: Table = match std::fs::read(&state) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| RouteError::Invalid {
                field: "route state",
                reason: format!("{}: {e}", state.display()),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Table::new(),
            Err(source) => {
                return Err(RouteError::Io {
                    what: state.display().to_string(),
                    source,
                })
            }
        };
        Ok(Routes {
            state,
            table: watch::channel(table).0,
        })
    }

    /// The routes of cluster `cluster`.
    pub fn list(&self, cluster: &str) -> Vec<StoredRoute> {
        self.table
            .borrow()
            .get(cluster)
            .map(|t| t.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Routes `route.destination_cidr` to `route.target_node` in `cluster`, replacing a
    /// route of the same CIDR.
    pub fn create(&self, cluster: &str, name: &str, route: &cp::Route) -> Result<(), RouteError> {
        let cidr = checked_cidr(&route.destination_cidr)?;
        if route.target_node.is_empty() {
            return Err(invalid("route.target_node", "Required value"));
        }
        let stored = StoredRoute {
            name: if route.name.is_empty() {
                name
            } else {
                &route.name
            }
            .to_string(),
            target_node: route.target_node.clone(),
            destination_cidr: cidr.clone(),
            gateway: gateway(&route.target_node_addresses),
        };
        let mut table = self.table.borrow().clone();
        let routes = table.entry(cluster.to_string()).or_default();
        if routes.get(&cidr) == Some(&stored) {
            return Ok(());
        }
        routes.insert(cidr, stored);
        self.commit(table)
    }

    /// Deletes the route of `route.destination_cidr` in `cluster`; a route already gone is
    /// not an error.
    pub fn delete(&self, cluster: &str, route: &cp::Route) -> Result<(), RouteError> {
        let cidr = checked_cidr(&route.destination_cidr)?;
        let mut table = self.table.borrow().clone();
        let Some(routes) = table.get_mut(cluster) else {
            return Ok(());
        };
        if routes.remove(&cidr).is_none() {
            return Ok(());
        }
        if routes.is_empty() {
            table.remove(cluster);
        }
        self.commit(table)
    }

    /// A receiver that sees the table now and after every change.
    pub fn subscribe(&self) -> watch::Receiver<Table> {
        self.table.subscribe()
    }

    /// Saves `table`, then publishes it: a change is announced only once it is kept.
    fn commit(&self, table: Table) -> Result<(), RouteError> {
        let io = |source| RouteError::Io {
            what: self.state.display().to_string(),
            source,
        };
        crate::save_state(&self.state, &table).map_err(io)?;
        self.table.send_replace(table);
        Ok(())
    }
}

/// The kernel routes node `node`'s machine needs: every route with a gateway, of every
/// cluster, but those to `node` itself.
pub fn for_node(table: &Table, node: &str) -> Vec<cl::HostRoute> {
    table
        .values()
        .flat_map(|routes| routes.values())
        .filter(|r| r.target_node != node)
        .filter_map(|r| {
            Some(cl::HostRoute {
                destination_cidr: r.destination_cidr.clone(),
                gateway: r.gateway?.to_string(),
                target_node: r.target_node.clone(),
            })
        })
        .collect()
}

fn invalid(field: &'static str, reason: impl Into<String>) -> RouteError {
    RouteError::Invalid {
        field,
        reason: reason.into(),
    }
}

/// An IPv4 CIDR in canonical form (the network address, as `ip route` shows it).
fn checked_cidr(s: &str) -> Result<String, RouteError> {
    let field = "route.destination_cidr";
    let bits = s.split_once('/').and_then(|(_, b)| b.parse::<u32>().ok());
    let (net, _) = crate::listeners::cidr(s)
        .filter(|_| bits.is_some_and(|b| b <= 32))
        .ok_or_else(|| invalid(field, format!("{s:?}: not an IPv4 CIDR")))?;
    Ok(format!("{}/{}", Ipv4Addr::from(net), bits.unwrap_or(32)))
}

/// The node's InternalIP, or else any IPv4 address of it.
fn gateway(addresses: &[cp::NodeAddress]) -> Option<Ipv4Addr> {
    let v4 = |a: &cp::NodeAddress| a.address.parse::<Ipv4Addr>().ok();
    addresses
        .iter()
        .filter(|a| a.r#type == "InternalIP")
        .find_map(v4)
        .or_else(|| addresses.iter().find_map(v4))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(node: &str, cidr: &str, ip: &str) -> cp::Route {
        cp::Route {
            target_node: node.into(),
            destination_cidr: cidr.into(),
            target_node_addresses: vec![
                cp::NodeAddress {
                    r#type: "Hostname".into(),
                    address: node.into(),
                },
                cp::NodeAddress {
                    r#type: "InternalIP".into(),
                    address: ip.into(),
                },
            ],
            ..Default::default()
        }
    }

    #[test]
    fn a_machine_gets_every_route_but_its_own_and_the_table_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("routes.json");
        let routes = Routes::restore(state.clone()).unwrap();
        routes
            .create("c", "c-a", &route("a", "10.244.1.0/24", "192.168.0.1"))
            .unwrap();
        routes
            .create("c", "c-b", &route("b", "10.244.2.7/24", "192.168.0.2"))
            .unwrap();
        let mut rx = routes.subscribe();
        let for_a = for_node(&rx.borrow_and_update(), "a");
        assert_eq!(for_a.len(), 1);
        assert_eq!(
            (
                for_a[0].destination_cidr.as_str(),
                for_a[0].gateway.as_str()
            ),
            ("10.244.2.0/24", "192.168.0.2")
        );
        routes
            .delete("c", &route("b", "10.244.2.0/24", ""))
            .unwrap();
        assert!(rx.has_changed().unwrap());
        assert!(for_node(&rx.borrow_and_update(), "a").is_empty());
        let again = Routes::restore(state).unwrap();
        assert_eq!(again.list("c"), routes.list("c"));
        assert_eq!(again.list("c").len(), 1);
    }

    #[test]
    fn bad_routes_are_refused_with_the_field() {
        let dir = tempfile::tempdir().unwrap();
        let routes = Routes::restore(dir.path().join("r.json")).unwrap();
        for cidr in ["10.0.0.0/33", "10.0.0.0", "nope/8", ""] {
            let e = routes
                .create("c", "x", &route("a", cidr, "1.2.3.4"))
                .unwrap_err();
            assert!(e.to_string().starts_with("route.destination_cidr:"), "{e}");
        }
        let e = routes
            .create("c", "x", &route("", "10.0.0.0/8", "1.2.3.4"))
            .unwrap_err();
        assert!(e.to_string().starts_with("route.target_node:"), "{e}");
        assert!(routes.list("c").is_empty());
    }
}
