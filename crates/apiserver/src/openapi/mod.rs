//! The OpenAPI documents of the API, as kube-apiserver serves them: `/openapi/v2` (Swagger
//! 2.0, as JSON or as gnostic's protobuf) and `/openapi/v3` (an index naming one OpenAPI 3.0
//! document per group-version, each under `/openapi/v3/<api path>?hash=<content hash>`).
//!
//! kubectl reads them to validate and diff manifests (whether the server checks fields
//! itself, from the parameters of each kind's PATCH operation), to compute strategic merge
//! patches (the patch metadata of the definitions) and for `kubectl explain` (the schema
//! whose `x-kubernetes-group-version-kind` names the kind).
//!
//! Everything derives from the registry: built-in kinds from `api_model::schema`, custom
//! kinds from their CRD's schema. The documents are built on first use after the registry
//! changes (its generation) and kept until it changes again.

mod defs;
mod params;
mod paths;
mod proto;
mod serve;
mod v2;
mod v3;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use defs::Defs;
use parking_lot::Mutex;
use paths::PathItem;
use prost::Message;
use serde_json::{json, Value};
use sha2::{Digest, Sha512};

use crate::registry::{Registry, Schema};

/// The OpenAPI documents of one server, rebuilt when its registry changes.
#[derive(Default)]
pub struct OpenApi {
    current: Mutex<Option<Arc<Snapshot>>>,
}

/// The documents of one registry generation, each encoded on first use.
struct Snapshot {
    generation: u64,
    model: Model,
    v2: OnceLock<V2>,
    v3: OnceLock<V3>,
}

/// A document's bytes and the hash of them (its ETag, and the `hash` of v3 URLs).
struct Encoded {
    body: Bytes,
    hash: String,
}

impl Encoded {
    fn new(body: Vec<u8>) -> Self {
        let hash = format!("{:X}", Sha512::digest(&body));
        Encoded {
            body: body.into(),
            hash,
        }
    }
}

struct V2 {
    json: Encoded,
    protobuf: Encoded,
}

struct V3 {
    index: Encoded,
    /// By API path: `api/v1`, `apis/apps/v1`.
    documents: BTreeMap<String, Encoded>,
}

/// What the documents are written from: the paths of every served kind by group-version,
/// and the definitions of custom kinds (the built-in ones are in [`defs::builtin`]).
struct Model {
    custom: Defs,
    groups: BTreeMap<String, Group>,
}

/// The paths of one group-version and the definitions of its kinds and their lists.
#[derive(Default)]
struct Group {
    items: Vec<PathItem>,
    roots: Vec<String>,
}

impl Model {
    fn build(registry: &Registry) -> Model {
        let mut custom = Defs::new();
        let mut groups: BTreeMap<String, Group> = BTreeMap::new();
        for t in registry.all() {
            let Some(def) = defs::definition_name(&t) else {
                continue;
            };
            let is_custom = match &t.schema {
                Schema::Custom(schema) => {
                    custom.extend(defs::custom(&t, schema.as_ref()));
                    true
                }
                Schema::Builtin(_) => false,
            };
            let group = groups.entry(paths::group_version_path(&t)).or_default();
            group.items.extend(paths::paths(&t, &def, is_custom));
            group.roots.push(format!("{def}List"));
            group.roots.push(def);
        }
        Model { custom, groups }
    }

    /// A definition by name, custom or built-in.
    fn definition(&self, name: &str) -> Option<&Value> {
        self.custom.get(name).or_else(|| defs::builtin().get(name))
    }
}

impl Snapshot {
    fn v2(&self) -> &V2 {
        self.v2.get_or_init(|| {
            let doc = v2::document(&self.model);
            V2 {
                protobuf: Encoded::new(proto::document(&doc).encode_to_vec()),
                json: Encoded::new(doc.to_string().into_bytes()),
            }
        })
    }

    fn v3(&self) -> &V3 {
        self.v3.get_or_init(|| {
            let documents: BTreeMap<String, Encoded> = self
                .model
                .groups
                .iter()
                .map(|(path, group)| {
                    let doc = v3::document(&self.model, group);
                    (path.clone(), Encoded::new(doc.to_string().into_bytes()))
                })
                .collect();
            let hashes = documents.iter().map(|(p, d)| (p.as_str(), d.hash.as_str()));
            let index = v3::index(hashes).to_string().into_bytes();
            V3 {
                index: Encoded::new(index),
                documents,
            }
        })
    }
}

impl OpenApi {
    pub fn new() -> Self {
        OpenApi::default()
    }

    /// The documents for what `registry` serves now.
    fn snapshot(&self, registry: &Registry) -> Arc<Snapshot> {
        let mut current = self.current.lock();
        // Read before the kinds: a change racing the build only causes another build.
        let generation = registry.generation();
        match &*current {
            Some(s) if s.generation == generation => s.clone(),
            _ => {
                let s = Arc::new(Snapshot {
                    generation,
                    model: Model::build(registry),
                    v2: OnceLock::new(),
                    v3: OnceLock::new(),
                });
                *current = Some(s.clone());
                s
            }
        }
    }

    /// `/openapi/v2` as gnostic's `openapi.v2.Document` protobuf.
    pub fn v2_protobuf(&self, registry: &Registry) -> Bytes {
        self.snapshot(registry).v2().protobuf.body.clone()
    }

    /// `/openapi/v2` as JSON.
    pub fn v2_json(&self, registry: &Registry) -> Bytes {
        self.snapshot(registry).v2().json.body.clone()
    }

    /// `/openapi/v3`: the group-version documents with the hashes of their content.
    pub fn v3_index(&self, registry: &Registry) -> Bytes {
        self.snapshot(registry).v3().index.body.clone()
    }

    /// The OpenAPI v3 document of the group-version at `path` (`apis/apps/v1`, `api/v1`)
    /// and the hash of it, if it is served.
    pub fn v3_document(&self, registry: &Registry, path: &str) -> Option<(Bytes, String)> {
        let snapshot = self.snapshot(registry);
        let doc = snapshot.v3().documents.get(path.trim_matches('/'))?;
        Some((doc.body.clone(), doc.hash.clone()))
    }
}

fn info() -> Value {
    json!({"title": "Kubernetes", "version": concat!("v", env!("CARGO_PKG_VERSION"))})
}

fn status_text(code: &str) -> &'static str {
    match code {
        "200" => "OK",
        "201" => "Created",
        "202" => "Accepted",
        _ => "",
    }
}
