//! The machines the `local` provider knows: an inventory file an operator keeps (YAML or
//! JSON), read again at every call, so that editing it is how a machine is powered off or
//! removed.
//!
//! ```yaml
//! region: home
//! machines:
//!   - name: n1            # the Node's name
//!     instanceType: small
//!     zone: rack-1
//!     state: running      # or: shutdown
//!     labels: {example.com/disk: ssd}
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

/// The prefix of the providerIDs the provider gives: `local://<machine>`.
pub const PROVIDER_ID_PREFIX: &str = "local://";

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Inventory {
    #[serde(default)]
    pub region: String,
    #[serde(default)]
    pub machines: Vec<Machine>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Machine {
    pub name: String,
    #[serde(default)]
    pub instance_type: String,
    #[serde(default)]
    pub zone: String,
    #[serde(default)]
    pub state: State,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum State {
    #[default]
    Running,
    Shutdown,
}

/// Why the inventory could not be read.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    #[error("inventory {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("inventory {path}: {source}")]
    Parse {
        path: String,
        #[source]
        source: serde_yaml_ng::Error,
    },
    #[error("inventory {path}: machine {name:?} is listed twice")]
    Duplicate { path: String, name: String },
}

impl Inventory {
    pub fn read(path: &Path) -> Result<Inventory, InventoryError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| InventoryError::Read {
            path: p.clone(),
            source,
        })?;
        Inventory::parse(&text).map_err(|e| match e {
            InventoryError::Parse { source, .. } => InventoryError::Parse { path: p, source },
            InventoryError::Duplicate { name, .. } => InventoryError::Duplicate { path: p, name },
            e => e,
        })
    }

    /// Parses YAML (or JSON, which is YAML).
    pub fn parse(text: &str) -> Result<Inventory, InventoryError> {
        let inv: Inventory =
            serde_yaml_ng::from_str(text).map_err(|source| InventoryError::Parse {
                path: String::new(),
                source,
            })?;
        let mut seen = std::collections::BTreeSet::new();
        for m in &inv.machines {
            if !seen.insert(m.name.as_str()) {
                return Err(InventoryError::Duplicate {
                    path: String::new(),
                    name: m.name.clone(),
                });
            }
        }
        Ok(inv)
    }

    /// The machine of a node: by its providerID when it has one, else by its name.
    pub fn machine(&self, node_name: &str, provider_id: &str) -> Option<&Machine> {
        let name = provider_id
            .strip_prefix(PROVIDER_ID_PREFIX)
            .filter(|n| !n.is_empty())
            .unwrap_or(node_name);
        self.machines.iter().find(|m| m.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machines_are_found_by_provider_id_then_by_name() {
        let inv = Inventory::parse(
            "region: home\nmachines:\n- {name: n1, zone: a}\n- {name: n2, state: shutdown}\n",
        )
        .unwrap();
        assert_eq!(inv.region, "home");
        assert_eq!(inv.machine("n1", "").unwrap().zone, "a");
        assert_eq!(
            inv.machine("whatever", "local://n2").unwrap().state,
            State::Shutdown
        );
        assert_eq!(inv.machine("n1", "local://n3"), None, "the providerID wins");
        assert_eq!(inv.machine("n9", ""), None);
    }

    #[test]
    fn bad_inventories_name_what_is_wrong() {
        let e = Inventory::parse("machines:\n- {name: a}\n- {name: a}\n").unwrap_err();
        assert!(e.to_string().contains("\"a\" is listed twice"), "{e}");
        let e = Inventory::parse("machines:\n- {name: a, state: sleeping}\n").unwrap_err();
        assert!(e.to_string().contains("sleeping"), "{e}");
        let e = Inventory::parse("machines:\n- {name: a, colour: red}\n").unwrap_err();
        assert!(e.to_string().contains("colour"), "{e}");
    }
}
