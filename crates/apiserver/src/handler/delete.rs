//! Delete: immediate, or graceful (pods on a node) and held by finalizers, as Kubernetes.

use rkube_proto::api::{DeleteRequest, DeleteResponse};
use serde_json::Value;

use super::{admission_request, envelope, Api, WriteOptions, MAX_RETRIES};
use crate::admission::Operation;
use crate::auth::UserInfo;
use crate::error::{Error, Result};
use crate::object;
use crate::registry::ResourceType;
use crate::storage::{self, Swap};

/// The grace period a delete without one gets.
fn default_grace(rt: &ResourceType, obj: &Value) -> i64 {
    if rt.kind == "Pod" && rt.group.is_empty() {
        obj["spec"]["terminationGracePeriodSeconds"]
            .as_i64()
            .unwrap_or(30)
    } else {
        0
    }
}

/// Pods that never ran, or have finished, have nothing to stop: they go at once.
fn needs_grace(rt: &ResourceType, obj: &Value) -> bool {
    rt.kind == "Pod"
        && rt.group.is_empty()
        && obj["spec"]["nodeName"]
            .as_str()
            .is_some_and(|n| !n.is_empty())
        && !matches!(
            obj["status"]["phase"].as_str(),
            Some("Succeeded" | "Failed")
        )
}

/// The finalizer a propagation policy holds the object with, if any.
fn propagation_finalizer(policy: &str) -> Result<Option<&'static str>> {
    match policy {
        "" | "Background" => Ok(None),
        "Foreground" => Ok(Some("foregroundDeletion")),
        "Orphan" => Ok(Some("orphan")),
        other => Err(Error::BadRequest(format!(
            "propagationPolicy: Unsupported value: {other:?}: supported values: \"Background\", \"Foreground\", \"Orphan\""
        ))),
    }
}

/// The resourceVersion and uid preconditions of `req`, against the stored object.
fn check_preconditions(req: &DeleteRequest, rt: &ResourceType, rv: i64, cur: &Value) -> Result<()> {
    if !req.precondition_resource_version.is_empty()
        && req.precondition_resource_version != rv.to_string()
    {
        return Err(Error::conflict(&rt.qualified(), &req.name));
    }
    if !req.precondition_uid.is_empty() && req.precondition_uid != object::str_of(cur, "uid") {
        return Err(Error::Precondition(format!(
            "Precondition failed: UID in precondition: {}, UID in object meta: {}",
            req.precondition_uid,
            object::str_of(cur, "uid")
        )));
    }
    Ok(())
}

/// How a delete of `cur` goes: its grace period, the finalizer it adds (`extra_finalizer`,
/// unless `cur` holds it already), and whether the object is removed at once.
fn deletion_plan(
    rt: &ResourceType,
    req: &DeleteRequest,
    cur: &Value,
    extra_finalizer: Option<&'static str>,
) -> (i64, Option<&'static str>, bool) {
    let grace = if needs_grace(rt, cur) {
        req.grace_period_seconds
            .unwrap_or_else(|| default_grace(rt, cur))
    } else {
        0
    };
    let mut finalizers = object::all_finalizers(cur, &rt.kind);
    let add_finalizer = extra_finalizer.filter(|f| !finalizers.iter().any(|x| x == f));
    if let Some(f) = add_finalizer {
        finalizers.push(f.to_string());
    }
    let existing_grace = cur["metadata"]["deletionGracePeriodSeconds"].as_i64();
    let remove_now = finalizers.is_empty() && (grace == 0 || existing_grace == Some(0));
    (grace, add_finalizer, remove_now)
}

/// The object `cur` marked as being deleted after `grace` seconds (or sooner, when a
/// delete under way had a longer grace), holding `add_finalizer` if given. None when a
/// delete under way has nothing to change.
fn marked_deleting(
    rt: &ResourceType,
    cur: &Value,
    grace: i64,
    add_finalizer: Option<&str>,
) -> Option<Value> {
    let existing_grace = cur["metadata"]["deletionGracePeriodSeconds"].as_i64();
    let mut new = cur.clone();
    let deleting = object::is_deleting(cur);
    let shorter = existing_grace.is_none_or(|g| grace < g);
    if let Some(f) = add_finalizer {
        let mut own = object::finalizers(cur);
        own.push(f.to_string());
        new["metadata"]["finalizers"] = own.into();
    }
    if rt.kind == "Namespace" && rt.group.is_empty() {
        new["status"]["phase"] = "Terminating".into();
    }
    if deleting && !shorter && add_finalizer.is_none() {
        return None;
    }
    if !deleting || shorter {
        object::set(&mut new, "deletionTimestamp", object::now_plus(grace));
        object::set(&mut new, "deletionGracePeriodSeconds", grace);
    }
    Some(new)
}

fn response(rt: &ResourceType, obj: &Value, deleted: bool) -> Result<DeleteResponse> {
    Ok(DeleteResponse {
        object: Some(envelope(rt, obj)?),
        deleted,
    })
}

impl Api {
    pub async fn delete(&self, user: &UserInfo, req: &DeleteRequest) -> Result<DeleteResponse> {
        self.delete_with(user, req, &WriteOptions::default()).await
    }

    pub async fn delete_with(
        &self,
        user: &UserInfo,
        req: &DeleteRequest,
        opts: &WriteOptions,
    ) -> Result<DeleteResponse> {
        let rt = self.resolve(req.r#type.as_ref()).await?;
        let ns = Self::namespace_of(&rt, &req.namespace)?;
        let name = req.name.as_str();
        self.authorize(user, "delete", &rt, "", &ns, name)?;
        if let Some(g) = req.grace_period_seconds {
            if g < 0 {
                return Err(Error::BadRequest(
                    "gracePeriodSeconds: must be 0 or more".into(),
                ));
            }
        }
        let extra_finalizer = propagation_finalizer(&req.propagation_policy)?;
        let key = rt.key(&ns, name);
        for _ in 0..MAX_RETRIES {
            let Some(cur) = self.fresh(&key).await? else {
                return Err(Self::not_found(&rt, name));
            };
            let cur_v = cur.value()?;
            check_preconditions(req, &rt, cur.rv, &cur_v)?;
            let areq = admission_request(Operation::Delete, &rt, user, &ns, name, Some(&cur_v), "");
            self.admission.validate(&areq, &cur_v).await?;
            if opts.dry_run {
                return response(&rt, &cur_v, false);
            }

            let (grace, add_finalizer, remove_now) =
                deletion_plan(&rt, req, &cur_v, extra_finalizer);
            let swap = if remove_now {
                let release = Self::release_side(&rt, &cur_v);
                storage::delete(&self.store, &key, cur.rv, &release).await?
            } else {
                let Some(mut new) = marked_deleting(&rt, &cur_v, grace, add_finalizer) else {
                    return response(&rt, &cur_v, false);
                };
                let swap = storage::update(
                    &self.store,
                    &key,
                    cur.rv,
                    self.encode(&key, &new)?,
                    &Default::default(),
                )
                .await?;
                if let Swap::Done(rev) = swap {
                    object::set(&mut new, "resourceVersion", rev.to_string());
                    return response(&rt, &new, false);
                }
                swap
            };
            match swap {
                Swap::Done(rev) => {
                    let mut gone = cur_v;
                    object::set(&mut gone, "resourceVersion", rev.to_string());
                    return response(&rt, &gone, true);
                }
                Swap::Lost if !req.precondition_resource_version.is_empty() => {
                    return Err(Error::conflict(&rt.qualified(), name));
                }
                Swap::Lost => {}
            }
        }
        Err(Error::conflict(&rt.qualified(), name))
    }
}
