//! Sets of fields, as `metadata.managedFields` records them (FieldsV1): a trie whose edges
//! are path elements — `f:<name>` (a field or map key), `k:{"key":value,…}` (a list item by
//! its list-map keys), `v:<json>` (a set item by value), `i:<index>` (a list item by
//! position) — where `.` marks a node that is itself a member of the set.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{Map, Value};

/// A FieldsV1 document that cannot be read. Not retryable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid FieldsV1 at {path:?}: {reason}")]
pub struct FieldsError {
    /// The element the error is about, in FieldsV1 form.
    pub path: String,
    pub reason: String,
}

/// One step of a field path, held in its FieldsV1 form (`f:spec`, `k:{"name":"a"}`, …) so
/// that sets order and serialize exactly as Kubernetes writes them.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PathElement(String);

impl PathElement {
    /// A field of an object, or a key of a map.
    pub fn field(name: &str) -> Self {
        let mut s = String::with_capacity(name.len() + 2);
        s.push_str("f:");
        s.push_str(name);
        PathElement(s)
    }

    /// A list item identified by its list-map keys; `keys` need not be sorted.
    pub fn key<'a>(keys: impl IntoIterator<Item = (&'a str, &'a Value)>) -> Self {
        let mut sorted: Vec<(&str, &Value)> = keys.into_iter().collect();
        sorted.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let mut s = String::with_capacity(8 + 16 * sorted.len());
        s.push_str("k:{");
        for (i, (k, v)) in sorted.into_iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            push_json_str(&mut s, k);
            s.push(':');
            push_json(&mut s, v);
        }
        s.push('}');
        PathElement(s)
    }

    /// A set item identified by its value.
    pub fn value(v: &Value) -> Self {
        let mut s = String::from("v:");
        push_json(&mut s, v);
        PathElement(s)
    }

    /// A list item identified by its position.
    pub fn index(i: usize) -> Self {
        PathElement(format!("i:{i}"))
    }

    /// The FieldsV1 form of this element.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn parse(s: &str) -> Result<Self, String> {
        let (prefix, rest) = s.split_at_checked(2).ok_or("too short")?;
        match prefix {
            "f:" => {}
            "k:" => match serde_json::from_str::<Value>(rest) {
                Ok(Value::Object(m)) if !m.is_empty() => {}
                _ => return Err("a k: element must hold a non-empty JSON object".into()),
            },
            "v:" => {
                serde_json::from_str::<Value>(rest)
                    .map_err(|e| format!("a v: element must hold a JSON value: {e}"))?;
            }
            "i:" => {
                rest.parse::<usize>()
                    .map_err(|_| "an i: element must hold an index".to_string())?;
            }
            _ => return Err(format!("unknown path element prefix {prefix:?}")),
        }
        Ok(PathElement(s.to_string()))
    }
}

/// Appends `v` as compact JSON.
fn push_json(out: &mut String, v: &Value) {
    match v {
        Value::String(s) => push_json_str(out, s),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        other => out.push_str(&other.to_string()),
    }
}

/// Appends `s` as a JSON string; the common case needs no escaping.
fn push_json_str(out: &mut String, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push('"');
        out.push_str(s);
        out.push('"');
    } else {
        out.push_str(&Value::String(s.to_string()).to_string());
    }
}

/// How Kubernetes prints a path element in messages: `.name`, `[key="value"]`, `[=value]`,
/// `[3]`.
impl fmt::Display for PathElement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (prefix, rest) = self.0.split_at(2);
        match prefix {
            "f:" => write!(f, ".{rest}"),
            "k:" => {
                let Ok(Value::Object(m)) = serde_json::from_str::<Value>(rest) else {
                    return write!(f, "[{rest}]");
                };
                let parts: Vec<String> = m.iter().map(|(k, v)| format!("{k}={v}")).collect();
                write!(f, "[{}]", parts.join(","))
            }
            "v:" => write!(f, "[={rest}]"),
            _ => write!(f, "[{rest}]"),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Entry {
    /// The path to this node is itself in the set.
    member: bool,
    children: FieldSet,
}

/// A set of field paths.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSet {
    nodes: BTreeMap<PathElement, Entry>,
}

impl FieldSet {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Adds the path `path` (which must not be empty).
    pub fn insert(&mut self, path: &[PathElement]) {
        let Some((last, parents)) = path.split_last() else {
            return;
        };
        let mut set = self;
        for pe in parents {
            set = &mut set.nodes.entry(pe.clone()).or_default().children;
        }
        set.nodes.entry(last.clone()).or_default().member = true;
    }

    /// Adds `child` under `pe`, and `pe` itself when `member`; nothing when both are empty.
    pub(crate) fn insert_child(&mut self, pe: PathElement, member: bool, child: FieldSet) {
        if !member && child.is_empty() {
            return;
        }
        match self.nodes.entry(pe) {
            std::collections::btree_map::Entry::Vacant(v) => {
                v.insert(Entry {
                    member,
                    children: child,
                });
            }
            std::collections::btree_map::Entry::Occupied(mut o) => {
                let e = o.get_mut();
                e.member |= member;
                e.children.absorb(child);
            }
        }
    }

    /// Adds every member of `other`, taking its nodes.
    pub fn absorb(&mut self, other: FieldSet) {
        if self.is_empty() {
            *self = other;
            return;
        }
        for (pe, o) in other.nodes {
            self.insert_child(pe, o.member, o.children);
        }
    }

    pub fn has(&self, path: &[PathElement]) -> bool {
        let Some((last, parents)) = path.split_last() else {
            return false;
        };
        let mut set = self;
        for pe in parents {
            match set.nodes.get(pe) {
                Some(e) => set = &e.children,
                None => return false,
            }
        }
        set.nodes.get(last).is_some_and(|e| e.member)
    }

    /// Whether `pe` is a member at this level.
    pub(crate) fn has_member(&self, pe: &PathElement) -> bool {
        self.nodes.get(pe).is_some_and(|e| e.member)
    }

    /// Whether anything is in the set at or under `pe`.
    pub(crate) fn touches(&self, pe: &PathElement) -> bool {
        self.nodes.contains_key(pe)
    }

    /// The set under `pe`, if any.
    pub(crate) fn child(&self, pe: &PathElement) -> Option<&FieldSet> {
        self.nodes.get(pe).map(|e| &e.children)
    }

    /// The elements at this level: each with whether it is a member and the set under it.
    pub(crate) fn entries(&self) -> impl Iterator<Item = (&PathElement, bool, &FieldSet)> {
        self.nodes.iter().map(|(pe, e)| (pe, e.member, &e.children))
    }

    /// The set under `pe`, to change it; emptied nodes are not pruned.
    pub(crate) fn child_mut(&mut self, pe: &PathElement) -> Option<&mut FieldSet> {
        self.nodes.get_mut(pe).map(|e| &mut e.children)
    }

    /// Keeps at this level only the elements `keep` accepts.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&PathElement) -> bool) {
        self.nodes.retain(|pe, _| keep(pe));
    }

    /// Removes the membership of `pe`, keeping what is under it.
    pub(crate) fn demote(&mut self, pe: &PathElement) {
        if let Some(e) = self.nodes.get_mut(pe) {
            e.member = false;
            if e.children.is_empty() {
                self.nodes.remove(pe);
            }
        }
    }

    pub fn union(&self, other: &FieldSet) -> FieldSet {
        let mut out = self.clone();
        out.union_with(other);
        out
    }

    pub fn union_with(&mut self, other: &FieldSet) {
        for (pe, o) in &other.nodes {
            match self.nodes.get_mut(pe) {
                Some(e) => {
                    e.member |= o.member;
                    e.children.union_with(&o.children);
                }
                None => {
                    self.nodes.insert(pe.clone(), o.clone());
                }
            }
        }
    }

    pub fn difference(&self, other: &FieldSet) -> FieldSet {
        let mut out = self.clone();
        out.subtract(other);
        out
    }

    /// Removes every member of `other` from this set.
    pub fn subtract(&mut self, other: &FieldSet) {
        if other.is_empty() {
            return;
        }
        self.nodes.retain(|pe, e| {
            if let Some(o) = other.nodes.get(pe) {
                e.member &= !o.member;
                e.children.subtract(&o.children);
            }
            e.member || !e.children.is_empty()
        });
    }

    pub fn intersection(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet::new();
        for (pe, e) in &self.nodes {
            if let Some(o) = other.nodes.get(pe) {
                let children = e.children.intersection(&o.children);
                out.insert_child(pe.clone(), e.member && o.member, children);
            }
        }
        out
    }

    /// The members, each printed as Kubernetes prints a path (`.spec.replicas`,
    /// `.spec.containers[name="app"].image`), in set order.
    pub fn paths(&self) -> Vec<String> {
        let mut out = Vec::new();
        self.collect_paths(&mut String::new(), &mut out);
        out
    }

    fn collect_paths(&self, prefix: &mut String, out: &mut Vec<String>) {
        for (pe, e) in &self.nodes {
            let len = prefix.len();
            prefix.push_str(&pe.to_string());
            if e.member {
                out.push(prefix.clone());
            }
            e.children.collect_paths(prefix, out);
            prefix.truncate(len);
        }
    }

    /// The FieldsV1 JSON of this set.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        for (pe, e) in &self.nodes {
            let mut child = match e.children.to_json() {
                Value::Object(c) => c,
                _ => Map::new(),
            };
            if e.member && !child.is_empty() {
                child.insert(".".into(), Value::Object(Map::new()));
            }
            m.insert(pe.0.clone(), Value::Object(child));
        }
        Value::Object(m)
    }

    /// Reads a FieldsV1 document.
    pub fn from_json(v: &Value) -> Result<FieldSet, FieldsError> {
        let Value::Object(m) = v else {
            return Err(FieldsError {
                path: String::new(),
                reason: "FieldsV1 must be a JSON object".into(),
            });
        };
        let mut out = FieldSet::new();
        for (k, child) in m {
            if k == "." {
                continue;
            }
            let err = |reason: String| FieldsError {
                path: k.clone(),
                reason,
            };
            let pe = PathElement::parse(k).map_err(err)?;
            let Value::Object(cm) = child else {
                return Err(err("every element must map to an object".into()));
            };
            let children = FieldSet::from_json(child).map_err(|e| FieldsError {
                path: format!("{k}/{}", e.path),
                reason: e.reason,
            })?;
            let member = cm.is_empty() || cm.contains_key(".");
            out.nodes.insert(pe, Entry { member, children });
        }
        Ok(out)
    }
}
