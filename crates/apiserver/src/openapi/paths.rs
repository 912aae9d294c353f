//! The REST paths of a served kind and their operations, as Kubernetes lays them out, in a
//! form both documents are written from: collection and object paths (namespaced kinds also
//! under all namespaces), the status subresource, and for each operation its
//! `x-kubernetes-action`, `x-kubernetes-group-version-kind`, parameters, body and answers.
//!
//! Clients read these: kubectl decides whether the server validates fields
//! (`fieldValidation`) from the parameters of the PATCH operation of a kind, and
//! `kubectl explain` finds a resource's kind through the operations of its paths.

use serde_json::Value;

use super::defs::{self, DELETE_OPTIONS, PATCH, STATUS};
use super::params::{
    Param, DELETE, DELETE_COLLECTION, LIST, NAME, NAMESPACE, PATCH_PARAMS, PRETTY, WRITE,
};
use crate::registry::ResourceType;

/// The patch formats a kind accepts; custom kinds have no strategic merge patch.
pub(super) fn patch_types(custom: bool) -> &'static [&'static str] {
    if custom {
        &[
            "application/json-patch+json",
            "application/merge-patch+json",
            "application/apply-patch+yaml",
        ]
    } else {
        &[
            "application/json-patch+json",
            "application/merge-patch+json",
            "application/strategic-merge-patch+json",
            "application/apply-patch+yaml",
        ]
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Method {
    Get,
    Put,
    Post,
    Delete,
    Patch,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "get",
            Method::Put => "put",
            Method::Post => "post",
            Method::Delete => "delete",
            Method::Patch => "patch",
        }
    }
}

/// What a request carries.
#[derive(Debug)]
pub(super) enum Body {
    /// An object of the named definition, as JSON.
    Object(String),
    /// A patch in one of these formats.
    Patch(&'static [&'static str]),
}

/// One operation of a path.
#[derive(Debug)]
pub(super) struct Op {
    pub method: Method,
    pub id: String,
    pub description: String,
    /// `x-kubernetes-action`.
    pub action: &'static str,
    /// `x-kubernetes-group-version-kind`.
    pub gvk: Value,
    pub params: &'static [&'static Param],
    pub body: Option<Body>,
    /// Status codes and the definition each answers with.
    pub responses: Vec<(&'static str, String)>,
}

/// One path and its operations; `params` apply to every operation.
#[derive(Debug)]
pub(super) struct PathItem {
    pub path: String,
    pub params: Vec<&'static Param>,
    pub ops: Vec<Op>,
}

/// `api/v1` or `apis/apps/v1`: the document a kind's paths belong to.
pub(super) fn group_version_path(t: &ResourceType) -> String {
    if t.group.is_empty() {
        format!("api/{}", t.version)
    } else {
        format!("apis/{}/{}", t.group, t.version)
    }
}

/// The group and version as operation ids spell them: `CoreV1`, `AppsV1`,
/// `RbacAuthorizationV1`, `StableExampleComV1`.
fn id_prefix(t: &ResourceType) -> String {
    let group = if t.group.is_empty() {
        "core"
    } else {
        t.group.strip_suffix(".k8s.io").unwrap_or(&t.group)
    };
    let mut out = String::new();
    for part in group.split(['.', '-']).chain([t.version.as_str()]) {
        let mut chars = part.chars();
        if let Some(first) = chars.next() {
            out.extend(first.to_uppercase());
            out.push_str(chars.as_str());
        }
    }
    out
}

/// Whether a kind is only ever created (the access and token reviews).
fn create_only(t: &ResourceType) -> bool {
    matches!(
        t.group.as_str(),
        "authorization.k8s.io" | "authentication.k8s.io"
    ) && t.kind.ends_with("Review")
}

/// The paths of one served kind whose definition is `def`.
pub(super) fn paths(t: &ResourceType, def: &str, custom: bool) -> Vec<PathItem> {
    let k = KindOps {
        t,
        def,
        custom,
        gv: id_prefix(t),
        ns: if t.namespaced { "Namespaced" } else { "" },
        gvk: defs::gvk(&t.group, &t.version, &t.kind),
    };
    let prefix = format!("/{}", group_version_path(t));
    let (collection, scope) = if t.namespaced {
        let path = format!("{prefix}/namespaces/{{namespace}}/{}", t.plural);
        (path, vec![&NAMESPACE, &PRETTY])
    } else {
        (format!("{prefix}/{}", t.plural), vec![&PRETTY])
    };
    if create_only(t) {
        return vec![item(collection, scope, vec![k.create()])];
    }
    let named = format!("{collection}/{{name}}");
    let named_scope: Vec<&'static Param> = [&NAME].into_iter().chain(scope.clone()).collect();
    let mut out = vec![
        item(collection, scope, k.collection_ops()),
        item(named.clone(), named_scope.clone(), k.object_ops("")),
    ];
    if t.has_status {
        out.push(item(
            format!("{named}/status"),
            named_scope,
            k.object_ops("Status"),
        ));
    }
    if t.namespaced {
        let all = format!("{prefix}/{}", t.plural);
        out.push(item(all, vec![&PRETTY], vec![k.list_all_namespaces()]));
    }
    out
}

/// Builds the operations of one kind.
struct KindOps<'a> {
    t: &'a ResourceType,
    def: &'a str,
    custom: bool,
    /// `AppsV1`, for operation ids.
    gv: String,
    /// `Namespaced` or nothing, for operation ids.
    ns: &'static str,
    gvk: Value,
}

impl KindOps<'_> {
    fn op(&self, method: Method, action: &'static str, id: String, description: String) -> Op {
        Op {
            method,
            id,
            description,
            action,
            gvk: self.gvk.clone(),
            params: &[],
            body: None,
            responses: Vec::new(),
        }
    }

    fn id(&self, verb: &str, suffix: &str) -> String {
        format!("{verb}{}{}{}{suffix}", self.gv, self.ns, self.t.kind)
    }

    fn answers(&self, codes: &[&'static str], def: &str) -> Vec<(&'static str, String)> {
        codes.iter().map(|c| (*c, def.to_string())).collect()
    }

    fn create(&self) -> Op {
        Op {
            params: WRITE,
            body: Some(Body::Object(self.def.into())),
            responses: self.answers(&["200", "201", "202"], self.def),
            ..self.op(
                Method::Post,
                "post",
                self.id("create", ""),
                format!("create a {}", self.t.kind),
            )
        }
    }

    fn list(&self, id: String) -> Op {
        Op {
            params: LIST,
            responses: self.answers(&["200"], &format!("{}List", self.def)),
            ..self.op(
                Method::Get,
                "list",
                id,
                format!("list or watch objects of kind {}", self.t.kind),
            )
        }
    }

    fn list_all_namespaces(&self) -> Op {
        self.list(format!("list{}{}ForAllNamespaces", self.gv, self.t.kind))
    }

    fn collection_ops(&self) -> Vec<Op> {
        let delete = Op {
            params: DELETE_COLLECTION,
            body: Some(Body::Object(DELETE_OPTIONS.into())),
            responses: self.answers(&["200"], STATUS),
            ..self.op(
                Method::Delete,
                "deletecollection",
                format!("delete{}Collection{}{}", self.gv, self.ns, self.t.kind),
                format!("delete collection of {}", self.t.kind),
            )
        };
        vec![self.list(self.id("list", "")), self.create(), delete]
    }

    /// Read, replace and patch of the object (`suffix` empty, plus delete) or of its
    /// `Status` subresource.
    fn object_ops(&self, suffix: &str) -> Vec<Op> {
        let what = if suffix.is_empty() { "" } else { "status of " };
        let kind = &self.t.kind;
        let mut ops = vec![
            Op {
                responses: self.answers(&["200"], self.def),
                ..self.op(
                    Method::Get,
                    "get",
                    self.id("read", suffix),
                    format!("read {what}the specified {kind}"),
                )
            },
            Op {
                params: WRITE,
                body: Some(Body::Object(self.def.into())),
                responses: self.answers(&["200", "201"], self.def),
                ..self.op(
                    Method::Put,
                    "put",
                    self.id("replace", suffix),
                    format!("replace {what}the specified {kind}"),
                )
            },
            Op {
                params: PATCH_PARAMS,
                body: Some(Body::Patch(patch_types(self.custom))),
                responses: self.answers(&["200", "201"], self.def),
                ..self.op(
                    Method::Patch,
                    "patch",
                    self.id("patch", suffix),
                    format!("partially update {what}the specified {kind}"),
                )
            },
        ];
        if suffix.is_empty() {
            ops.push(Op {
                params: DELETE,
                body: Some(Body::Object(DELETE_OPTIONS.into())),
                responses: self.answers(&["200", "202"], STATUS),
                ..self.op(
                    Method::Delete,
                    "delete",
                    self.id("delete", ""),
                    format!("delete a {kind}"),
                )
            });
        }
        ops
    }
}

fn item(path: String, params: Vec<&'static Param>, ops: Vec<Op>) -> PathItem {
    PathItem { path, params, ops }
}

/// Every definition an operation refers to, beside the kind's own.
pub(super) const OPERATION_DEFINITIONS: &[&str] = &[STATUS, DELETE_OPTIONS, PATCH];
