//! The schemas of the built-in kinds: OpenAPI definitions generated from the `k8s-openapi`
//! types, with the patch metadata that decides how lists merge
//! (`x-kubernetes-patch-strategy`, `x-kubernetes-patch-merge-key`,
//! `x-kubernetes-list-type`, `x-kubernetes-list-map-keys`) laid over them from
//! [`patch_meta`]. Custom kinds bring their own schema (a CRD's openAPIV3Schema), which is
//! walked the same way through [`Node`].

mod builtin;
pub mod patch_meta;

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::OnceLock;

pub use builtin::ROOTS;
use serde_json::Value;

/// Named OpenAPI definitions; references are `#/definitions/<name>`.
#[derive(Clone, Debug, Default)]
pub struct Definitions {
    pub defs: BTreeMap<String, Value>,
}

static BUILTIN: OnceLock<Definitions> = OnceLock::new();

/// The definitions of every built-in kind, built once.
pub fn builtin() -> &'static Definitions {
    BUILTIN.get_or_init(builtin::generate)
}

/// Hashes a node's address as it is: addresses are already spread.
#[derive(Default)]
struct AddressHasher(u64);

impl Hasher for AddressHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8 | u64::from(*b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_usize(&mut self, n: usize) {
        self.0 = (n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type Resolved = HashMap<usize, &'static Value, BuildHasherDefault<AddressHasher>>;

/// Where every reference in the built-in definitions leads, by the referring node's
/// address: resolving is on the path of every merge, and walking `$ref`/`allOf` through
/// the named definitions each time costs more than the merge itself.
fn builtin_resolved() -> &'static Resolved {
    static RESOLVED: OnceLock<Resolved> = OnceLock::new();
    RESOLVED.get_or_init(|| {
        let defs = builtin();
        let mut out = Resolved::default();
        let mut stack: Vec<&'static Value> = defs.defs.values().collect();
        while let Some(v) = stack.pop() {
            match v {
                Value::Object(m) => {
                    if m.contains_key("$ref") || m.contains_key("allOf") {
                        out.insert(v as *const Value as usize, defs.resolve_slow(v));
                    }
                    stack.extend(m.values());
                }
                Value::Array(items) => stack.extend(items),
                _ => {}
            }
        }
        out
    })
}

impl Definitions {
    /// The definition that follows `$ref` in `schema`, or `schema` itself.
    pub fn resolve<'a>(&'a self, schema: &'a Value) -> &'a Value {
        if !matches!(schema, Value::Object(m) if m.contains_key("$ref") || m.contains_key("allOf"))
        {
            return schema;
        }
        if BUILTIN.get().is_some_and(|b| std::ptr::eq(self, b)) {
            if let Some(r) = builtin_resolved().get(&(schema as *const Value as usize)) {
                return r;
            }
        }
        self.resolve_slow(schema)
    }

    fn resolve_slow<'a>(&'a self, schema: &'a Value) -> &'a Value {
        let mut s = schema;
        // allOf with one member is how a described reference is written.
        for _ in 0..8 {
            if let Some(r) = s.get("$ref").and_then(|r| r.as_str()) {
                match r
                    .strip_prefix("#/definitions/")
                    .and_then(|n| self.defs.get(n))
                {
                    Some(d) => s = d,
                    None => return s,
                }
            } else if let Some([one]) = s
                .get("allOf")
                .and_then(|a| a.as_array())
                .map(|a| a.as_slice())
            {
                s = one;
            } else {
                return s;
            }
        }
        s
    }

    /// The schema of the kind `api_version`/`kind`, if it is a built-in one.
    pub fn root(&self, api_version: &str, kind: &str) -> Option<Node<'_>> {
        let name = ROOTS
            .iter()
            .find(|r| r.api_version == api_version && r.kind == kind)?
            .definition;
        Some(Node::new(self, self.defs.get(name)?))
    }
}

/// One place in a schema, with the definitions its references point into.
#[derive(Clone, Copy, Debug)]
pub struct Node<'a> {
    pub defs: &'a Definitions,
    pub schema: &'a Value,
}

impl<'a> Node<'a> {
    pub fn new(defs: &'a Definitions, schema: &'a Value) -> Self {
        Node {
            defs,
            schema: defs.resolve(schema),
        }
    }

    /// The schema of property `name` of an object.
    pub fn field(&self, name: &str) -> Option<Node<'a>> {
        let p = self.schema.get("properties")?.get(name)?;
        Some(Node {
            defs: self.defs,
            // Extensions on the property itself (patch metadata) win over the referenced
            // definition's; callers read them through `ext`, which looks at `raw` first.
            schema: p,
        })
    }

    /// The schema behind this node's references.
    pub fn resolved(&self) -> Node<'a> {
        Node::new(self.defs, self.schema)
    }

    /// The schema of a list's items.
    pub fn items(&self) -> Option<Node<'a>> {
        let s = self.resolved().schema;
        Some(Node::new(self.defs, s.get("items")?))
    }

    /// The schema of a map's values.
    pub fn values(&self) -> Option<Node<'a>> {
        let s = self.resolved().schema;
        match s.get("additionalProperties")? {
            Value::Object(_) => Some(Node::new(self.defs, &s["additionalProperties"])),
            _ => None,
        }
    }

    /// An extension (`x-kubernetes-…`) or keyword, read from the property first and then
    /// from the definition it references.
    pub fn ext(&self, key: &str) -> Option<&'a Value> {
        self.schema
            .get(key)
            .or_else(|| self.resolved().schema.get(key))
    }

    /// The `type` keyword, after references.
    pub fn type_name(&self) -> Option<&'a str> {
        self.ext("type").and_then(|t| t.as_str())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::{builtin, Definitions};

    /// Every reference of the built-in definitions resolves through the cache as it does by
    /// walking the definitions; other definitions walk.
    #[test]
    fn resolution_through_the_cache_matches_the_walk() {
        let defs = builtin();
        let mut stack: Vec<&Value> = defs.defs.values().collect();
        let mut refs = 0;
        while let Some(v) = stack.pop() {
            match v {
                Value::Object(m) => {
                    if m.contains_key("$ref") || m.contains_key("allOf") {
                        refs += 1;
                        assert!(std::ptr::eq(defs.resolve(v), defs.resolve_slow(v)), "{v}");
                    }
                    stack.extend(m.values());
                }
                Value::Array(items) => stack.extend(items),
                _ => {}
            }
        }
        assert!(refs > 100, "{refs}");

        let mut own = Definitions::default();
        own.defs.insert("T".into(), json!({"type": "string"}));
        let r = json!({"$ref": "#/definitions/T"});
        assert_eq!(own.resolve(&r), &json!({"type": "string"}));
    }
}
