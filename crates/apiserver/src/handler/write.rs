//! Create, update, status update, patch and bind.

mod desired;

use std::sync::Arc;

use rand_name::generate;
use rkube_proto::api::{Object, PatchRequest};
use serde_json::{json, Value};

use super::{admission_request, envelope, Api, WriteOptions, MAX_RETRIES};
use crate::admission::{AdmissionRequest, Operation};
use crate::auth::UserInfo;
use crate::cache::Cached;
use crate::certificates;
use crate::error::{Error, Result};
use crate::object;
use crate::patch::PatchKind;
use crate::registry::ResourceType;
use crate::storage::{self, Swap};

/// What an update is made of, given the current object.
pub enum Change<'a> {
    /// The whole object (Update); its resourceVersion, when set, is a precondition.
    Replace(Value),
    /// Only the status (UpdateStatus).
    Status(Value),
    /// Only the Approved and Denied conditions of a CertificateSigningRequest.
    Approval(Value),
    Patch(PatchKind, &'a [u8], bool),
    Bind(String, String),
    /// A server-side apply of this configuration (to the status when true).
    Apply(&'a Value, bool),
}

mod rand_name {
    /// `generateName` suffixes: five characters from Kubernetes' alphabet without vowels.
    pub fn generate(prefix: &str) -> String {
        const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
        let id = uuid::Uuid::new_v4();
        let suffix: String = id.as_bytes()[..5]
            .iter()
            .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
            .collect();
        format!("{prefix}{suffix}")
    }
}

impl Api {
    pub async fn create(&self, user: &UserInfo, env: &Object) -> Result<Object> {
        self.create_with(user, env, &WriteOptions::default()).await
    }

    pub async fn create_with(
        &self,
        user: &UserInfo,
        env: &Object,
        opts: &WriteOptions,
    ) -> Result<Object> {
        let rt = self.resolve(env.r#type.as_ref()).await?;
        let mut obj = self.parse_object(&rt, env)?;
        let ns = Self::namespace_of(&rt, object::namespace(&obj))?;
        if object::name(&obj).is_empty() {
            let prefix = object::str_of(&obj, "generateName").to_string();
            if !prefix.is_empty() {
                object::set(&mut obj, "name", generate(&prefix));
            }
        }
        let name = object::name(&obj).to_string();
        self.authorize(user, "create", &rt, "", &ns, &name)?;
        if crate::rbac::review::is_review(&rt) {
            return envelope(&rt, &self.review(user, &rt, &ns, obj)?);
        }

        stamp_new(&rt, &mut obj);
        let req = admission_request(Operation::Create, &rt, user, &ns, &name, None, "");
        let mut obj = self.admit(&req, obj).await?;
        if rt.kind == "CustomResourceDefinition" {
            let st = crate::registry::crd::accepted_status(&obj);
            obj["status"] = st;
        }
        match &opts.managed_fields {
            Some(mf) => object::meta_mut(&mut obj).insert("managedFields".into(), mf.clone()),
            None => {
                super::apply::record(&rt, None, &mut obj, "", opts, user);
                None
            }
        };
        if opts.dry_run {
            return envelope(&rt, &obj);
        }
        self.store_new(&rt, &ns, name, &obj).await
    }

    /// Stores the admitted new object `obj`, with its Service values and quota charges,
    /// under the namespace's quota turn.
    async fn store_new(
        &self,
        rt: &ResourceType,
        ns: &str,
        name: String,
        obj: &Value,
    ) -> Result<Object> {
        let key = rt.key(ns, &name);
        let _turn = self.quota.turn(ns).await;
        for _ in 0..MAX_RETRIES {
            let mut obj = obj.clone();
            let mut side = self.service_side(rt, None, &mut obj).await?;
            let charges = self
                .quota
                .charge(&self.store, self.encryption.as_ref(), rt, ns, &obj)
                .await?;
            for (k, rv, q) in charges {
                side.guard.push((k.clone(), rv, self.encode(&k, &q)?));
            }
            match storage::create(&self.store, &key, self.encode(&key, &obj)?, &side).await? {
                Swap::Done(rev) => {
                    object::set(&mut obj, "resourceVersion", rev.to_string());
                    return envelope(rt, &obj);
                }
                Swap::Lost
                    if (side.claim.is_empty() && side.guard.is_empty())
                        || storage::exists(&self.store, &key).await? =>
                {
                    return Err(Error::AlreadyExists {
                        resource: rt.qualified(),
                        name,
                    })
                }
                // Another Service took a value this one drew, or another create charged
                // a quota first: draw and charge again.
                Swap::Lost => {}
            }
        }
        Err(Error::conflict(&rt.qualified(), &name))
    }

    /// Update with a whole object, or of subresource `sub` (`status`, `approval`).
    pub async fn update(&self, user: &UserInfo, env: &Object, sub: &str) -> Result<Object> {
        self.update_with(user, env, sub, &WriteOptions::default())
            .await
    }

    pub async fn update_with(
        &self,
        user: &UserInfo,
        env: &Object,
        sub: &str,
        opts: &WriteOptions,
    ) -> Result<Object> {
        let rt = self.resolve(env.r#type.as_ref()).await?;
        let obj = self.parse_object(&rt, env)?;
        let ns = Self::namespace_of(&rt, object::namespace(&obj))?;
        let name = object::name(&obj).to_string();
        if name.is_empty() {
            return Err(Error::invalid(
                &rt.kind,
                "",
                vec![crate::error::FieldError::required("metadata.name")],
            ));
        }
        let change = match sub {
            "" => Change::Replace(obj),
            "status" => Change::Status(obj),
            "approval" if certificates::is_csr(&rt.group, &rt.kind) => Change::Approval(obj),
            other => {
                return Err(Error::NotFound {
                    resource: format!("{}/{other}", rt.qualified()),
                    name,
                })
            }
        };
        self.change(user, &rt, &ns, &name, change, opts).await
    }

    pub async fn patch(
        &self,
        user: &UserInfo,
        r: &PatchRequest,
        kind: PatchKind,
    ) -> Result<Object> {
        self.patch_with(user, r, kind, &WriteOptions::default())
            .await
    }

    pub async fn patch_with(
        &self,
        user: &UserInfo,
        r: &PatchRequest,
        kind: PatchKind,
        opts: &WriteOptions,
    ) -> Result<Object> {
        let rt = self.resolve(r.r#type.as_ref()).await?;
        let ns = Self::namespace_of(&rt, &r.namespace)?;
        if r.patch.len() > self.max_object_bytes {
            return Err(Error::TooLarge(format!(
                "the patch is {} bytes; the limit is {} bytes",
                r.patch.len(),
                self.max_object_bytes
            )));
        }
        let change = Change::Patch(kind, &r.patch, r.status);
        self.change(user, &rt, &ns, &r.name, change, opts).await
    }

    pub async fn bind(
        &self,
        user: &UserInfo,
        ns: &str,
        name: &str,
        node: &str,
        uid: &str,
    ) -> Result<Object> {
        let rt = self.registry.get("v1", "Pod")?;
        let ns = Self::namespace_of(&rt, ns)?;
        if node.is_empty() {
            return Err(Error::invalid(
                "Binding",
                name,
                vec![crate::error::FieldError::required("target.name")],
            ));
        }
        self.change(
            user,
            &rt,
            &ns,
            name,
            Change::Bind(node.to_string(), uid.to_string()),
            &WriteOptions::default(),
        )
        .await
    }

    /// Applies `change` with compare-and-swap, retrying lost races unless the caller named
    /// the version it changed.
    pub(super) async fn change(
        &self,
        user: &UserInfo,
        rt: &Arc<ResourceType>,
        ns: &str,
        name: &str,
        change: Change<'_>,
        opts: &WriteOptions,
    ) -> Result<Object> {
        let (verb, sub) = change.verb_and_subresource();
        self.authorize(user, verb, rt, sub, ns, name)?;
        if !sub.is_empty() && !matches!(sub, "binding" | "approval") && !rt.has_status {
            return Err(Error::NotFound {
                resource: format!("{}/status", rt.qualified()),
                name: name.to_string(),
            });
        }
        let key = rt.key(ns, name);
        let mut cached: Option<Arc<Cached>> = self.cache.get(&key);
        for attempt in 0..MAX_RETRIES {
            let cur = match (&cached, attempt) {
                (Some(c), 0) => Some(c.clone()),
                _ => self.fresh(&key).await?,
            };
            let Some(cur) = cur else {
                if attempt == 0 {
                    cached = None;
                    continue;
                }
                return Err(Self::not_found(rt, name));
            };
            let cur_v = cur.value()?;
            let (desired, precondition) = desired::desired(rt, &cur_v, &change, opts)?;
            if let Some(p) = &precondition {
                if *p != cur.rv.to_string() {
                    if attempt == 0 {
                        // This member's cache may be behind the version the client saw.
                        cached = None;
                        continue;
                    }
                    return Err(Error::conflict(&rt.qualified(), name));
                }
            }
            let req = admission_request(Operation::Update, rt, user, ns, name, Some(&cur_v), sub);
            let mut new = self.admit_update(&req, &cur_v, desired).await?;
            let side = if sub.is_empty() && !object::is_deleting(&new) {
                self.service_side(rt, Some(&cur_v), &mut new).await?
            } else {
                Default::default()
            };
            if !matches!(change, Change::Apply(..) | Change::Bind(..)) {
                super::apply::record(rt, Some(&cur_v), &mut new, sub, opts, user);
            }
            if new == cur_v || opts.dry_run {
                return envelope(rt, &new);
            }
            match self.swap_in(rt, &key, cur.rv, &cur_v, &new, &side).await? {
                Swap::Done(rev) => {
                    object::set(&mut new, "resourceVersion", rev.to_string());
                    return envelope(rt, &new);
                }
                Swap::Lost if precondition.is_some() => {
                    return Err(Error::conflict(&rt.qualified(), name));
                }
                Swap::Lost => {}
            }
        }
        Err(Error::conflict(&rt.qualified(), name))
    }

    /// Replaces `cur` (at revision `rv`) with `new`, or deletes it when `new` has finished
    /// deleting.
    async fn swap_in(
        &self,
        rt: &ResourceType,
        key: &str,
        rv: i64,
        cur: &Value,
        new: &Value,
        side: &storage::Side,
    ) -> Result<Swap> {
        if deletion_finished(rt, new) {
            let release = Self::release_side(rt, cur);
            storage::delete(&self.store, key, rv, &release).await
        } else {
            storage::update(&self.store, key, rv, self.encode(key, new)?, side).await
        }
    }

    /// Runs update admission on `desired`, unless it is a binding. Only a delete may start
    /// the deletion of the object `cur`.
    async fn admit_update(
        &self,
        req: &AdmissionRequest<'_>,
        cur: &Value,
        desired: Value,
    ) -> Result<Value> {
        if req.subresource == "binding" {
            return Ok(desired);
        }
        let admitted = self.admit(req, desired).await?;
        if req.subresource.is_empty() && !object::is_deleting(cur) && object::is_deleting(&admitted)
        {
            return Err(Error::invalid(
                &req.rt.kind,
                req.name,
                vec![crate::error::FieldError::forbidden(
                    "metadata.deletionTimestamp",
                    "may only be set by deleting the object",
                )],
            ));
        }
        Ok(admitted)
    }
}

impl Change<'_> {
    /// The verb this change is authorized as, and the subresource it writes.
    fn verb_and_subresource(&self) -> (&'static str, &'static str) {
        match self {
            Change::Replace(_) => ("update", ""),
            Change::Status(_) => ("update", "status"),
            Change::Approval(_) => ("update", "approval"),
            Change::Patch(_, _, true) | Change::Apply(_, true) => ("patch", "status"),
            Change::Apply(..) => ("patch", ""),
            Change::Patch(..) => ("patch", ""),
            Change::Bind(..) => ("create", "binding"),
        }
    }
}

/// Sets what the server owns on a new object: its uid, creation time and first generation,
/// and no status where status is a subresource (a Pod starts Pending).
fn stamp_new(rt: &ResourceType, obj: &mut Value) {
    let now = object::now();
    {
        let m = object::meta_mut(obj);
        m.insert("uid".into(), object::new_uid().into());
        m.insert("creationTimestamp".into(), now.into());
        m.insert("generation".into(), 1.into());
        for k in [
            "resourceVersion",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "selfLink",
            "managedFields",
        ] {
            m.remove(k);
        }
    }
    if rt.has_status && rt.kind != "Node" {
        if let Some(m) = obj.as_object_mut() {
            m.remove("status");
            if rt.kind == "Pod" && rt.group.is_empty() {
                m.insert("status".into(), json!({"phase": "Pending"}));
            }
        }
    }
}

/// An object being deleted goes when its last finalizer is removed.
fn deletion_finished(rt: &ResourceType, new: &Value) -> bool {
    object::is_deleting(new)
        && object::all_finalizers(new, &rt.kind).is_empty()
        && new["metadata"]["deletionGracePeriodSeconds"]
            .as_i64()
            .unwrap_or(0)
            == 0
}
