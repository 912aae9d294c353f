//! Create, update, status update, patch and bind.

use std::sync::Arc;

use rand_name::generate;
use rkube_proto::api::{Object, PatchRequest};
use serde_json::{json, Value};

use super::{admission_request, envelope, Api, WriteOptions, MAX_RETRIES};
use crate::admission::Operation;
use crate::auth::UserInfo;
use crate::cache::Cached;
use crate::certificates;
use crate::error::{Error, Result};
use crate::object;
use crate::patch::{self, PatchKind};
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

        let now = object::now();
        {
            let m = object::meta_mut(&mut obj);
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
        let key = rt.key(&ns, &name);
        let _turn = self.quota.turn(&ns).await;
        for _ in 0..MAX_RETRIES {
            let mut obj = obj.clone();
            let mut side = self.service_side(&rt, None, &mut obj).await?;
            let charges = self
                .quota
                .charge(&self.store, self.encryption.as_ref(), &rt, &ns, &obj)
                .await?;
            for (k, rv, q) in charges {
                side.guard.push((k.clone(), rv, self.encode(&k, &q)?));
            }
            match storage::create(&self.store, &key, self.encode(&key, &obj)?, &side).await? {
                Swap::Done(rev) => {
                    object::set(&mut obj, "resourceVersion", rev.to_string());
                    return envelope(&rt, &obj);
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

    /// The desired object for `change` on top of `cur`, and the precondition it carries.
    fn desired(
        &self,
        rt: &ResourceType,
        cur: &Value,
        change: &Change<'_>,
        opts: &WriteOptions,
    ) -> Result<(Value, Option<String>)> {
        let mut precondition = None;
        let mut new = match change {
            Change::Apply(applied, status) => {
                let rv = object::resource_version(applied);
                if !rv.is_empty() {
                    precondition = Some(rv.to_string());
                }
                super::apply::desired(rt, cur, applied, *status, opts)?
            }
            Change::Replace(obj) => {
                let rv = object::resource_version(obj);
                if !rv.is_empty() {
                    precondition = Some(rv.to_string());
                }
                let mut new = obj.clone();
                if rt.has_status {
                    new["status"] = cur["status"].clone();
                    if cur.get("status").is_none() {
                        new.as_object_mut().map(|m| m.remove("status"));
                    }
                }
                new
            }
            Change::Status(obj) => {
                let rv = object::resource_version(obj);
                if !rv.is_empty() {
                    precondition = Some(rv.to_string());
                }
                if certificates::is_csr(&rt.group, &rt.kind) {
                    certificates::merge_status(cur, obj)
                } else {
                    let mut new = cur.clone();
                    new["status"] = obj["status"].clone();
                    new
                }
            }
            Change::Approval(obj) => {
                let rv = object::resource_version(obj);
                if !rv.is_empty() {
                    precondition = Some(rv.to_string());
                }
                certificates::merge_approval(cur, obj)
            }
            Change::Patch(kind, body, status) => {
                let patched = patch::apply(*kind, cur, body, super::schema_node(rt))?;
                let rv = object::resource_version(&patched);
                if !rv.is_empty() && rv != object::resource_version(cur) {
                    precondition = Some(rv.to_string());
                }
                if *status && certificates::is_csr(&rt.group, &rt.kind) {
                    certificates::merge_status(cur, &patched)
                } else if *status {
                    let mut new = cur.clone();
                    new["status"] = patched["status"].clone();
                    new
                } else if rt.has_status {
                    let mut new = patched;
                    new["status"] = cur["status"].clone();
                    new
                } else {
                    patched
                }
            }
            Change::Bind(node, uid) => {
                if !uid.is_empty() && object::str_of(cur, "uid") != uid {
                    return Err(Error::Precondition(format!(
                        "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                        object::str_of(cur, "uid")
                    )));
                }
                let assigned = cur["spec"]["nodeName"].as_str().unwrap_or("");
                if !assigned.is_empty() {
                    return Err(Error::Conflict {
                        resource: "pods/binding".into(),
                        name: object::name(cur).to_string(),
                        reason: format!(
                            "pod {} is already assigned to node {assigned:?}",
                            object::name(cur)
                        ),
                    });
                }
                if object::is_deleting(cur) {
                    return Err(Error::Conflict {
                        resource: "pods/binding".into(),
                        name: object::name(cur).to_string(),
                        reason: "pod is being deleted, cannot be assigned to a host".into(),
                    });
                }
                let mut new = cur.clone();
                new["spec"]["nodeName"] = node.clone().into();
                let cond = json!({"type": "PodScheduled", "status": "True",
                                  "lastProbeTime": null, "lastTransitionTime": object::now()});
                let conds = new["status"]["conditions"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                let mut conds: Vec<Value> = conds
                    .into_iter()
                    .filter(|c| c["type"] != "PodScheduled")
                    .collect();
                conds.push(cond);
                new["status"]["conditions"] = Value::Array(conds);
                new
            }
        };
        // What the server owns comes from the stored object.
        let cm = cur["metadata"].clone();
        let m = object::meta_mut(&mut new);
        for k in [
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "namespace",
            "name",
        ] {
            match cm.get(k) {
                Some(v) => m.insert(k.into(), v.clone()),
                None => m.remove(k),
            };
        }
        m.insert("resourceVersion".into(), cm["resourceVersion"].clone());
        if object::spec_differs(cur, &new) {
            let g = cur["metadata"]["generation"].as_i64().unwrap_or(1) + 1;
            object::set(&mut new, "generation", g);
        }
        Ok((new, precondition))
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
        let (verb, sub) = match &change {
            Change::Replace(_) => ("update", ""),
            Change::Status(_) => ("update", "status"),
            Change::Approval(_) => ("update", "approval"),
            Change::Patch(_, _, true) | Change::Apply(_, true) => ("patch", "status"),
            Change::Apply(..) => ("patch", ""),
            Change::Patch(..) => ("patch", ""),
            Change::Bind(..) => ("create", "binding"),
        };
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
            let (desired, precondition) = self.desired(rt, &cur_v, &change, opts)?;
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
            let mut new = if sub == "binding" {
                desired
            } else {
                let admitted = self.admit(&req, desired).await?;
                if sub.is_empty() && !object::is_deleting(&cur_v) && object::is_deleting(&admitted)
                {
                    return Err(Error::invalid(
                        &rt.kind,
                        name,
                        vec![crate::error::FieldError::forbidden(
                            "metadata.deletionTimestamp",
                            "may only be set by deleting the object",
                        )],
                    ));
                }
                admitted
            };
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
            // An object being deleted goes when its last finalizer is removed.
            let finished = object::is_deleting(&new)
                && object::all_finalizers(&new, &rt.kind).is_empty()
                && new["metadata"]["deletionGracePeriodSeconds"]
                    .as_i64()
                    .unwrap_or(0)
                    == 0;
            let swap = if finished {
                let release = Self::release_side(rt, &cur_v);
                storage::delete(&self.store, &key, cur.rv, &release).await?
            } else {
                storage::update(&self.store, &key, cur.rv, self.encode(&key, &new)?, &side).await?
            };
            match swap {
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
}
