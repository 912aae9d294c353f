//! What an audit event records of the `rkube.api.v1` requests and responses: the object a
//! request is about, its REST path as kube-apiserver would have been sent it, and the
//! request and response bodies.

use rkube_proto::api::{
    BindRequest, CreateRequest, DeleteRequest, DeleteResponse, GetRequest, ListRequest,
    ListResponse, Object, PatchRequest, UpdateRequest, WatchRequest,
};
use serde_json::{json, Map, Value};

use super::{Completion, ObjectRef};
use crate::registry::Registry;

/// The object a request addresses, as it comes on the wire.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Target<'a> {
    pub api_version: &'a str,
    pub kind: &'a str,
    pub namespace: &'a str,
    pub name: &'a str,
    pub subresource: &'a str,
    /// Query parameters kube-apiserver would have been sent (selectors, watch, …).
    pub query: Vec<(&'static str, String)>,
}

/// A request as the audit log sees it.
pub trait AuditTarget {
    /// The object addressed; `rpc` is the gRPC method (`update_status` names a subresource).
    fn target(&self, rpc: &str) -> Target<'_>;
    /// The request body of a write, as JSON.
    fn request_object(&self) -> Option<Value> {
        None
    }
}

/// A response as the audit log sees it.
pub trait AuditedResponse {
    /// The HTTP status of this success.
    fn success_code(&self, verb: &str) -> u16 {
        if verb == "create" {
            201
        } else {
            200
        }
    }
    /// The response body; `kind` and `api_version` are the request's.
    fn response_object(&self, _kind: &str, _api_version: &str) -> Option<Value> {
        None
    }
    /// Whether the response streams (a watch): its ResponseComplete comes when it ends.
    fn long_running(&self) -> bool {
        false
    }
    /// Keeps `done` until a long-running response ends.
    fn hold(self, done: Completion) -> Self
    where
        Self: Sized,
    {
        drop(done);
        self
    }
}

/// The client's `Audit-ID` when it sent a usable one (as Kubernetes), else a new UUID.
pub fn audit_id(sent: Option<&str>) -> String {
    sent.filter(|id| !id.is_empty() && id.len() <= 64)
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_string)
}

/// The `X-Forwarded-For` entries that are addresses, then the peer's address.
pub fn source_ips(forwarded_for: Option<&str>, peer: Option<std::net::IpAddr>) -> Vec<String> {
    let mut ips: Vec<String> = forwarded_for
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| s.parse::<std::net::IpAddr>().is_ok())
        .map(str::to_string)
        .collect();
    if let Some(ip) = peer.map(|a| a.to_string()) {
        if !ips.contains(&ip) {
            ips.push(ip);
        }
    }
    ips
}

/// Kubernetes' verb for a gRPC method.
pub fn verb(rpc: &str) -> &str {
    match rpc {
        "update_status" => "update",
        "bind" => "create",
        other => other,
    }
}

fn type_of(t: Option<&rkube_proto::api::TypeRef>) -> (&str, &str) {
    t.map_or(("", ""), |t| (t.api_version.as_str(), t.kind.as_str()))
}

fn object_target<'a>(o: Option<&'a Object>, subresource: &'a str) -> Target<'a> {
    let Some(o) = o else {
        return Target::default();
    };
    let (api_version, kind) = type_of(o.r#type.as_ref());
    Target {
        api_version,
        kind,
        namespace: &o.namespace,
        name: &o.name,
        subresource,
        query: Vec::new(),
    }
}

fn json_of(bytes: &[u8]) -> Option<Value> {
    serde_json::from_slice(bytes).ok()
}

fn selectors(label: &str, field: &str) -> Vec<(&'static str, String)> {
    let mut q = Vec::new();
    if !label.is_empty() {
        q.push(("labelSelector", label.to_string()));
    }
    if !field.is_empty() {
        q.push(("fieldSelector", field.to_string()));
    }
    q
}

impl AuditTarget for GetRequest {
    fn target(&self, _: &str) -> Target<'_> {
        let (api_version, kind) = type_of(self.r#type.as_ref());
        Target {
            api_version,
            kind,
            namespace: &self.namespace,
            name: &self.name,
            ..Default::default()
        }
    }
}

impl AuditTarget for ListRequest {
    fn target(&self, _: &str) -> Target<'_> {
        let (api_version, kind) = type_of(self.r#type.as_ref());
        let mut query = selectors(&self.label_selector, &self.field_selector);
        if self.limit > 0 {
            query.push(("limit", self.limit.to_string()));
        }
        if !self.continue_token.is_empty() {
            query.push(("continue", self.continue_token.clone()));
        }
        Target {
            api_version,
            kind,
            namespace: &self.namespace,
            query,
            ..Default::default()
        }
    }
}

impl AuditTarget for WatchRequest {
    fn target(&self, _: &str) -> Target<'_> {
        let (api_version, kind) = type_of(self.r#type.as_ref());
        let mut query = selectors(&self.label_selector, &self.field_selector);
        if !self.resource_version.is_empty() {
            query.push(("resourceVersion", self.resource_version.clone()));
        }
        query.push(("watch", "true".into()));
        Target {
            api_version,
            kind,
            namespace: &self.namespace,
            query,
            ..Default::default()
        }
    }
}

impl AuditTarget for CreateRequest {
    fn target(&self, _: &str) -> Target<'_> {
        object_target(self.object.as_ref(), "")
    }
    fn request_object(&self) -> Option<Value> {
        json_of(&self.object.as_ref()?.json)
    }
}

impl AuditTarget for UpdateRequest {
    fn target(&self, rpc: &str) -> Target<'_> {
        let sub = match (rpc, self.subresource.as_str()) {
            ("update_status", "") => "status",
            ("update_status", s) => s,
            _ => "",
        };
        object_target(self.object.as_ref(), sub)
    }
    fn request_object(&self) -> Option<Value> {
        json_of(&self.object.as_ref()?.json)
    }
}

impl AuditTarget for PatchRequest {
    fn target(&self, _: &str) -> Target<'_> {
        let (api_version, kind) = type_of(self.r#type.as_ref());
        Target {
            api_version,
            kind,
            namespace: &self.namespace,
            name: &self.name,
            subresource: if self.status { "status" } else { "" },
            query: Vec::new(),
        }
    }
    /// Kubernetes records the patch itself.
    fn request_object(&self) -> Option<Value> {
        json_of(&self.patch)
    }
}

impl AuditTarget for DeleteRequest {
    fn target(&self, _: &str) -> Target<'_> {
        let (api_version, kind) = type_of(self.r#type.as_ref());
        Target {
            api_version,
            kind,
            namespace: &self.namespace,
            name: &self.name,
            ..Default::default()
        }
    }
    /// The DeleteOptions, when any option is given.
    fn request_object(&self) -> Option<Value> {
        let mut opts = Map::new();
        if let Some(g) = self.grace_period_seconds {
            opts.insert("gracePeriodSeconds".into(), g.into());
        }
        let mut pre = Map::new();
        for (k, v) in [
            ("resourceVersion", &self.precondition_resource_version),
            ("uid", &self.precondition_uid),
        ] {
            if !v.is_empty() {
                pre.insert(k.into(), v.as_str().into());
            }
        }
        if !pre.is_empty() {
            opts.insert("preconditions".into(), pre.into());
        }
        if !self.propagation_policy.is_empty() {
            opts.insert(
                "propagationPolicy".into(),
                self.propagation_policy.as_str().into(),
            );
        }
        if opts.is_empty() {
            return None;
        }
        opts.insert("kind".into(), "DeleteOptions".into());
        opts.insert("apiVersion".into(), "meta.k8s.io/v1".into());
        Some(opts.into())
    }
}

impl AuditTarget for BindRequest {
    fn target(&self, _: &str) -> Target<'_> {
        Target {
            api_version: "v1",
            kind: "Pod",
            namespace: &self.namespace,
            name: &self.name,
            subresource: "binding",
            query: Vec::new(),
        }
    }
    fn request_object(&self) -> Option<Value> {
        let mut meta = json!({"name": self.name, "namespace": self.namespace});
        if !self.uid.is_empty() {
            meta["uid"] = self.uid.as_str().into();
        }
        Some(json!({
            "kind": "Binding",
            "apiVersion": "v1",
            "metadata": meta,
            "target": {"kind": "Node", "name": self.node_name},
        }))
    }
}

impl AuditedResponse for Object {
    fn response_object(&self, _: &str, _: &str) -> Option<Value> {
        json_of(&self.json)
    }
}

impl AuditedResponse for ListResponse {
    fn response_object(&self, kind: &str, api_version: &str) -> Option<Value> {
        let mut meta = Map::new();
        meta.insert(
            "resourceVersion".into(),
            self.resource_version.clone().into(),
        );
        if !self.continue_token.is_empty() {
            meta.insert("continue".into(), self.continue_token.clone().into());
            meta.insert(
                "remainingItemCount".into(),
                self.remaining_item_count.into(),
            );
        }
        let items: Vec<Value> = self.items.iter().filter_map(|o| json_of(&o.json)).collect();
        Some(json!({
            "kind": format!("{kind}List"),
            "apiVersion": api_version,
            "metadata": meta,
            "items": items,
        }))
    }
}

impl AuditedResponse for DeleteResponse {
    /// 202 Accepted while the object waits on finalizers or a grace period.
    fn success_code(&self, _: &str) -> u16 {
        if self.deleted || self.object.is_none() {
            200
        } else {
            202
        }
    }
    fn response_object(&self, _: &str, _: &str) -> Option<Value> {
        match &self.object {
            Some(o) => json_of(&o.json),
            None => Some(json!({
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Success",
            })),
        }
    }
}

/// The object reference of `t`: its resource, group and scope from the registry (a kind
/// the registry does not know is recorded by its lowercased kind).
pub fn object_ref(registry: &Registry, t: &Target<'_>) -> ObjectRef {
    let (group, version) = match t.api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", t.api_version),
    };
    let (resource, namespaced) = match registry.get(t.api_version, t.kind) {
        Ok(rt) => (rt.plural.clone(), rt.namespaced),
        Err(_) => (t.kind.to_lowercase(), true),
    };
    ObjectRef {
        resource,
        namespace: if namespaced {
            t.namespace.to_string()
        } else {
            String::new()
        },
        name: t.name.to_string(),
        api_group: group.to_string(),
        api_version: version.to_string(),
        subresource: t.subresource.to_string(),
    }
}

/// The path (and query) kube-apiserver serves the request `verb` on `o` at.
pub fn request_uri(o: &ObjectRef, verb: &str, query: &[(&'static str, String)]) -> String {
    let mut uri = if o.api_group.is_empty() {
        format!("/api/{}", o.api_version)
    } else {
        format!("/apis/{}/{}", o.api_group, o.api_version)
    };
    if !o.namespace.is_empty() {
        uri.push_str("/namespaces/");
        uri.push_str(&o.namespace);
    }
    uri.push('/');
    uri.push_str(&o.resource);
    let collection =
        matches!(verb, "list" | "watch") || (verb == "create" && o.subresource.is_empty());
    if !collection && !o.name.is_empty() {
        uri.push('/');
        uri.push_str(&o.name);
        if !o.subresource.is_empty() {
            uri.push('/');
            uri.push_str(&o.subresource);
        }
    }
    for (i, (k, v)) in query.iter().enumerate() {
        uri.push(if i == 0 { '?' } else { '&' });
        uri.push_str(k);
        uri.push('=');
        uri.push_str(&percent_encode(v));
    }
    uri
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
