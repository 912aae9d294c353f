//! The request pipeline of every resource operation:
//! authenticate → authorize → mutating admission → validate → validating admission → store.
//!
//! Reads are served from the watch cache after a ReadIndex round; writes are
//! compare-and-swap transactions on the store, which forwards them to the leader.

mod apply;
mod delete;
mod read;
mod write;

use std::sync::Arc;

use bytes::Bytes;
use raft_store::Store;
use rkube_proto::api::{Object, TypeRef};
use serde_json::Value;

pub use apply::schema_node;
pub use read::{ListOptions, WatchStream};

use crate::admission::{Admission, AdmissionRequest, Operation};
use crate::auth::{Attributes, AuthnChain, AuthzChain, Credentials, UserInfo};
use crate::cache::{Cached, WatchCache};
use crate::encryption::Transformer;
use crate::error::{Error, FieldError, Result};
use crate::metrics::Metrics;
use crate::object;
use crate::registry::{Registry, ResourceType};
use crate::storage;
use crate::validation;

/// Everything a request needs. One per apiserver; shared by the gRPC services.
pub struct Api {
    pub store: Store,
    pub registry: Arc<Registry>,
    pub cache: Arc<WatchCache>,
    pub authn: AuthnChain,
    pub authz: AuthzChain,
    pub admission: Admission,
    /// Largest object accepted, in bytes of JSON.
    pub max_object_bytes: usize,
    pub metrics: Metrics,
    /// Where Service ClusterIPs and NodePorts come from.
    pub service_ranges: crate::services::ServiceRanges,
    /// Encryption at rest (`--encryption-provider-config`); None stores plaintext. The watch
    /// cache needs the same one ([`WatchCache::set_encryption`]).
    pub encryption: Option<Transformer>,
    /// The RBAC index, when RBAC is on (SelfSubjectRulesReview reads it).
    pub rbac: Option<Arc<crate::rbac::index::SharedIndex>>,
    /// The audit log (`--audit-log-path`, `--audit-policy-file`); None audits nothing.
    pub audit: Option<Arc<crate::audit::Auditor>>,
    /// ResourceQuota admission, which charges quotas in the create's transaction.
    pub quota: crate::admission::ResourceQuota,
    /// Set once this member's cache has held every bootstrap role and binding.
    pub policy_ready: std::sync::atomic::AtomicBool,
}

/// How a write is carried out, from the REST API's query parameters (`dryRun`,
/// `fieldManager`, `force`). The default is what gRPC callers get.
#[derive(Clone, Debug, Default)]
pub struct WriteOptions {
    /// `dryRun=All`: admission and validation run, nothing is stored.
    pub dry_run: bool,
    /// Who makes the write, as `metadata.managedFields` records it.
    pub field_manager: String,
    /// Server-side apply takes fields other managers own.
    pub force: bool,
    /// The managed fields a create made by an apply records (instead of an Update entry).
    pub managed_fields: Option<Value>,
}

/// How often an update whose caller gave no resourceVersion is retried after losing a
/// compare-and-swap to a concurrent writer.
const MAX_RETRIES: usize = 16;

impl Api {
    /// For a Service: fills in its ClusterIP and NodePorts, and names the keys the write
    /// claims and releases with it.
    async fn service_side(
        &self,
        rt: &ResourceType,
        old: Option<&Value>,
        new: &mut Value,
    ) -> Result<storage::Side> {
        if rt.kind != "Service" || !rt.group.is_empty() {
            return Ok(Default::default());
        }
        let owner = format!("{}/{}", object::namespace(new), object::name(new));
        self.service_ranges
            .assign(&self.store, &owner, old, new)
            .await
    }

    /// What removing `cur` gives back.
    fn release_side(rt: &ResourceType, cur: &Value) -> storage::Side {
        if rt.kind == "Service" && rt.group.is_empty() {
            crate::services::release_all(cur)
        } else {
            Default::default()
        }
    }

    /// The kind named by `t`. A kind unknown here may come from a CRD that this member has
    /// not applied yet, so a miss is retried after a consistent read.
    pub async fn resolve(&self, t: Option<&TypeRef>) -> Result<Arc<ResourceType>> {
        let t = t.ok_or_else(|| Error::BadRequest("type: Required value".into()))?;
        if t.kind.is_empty() {
            return Err(Error::BadRequest("type.kind: Required value".into()));
        }
        if t.api_version.is_empty() {
            return Err(Error::BadRequest("type.apiVersion: Required value".into()));
        }
        match self.registry.get(&t.api_version, &t.kind) {
            Ok(rt) => Ok(rt),
            Err(e) => {
                self.cache.wait_fresh(&self.store).await?;
                self.registry.get(&t.api_version, &t.kind).map_err(|_| e)
            }
        }
    }

    /// Who sent `req`: its bearer token or client certificate, or anonymous; or whom it
    /// impersonates (`impersonate-user`, `impersonate-group`), if it may.
    pub async fn user<T>(&self, req: &tonic::Request<T>) -> Result<UserInfo> {
        let certs = req.peer_certs();
        let user = self
            .authn
            .authenticate(&Credentials {
                metadata: req.metadata(),
                cert_subject: certs.and_then(|c| pki::subject_of(&c)),
            })
            .await?;
        crate::rbac::impersonation::apply(&self.authz, user, req.metadata())
    }

    pub fn authorize(
        &self,
        user: &UserInfo,
        verb: &str,
        rt: &ResourceType,
        subresource: &str,
        namespace: &str,
        name: &str,
    ) -> Result<()> {
        self.authz.authorize(&Attributes {
            user,
            verb,
            group: &rt.group,
            resource: &rt.plural,
            subresource,
            namespace,
            name,
        })
    }

    /// The namespace a request addresses: empty for cluster-scoped kinds, required for
    /// namespaced ones.
    fn namespace_of(rt: &ResourceType, ns: &str) -> Result<String> {
        if !rt.namespaced {
            return Ok(String::new());
        }
        if ns.is_empty() {
            return Err(Error::invalid(
                &rt.kind,
                "",
                vec![FieldError::required("metadata.namespace")],
            ));
        }
        Ok(ns.to_string())
    }

    /// Decodes an object sent by a client, checking its size and that its JSON agrees with
    /// the envelope.
    fn parse_object(&self, rt: &ResourceType, env: &Object) -> Result<Value> {
        if env.json.len() > self.max_object_bytes {
            return Err(Error::TooLarge(format!(
                "the object is {} bytes; the limit is {} bytes",
                env.json.len(),
                self.max_object_bytes
            )));
        }
        let mut v: Value = serde_json::from_slice(&env.json)
            .map_err(|e| Error::BadRequest(format!("the object is not valid JSON: {e}")))?;
        let Some(m) = v.as_object_mut() else {
            return Err(Error::BadRequest("the object must be a JSON object".into()));
        };
        let api_version = rt.api_version();
        for (field, want) in [
            ("apiVersion", api_version.as_str()),
            ("kind", rt.kind.as_str()),
        ] {
            match m.get(field).and_then(|x| x.as_str()) {
                None | Some("") => {
                    m.insert(field.into(), want.into());
                }
                Some(have) if have != want => {
                    return Err(Error::BadRequest(format!(
                        "{field}: the object says {have:?} but the request is for {want:?}"
                    )));
                }
                Some(_) => {}
            }
        }
        if rt.namespaced {
            let in_json = object::namespace(&v).to_string();
            if !env.namespace.is_empty() && !in_json.is_empty() && in_json != env.namespace {
                return Err(Error::BadRequest(
                    "the namespace of the provided object does not match the namespace sent on the request".into(),
                ));
            }
            if in_json.is_empty() && !env.namespace.is_empty() {
                object::set(&mut v, "namespace", env.namespace.clone());
            }
        } else {
            object::remove(&mut v, "namespace");
        }
        if !env.name.is_empty() && object::name(&v).is_empty() {
            object::set(&mut v, "name", env.name.clone());
        }
        Ok(v)
    }

    /// Type check and normalisation, metadata and kind rules, and immutable fields. A
    /// subresource write (`sub`: status, approval, binding) changes no spec, so the kind's
    /// spec rules are not applied to it: an object stored before a rule existed (or written
    /// around the API) can still have its status recorded, as in Kubernetes.
    fn validate(
        &self,
        rt: &ResourceType,
        obj: Value,
        old: Option<&Value>,
        sub: &str,
    ) -> Result<Value> {
        let name = object::name(&obj).to_string();
        let obj = rt
            .check_schema(obj)
            .map_err(|e| Error::invalid(&rt.kind, &name, vec![e]))?;
        let mut errs = validation::metadata(&rt.kind, rt.namespaced, &obj);
        if sub.is_empty() {
            errs.extend(validation::kind_rules(&rt.kind, &obj));
        }
        if rt.kind == "CustomResourceDefinition" {
            errs.extend(crate::registry::crd::validate(&obj));
        }
        if let Some(old) = old {
            errs.extend(validation::immutable(&rt.kind, old, &obj));
        }
        if !errs.is_empty() {
            return Err(Error::invalid(&rt.kind, &name, errs));
        }
        let size = serde_json::to_vec(&obj).map(|b| b.len()).unwrap_or(0);
        if size > self.max_object_bytes {
            return Err(Error::TooLarge(format!(
                "the object is {size} bytes; the limit is {} bytes",
                self.max_object_bytes
            )));
        }
        Ok(obj)
    }

    /// Mutating admission, validation, validating admission: the middle of the pipeline.
    async fn admit(&self, req: &AdmissionRequest<'_>, mut obj: Value) -> Result<Value> {
        self.admission.mutate(req, &mut obj).await?;
        let obj = self.validate(req.rt, obj, req.old, req.subresource)?;
        self.admission.validate(req, &obj).await?;
        Ok(obj)
    }

    /// The value to store at `key` for `obj`, sealed if its resource is encrypted.
    fn encode(&self, key: &str, obj: &Value) -> Result<Bytes> {
        storage::encode(self.encryption.as_ref(), key, obj)
    }

    /// The current object at `key` as of a consistent read.
    async fn fresh(&self, key: &str) -> Result<Option<Arc<Cached>>> {
        self.cache.wait_fresh(&self.store).await?;
        Ok(self.cache.get(key))
    }

    fn not_found(rt: &ResourceType, name: &str) -> Error {
        Error::NotFound {
            resource: rt.qualified(),
            name: name.to_string(),
        }
    }
}

/// The envelope of an object.
pub fn envelope(rt: &ResourceType, obj: &Value) -> Result<Object> {
    Ok(Object {
        r#type: Some(TypeRef {
            api_version: rt.api_version(),
            kind: rt.kind.clone(),
        }),
        namespace: object::namespace(obj).to_string(),
        name: object::name(obj).to_string(),
        resource_version: object::resource_version(obj).to_string(),
        json: Bytes::from(serde_json::to_vec(obj).map_err(|e| Error::Internal(e.to_string()))?),
    })
}

/// The envelope of a cached object, without decoding it.
pub fn cached_envelope(rt: &ResourceType, c: &Cached) -> Object {
    Object {
        r#type: Some(TypeRef {
            api_version: rt.api_version(),
            kind: rt.kind.clone(),
        }),
        namespace: c.namespace.clone(),
        name: c.name.clone(),
        resource_version: c.rv.to_string(),
        json: c.json.clone(),
    }
}

fn admission_request<'a>(
    op: Operation,
    rt: &'a ResourceType,
    user: &'a UserInfo,
    namespace: &'a str,
    name: &'a str,
    old: Option<&'a Value>,
    subresource: &'a str,
) -> AdmissionRequest<'a> {
    AdmissionRequest {
        op,
        rt,
        user,
        namespace,
        name,
        old,
        subresource,
    }
}
