//! How the lists and maps of the built-in kinds merge, as Kubernetes declares it on its Go
//! types (patchStrategy, patchMergeKey, listType, listMapKey): the data that strategic
//! merge patch, server-side apply and the OpenAPI documents read.

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
}

const fn map(
    definition: &'static str,
    property: &'static str,
    key: &'static str,
    keys: &'static [&'static str],
) -> Meta {
    Meta {
        definition,
        property,
        patch_strategy: Some("merge"),
        patch_merge_key: Some(key),
        list_type: Some("map"),
        list_map_keys: keys,
    }
}

/// The table. Entries not listed are atomic lists (replaced whole), as Kubernetes treats
/// lists without markers.
pub static TABLE: &[Meta] = &[
    map(
        "io.k8s.api.core.v1.PodSpec",
        "containers",
        "name",
        &["name"],
    ),
    map(
        "io.k8s.api.core.v1.PodSpec",
        "initContainers",
        "name",
        &["name"],
    ),
    map("io.k8s.api.core.v1.PodSpec", "volumes", "name", &["name"]),
    map("io.k8s.api.core.v1.Container", "env", "name", &["name"]),
    map(
        "io.k8s.api.core.v1.Container",
        "volumeMounts",
        "mountPath",
        &["mountPath"],
    ),
    map(
        "io.k8s.api.core.v1.Container",
        "ports",
        "containerPort",
        &["containerPort", "protocol"],
    ),
    map(
        "io.k8s.api.core.v1.ServiceSpec",
        "ports",
        "port",
        &["port", "protocol"],
    ),
];

/// Writes the table's extensions onto the properties of `defs`.
pub fn overlay(defs: &mut BTreeMap<String, Value>) {
    for m in TABLE {
        let Some(p) = defs
            .get_mut(m.definition)
            .and_then(|d| d.get_mut("properties"))
            .and_then(|p| p.get_mut(m.property))
            .and_then(|p| p.as_object_mut())
        else {
            continue;
        };
        if let Some(s) = m.patch_strategy {
            p.insert("x-kubernetes-patch-strategy".into(), json!(s));
        }
        if let Some(k) = m.patch_merge_key {
            p.insert("x-kubernetes-patch-merge-key".into(), json!(k));
        }
        if let Some(t) = m.list_type {
            p.insert("x-kubernetes-list-type".into(), json!(t));
        }
        if !m.list_map_keys.is_empty() {
            p.insert("x-kubernetes-list-map-keys".into(), json!(m.list_map_keys));
        }
    }
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
}
