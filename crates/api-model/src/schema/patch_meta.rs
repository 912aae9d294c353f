//! How the lists and maps of the built-in kinds merge, as Kubernetes declares it on its Go
//! types (patchStrategy, patchMergeKey, listType, listMapKey, mapType, structType): the data
//! that strategic merge patch, server-side apply and the OpenAPI documents read. The table
//! itself is in [`table`]; [`overlay`] writes it onto the generated definitions as the
//! `x-kubernetes-…` extensions Kubernetes publishes.

mod table;

use std::collections::BTreeMap;

use serde_json::{json, Value};

/// The metadata of one property of one definition.
pub struct Meta {
    pub definition: &'static str,
    pub property: &'static str,
    /// `merge`, `retainKeys`, `merge,retainKeys` or `replace`.
    pub patch_strategy: Option<&'static str>,
    pub patch_merge_key: Option<&'static str>,
    /// `atomic`, `set` or `map`.
    pub list_type: Option<&'static str>,
    pub list_map_keys: &'static [&'static str],
    /// `atomic` or `granular`, for map-valued properties.
    pub map_type: Option<&'static str>,
}

/// The table: every marked property of the definitions reachable from the built-in kinds.
pub static TABLE: &[Meta] = table::TABLE;

/// Definitions marked `+structType=atomic`: set and replaced as one value by server-side
/// apply (`x-kubernetes-map-type: atomic` on the definition).
pub static ATOMIC_STRUCTS: &[&str] = &[
    "io.k8s.api.core.v1.ConfigMapKeySelector",
    "io.k8s.api.core.v1.EndpointAddress",
    "io.k8s.api.core.v1.EndpointPort",
    "io.k8s.api.core.v1.EvictionResponder",
    "io.k8s.api.core.v1.FileKeySelector",
    "io.k8s.api.core.v1.LocalObjectReference",
    "io.k8s.api.core.v1.NodeSelector",
    "io.k8s.api.core.v1.NodeSelectorTerm",
    "io.k8s.api.core.v1.ObjectFieldSelector",
    "io.k8s.api.core.v1.ObjectReference",
    "io.k8s.api.core.v1.ResourceFieldSelector",
    "io.k8s.api.core.v1.ScopeSelector",
    "io.k8s.api.core.v1.SecretKeySelector",
    "io.k8s.api.core.v1.SecretReference",
    "io.k8s.api.core.v1.TypedLocalObjectReference",
    "io.k8s.api.discovery.v1.EndpointPort",
    "io.k8s.api.rbac.v1.RoleRef",
    "io.k8s.api.rbac.v1.Subject",
    "io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector",
    "io.k8s.apimachinery.pkg.apis.meta.v1.OwnerReference",
];

/// Declared defaults (`+default=`) of list-map key fields: an item that omits the field is
/// keyed by the default, as the server would have defaulted it.
pub static KEY_DEFAULTS: &[(&str, &str, &str)] = &[
    ("io.k8s.api.core.v1.ContainerPort", "protocol", "TCP"),
    ("io.k8s.api.core.v1.ServicePort", "protocol", "TCP"),
];

const NONE: Meta = Meta {
    definition: "",
    property: "",
    patch_strategy: None,
    patch_merge_key: None,
    list_type: None,
    list_map_keys: &[],
    map_type: None,
};

/// A list merged by `key` in patches and keyed by `keys` in apply.
const fn merge_map(key: &'static str, keys: &'static [&'static str]) -> Meta {
    Meta {
        patch_strategy: Some("merge"),
        patch_merge_key: Some(key),
        list_type: Some("map"),
        list_map_keys: keys,
        ..NONE
    }
}

/// As [`merge_map`], and `$retainKeys` clears the union members a patch leaves out.
const fn merge_map_retain(key: &'static str, keys: &'static [&'static str]) -> Meta {
    Meta {
        patch_strategy: Some("merge,retainKeys"),
        ..merge_map(key, keys)
    }
}

/// A list keyed in apply only; patches replace it.
const fn list_map(keys: &'static [&'static str]) -> Meta {
    Meta {
        list_type: Some("map"),
        list_map_keys: keys,
        ..NONE
    }
}

/// Merged by `key` in patches, atomic in apply.
const fn merge_atomic(key: &'static str) -> Meta {
    Meta {
        patch_strategy: Some("merge"),
        patch_merge_key: Some(key),
        list_type: Some("atomic"),
        ..NONE
    }
}

const ATOMIC: Meta = Meta {
    list_type: Some("atomic"),
    ..NONE
};
const SET: Meta = Meta {
    list_type: Some("set"),
    ..NONE
};
const MERGE_SET: Meta = Meta {
    patch_strategy: Some("merge"),
    list_type: Some("set"),
    ..NONE
};
const RETAIN_KEYS: Meta = Meta {
    patch_strategy: Some("retainKeys"),
    ..NONE
};
const REPLACE: Meta = Meta {
    patch_strategy: Some("replace"),
    ..NONE
};
const ATOMIC_MAP: Meta = Meta {
    map_type: Some("atomic"),
    ..NONE
};
const GRANULAR_MAP: Meta = Meta {
    map_type: Some("granular"),
    ..NONE
};

/// Writes the table's extensions onto the properties and definitions of `defs`.
pub fn overlay(defs: &mut BTreeMap<String, Value>) {
    for m in TABLE {
        let Some(p) = property_mut(defs, m.definition, m.property) else {
            continue;
        };
        let ext = [
            ("x-kubernetes-patch-strategy", m.patch_strategy),
            ("x-kubernetes-patch-merge-key", m.patch_merge_key),
            ("x-kubernetes-list-type", m.list_type),
            ("x-kubernetes-map-type", m.map_type),
        ];
        for (key, v) in ext {
            if let Some(v) = v {
                p.insert(key.into(), json!(v));
            }
        }
        if !m.list_map_keys.is_empty() {
            p.insert("x-kubernetes-list-map-keys".into(), json!(m.list_map_keys));
        }
    }
    for name in ATOMIC_STRUCTS {
        if let Some(d) = defs.get_mut(*name).and_then(|d| d.as_object_mut()) {
            d.insert("x-kubernetes-map-type".into(), json!("atomic"));
        }
    }
    for (def, prop, default) in KEY_DEFAULTS {
        if let Some(p) = property_mut(defs, def, prop) {
            p.insert("default".into(), json!(default));
        }
    }
}

fn property_mut<'a>(
    defs: &'a mut BTreeMap<String, Value>,
    definition: &str,
    property: &str,
) -> Option<&'a mut serde_json::Map<String, Value>> {
    defs.get_mut(definition)?
        .get_mut("properties")?
        .get_mut(property)?
        .as_object_mut()
}

#[cfg(test)]
mod tests {
    use super::super::builtin;

    #[test]
    fn every_entry_names_a_property_that_exists() {
        let defs = builtin();
        for m in super::TABLE {
            let d = defs
                .defs
                .get(m.definition)
                .unwrap_or_else(|| panic!("{}", m.definition));
            assert!(
                d["properties"].get(m.property).is_some(),
                "{}.{}",
                m.definition,
                m.property
            );
        }
        for name in super::ATOMIC_STRUCTS {
            assert!(defs.defs.contains_key(*name), "{name}");
        }
        for (def, prop, _) in super::KEY_DEFAULTS {
            assert!(
                defs.defs[*def]["properties"].get(*prop).is_some(),
                "{def}.{prop}"
            );
        }
    }

    #[test]
    fn no_property_is_listed_twice() {
        let mut seen = std::collections::BTreeSet::new();
        for m in super::TABLE {
            assert!(
                seen.insert((m.definition, m.property)),
                "{}.{}",
                m.definition,
                m.property
            );
        }
    }

    #[test]
    fn list_map_keys_name_item_properties() {
        let defs = builtin();
        for m in super::TABLE.iter().filter(|m| m.list_type == Some("map")) {
            let node = super::super::Node::new(defs, &defs.defs[m.definition]);
            let items = node.field(m.property).and_then(|f| f.items()).unwrap();
            for k in m.list_map_keys.iter().chain(m.patch_merge_key.iter()) {
                assert!(
                    items.field(k).is_some(),
                    "{}.{}: {k}",
                    m.definition,
                    m.property
                );
            }
        }
    }

    #[test]
    fn pod_containers_merge_by_name() {
        let defs = builtin();
        let pod = defs.root("v1", "Pod").unwrap();
        let c = pod
            .field("spec")
            .unwrap()
            .resolved()
            .field("containers")
            .unwrap();
        assert_eq!(c.ext("x-kubernetes-patch-merge-key").unwrap(), "name");
        let env = c.items().unwrap().field("env").unwrap();
        assert_eq!(env.ext("x-kubernetes-list-type").unwrap(), "map");
    }

    /// Spot checks against the markers on the Go types, one per kind of marker.
    #[test]
    fn markers_match_kubernetes() {
        let defs = builtin();
        let prop = |d: &str, p: &str| {
            let node = super::super::Node::new(defs, &defs.defs[d]);
            node.field(p).unwrap()
        };
        let ext = |d: &str, p: &str, k: &str| prop(d, p).ext(k).cloned();
        let core = |t: &str| format!("io.k8s.api.core.v1.{t}");
        let meta = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";
        let cases: &[(String, &str, &str, Value)] = &[
            (
                core("PodSpec"),
                "tolerations",
                "x-kubernetes-list-type",
                json!("atomic"),
            ),
            (
                core("PodSpec"),
                "volumes",
                "x-kubernetes-patch-strategy",
                json!("merge,retainKeys"),
            ),
            (
                core("PodSpec"),
                "nodeSelector",
                "x-kubernetes-map-type",
                json!("atomic"),
            ),
            (
                core("PodSpec"),
                "topologySpreadConstraints",
                "x-kubernetes-list-map-keys",
                json!(["topologyKey", "whenUnsatisfiable"]),
            ),
            (
                core("Container"),
                "ports",
                "x-kubernetes-list-map-keys",
                json!(["containerPort", "protocol"]),
            ),
            (
                core("EphemeralContainer"),
                "env",
                "x-kubernetes-patch-merge-key",
                json!("name"),
            ),
            (
                core("Container"),
                "volumeDevices",
                "x-kubernetes-patch-merge-key",
                json!("devicePath"),
            ),
            (
                core("NodeStatus"),
                "addresses",
                "x-kubernetes-patch-merge-key",
                json!("type"),
            ),
            (
                core("NodeStatus"),
                "images",
                "x-kubernetes-list-type",
                json!("atomic"),
            ),
            (
                core("ResourceRequirements"),
                "claims",
                "x-kubernetes-list-type",
                json!("map"),
            ),
            (core("ContainerPort"), "protocol", "default", json!("TCP")),
            (
                meta.into(),
                "finalizers",
                "x-kubernetes-patch-strategy",
                json!("merge"),
            ),
            (
                meta.into(),
                "finalizers",
                "x-kubernetes-list-type",
                json!("set"),
            ),
            (
                meta.into(),
                "managedFields",
                "x-kubernetes-list-type",
                json!("atomic"),
            ),
            (
                meta.into(),
                "ownerReferences",
                "x-kubernetes-patch-merge-key",
                json!("uid"),
            ),
            (
                "io.k8s.api.apps.v1.DeploymentSpec".into(),
                "strategy",
                "x-kubernetes-patch-strategy",
                json!("retainKeys"),
            ),
            (
                "io.k8s.api.batch.v1.JobStatus".into(),
                "conditions",
                "x-kubernetes-list-type",
                json!("atomic"),
            ),
            (
                "io.k8s.api.discovery.v1.Endpoint".into(),
                "addresses",
                "x-kubernetes-list-type",
                json!("set"),
            ),
            (
                "io.k8s.api.rbac.v1.ClusterRole".into(),
                "rules",
                "x-kubernetes-list-type",
                json!("atomic"),
            ),
        ];
        for (d, p, k, want) in cases {
            assert_eq!(ext(d, p, k).as_ref(), Some(want), "{d}.{p} {k}");
        }
        let sel = prop("io.k8s.api.apps.v1.DeploymentSpec", "selector");
        assert_eq!(sel.ext("x-kubernetes-map-type").unwrap(), "atomic");
    }

    use serde_json::{json, Value};
}
