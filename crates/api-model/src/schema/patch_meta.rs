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
    use serde_json::Value;

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

    /// Spot checks against the markers on the Go types, one per kind of marker:
    /// (definition, property, extension, value).
    #[rustfmt::skip]
    const MARKERS: &[(&str, &str, &str, &str)] = &[
        ("core.v1.PodSpec", "tolerations", "list-type", r#""atomic""#),
        ("core.v1.PodSpec", "volumes", "patch-strategy", r#""merge,retainKeys""#),
        ("core.v1.PodSpec", "nodeSelector", "map-type", r#""atomic""#),
        ("core.v1.PodSpec", "topologySpreadConstraints", "list-map-keys", r#"["topologyKey","whenUnsatisfiable"]"#),
        ("core.v1.Container", "ports", "list-map-keys", r#"["containerPort","protocol"]"#),
        ("core.v1.EphemeralContainer", "env", "patch-merge-key", r#""name""#),
        ("core.v1.Container", "volumeDevices", "patch-merge-key", r#""devicePath""#),
        ("core.v1.NodeStatus", "addresses", "patch-merge-key", r#""type""#),
        ("core.v1.NodeStatus", "images", "list-type", r#""atomic""#),
        ("core.v1.ResourceRequirements", "claims", "list-type", r#""map""#),
        ("apps.v1.DeploymentSpec", "strategy", "patch-strategy", r#""retainKeys""#),
        ("batch.v1.JobStatus", "conditions", "list-type", r#""atomic""#),
        ("discovery.v1.Endpoint", "addresses", "list-type", r#""set""#),
        ("rbac.v1.ClusterRole", "rules", "list-type", r#""atomic""#),
        ("meta.v1.ObjectMeta", "finalizers", "patch-strategy", r#""merge""#),
        ("meta.v1.ObjectMeta", "finalizers", "list-type", r#""set""#),
        ("meta.v1.ObjectMeta", "managedFields", "list-type", r#""atomic""#),
        ("meta.v1.ObjectMeta", "ownerReferences", "patch-merge-key", r#""uid""#),
        ("apps.v1.DeploymentSpec", "selector", "map-type", r#""atomic""#),
    ];

    #[test]
    fn markers_match_kubernetes() {
        let defs = builtin();
        for (d, p, ext, want) in MARKERS {
            let name = match d.strip_prefix("meta.") {
                Some(m) => format!("io.k8s.apimachinery.pkg.apis.meta.{m}"),
                None => format!("io.k8s.api.{d}"),
            };
            let node = super::super::Node::new(defs, &defs.defs[&name]);
            let got = node
                .field(p)
                .unwrap()
                .ext(&format!("x-kubernetes-{ext}"))
                .cloned();
            let want: Value = serde_json::from_str(want).unwrap();
            assert_eq!(got, Some(want), "{name}.{p} {ext}");
        }
        let port = super::super::Node::new(defs, &defs.defs["io.k8s.api.core.v1.ContainerPort"]);
        assert_eq!(
            port.field("protocol").unwrap().ext("default").unwrap(),
            "TCP"
        );
    }
}
