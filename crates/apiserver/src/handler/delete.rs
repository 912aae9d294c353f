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
        let extra_finalizer = match req.propagation_policy.as_str() {
            "" | "Background" => None,
            "Foreground" => Some("foregroundDeletion"),
            "Orphan" => Some("orphan"),
            other => {
                return Err(Error::BadRequest(format!(
                    "propagationPolicy: Unsupported value: {other:?}: supported values: \"Background\", \"Foreground\", \"Orphan\""
                )))
            }
        };
        let key = rt.key(&ns, name);
        for _ in 0..MAX_RETRIES {
            let Some(cur) = self.fresh(&key).await? else {
                return Err(Self::not_found(&rt, name));
            };
            let cur_v = cur.value()?;
            if !req.precondition_resource_version.is_empty()
                && req.precondition_resource_version != cur.rv.to_string()
            {
                return Err(Error::conflict(&rt.qualified(), name));
            }
            if !req.precondition_uid.is_empty()
                && req.precondition_uid != object::str_of(&cur_v, "uid")
            {
                return Err(Error::Precondition(format!(
                    "Precondition failed: UID in precondition: {}, UID in object meta: {}",
                    req.precondition_uid,
                    object::str_of(&cur_v, "uid")
                )));
            }
            let areq = admission_request(Operation::Delete, &rt, user, &ns, name, Some(&cur_v), "");
            self.admission.validate(&areq, &cur_v).await?;
            if opts.dry_run {
                return Ok(DeleteResponse {
                    object: Some(envelope(&rt, &cur_v)?),
                    deleted: false,
                });
            }

            let grace = if needs_grace(&rt, &cur_v) {
                req.grace_period_seconds
                    .unwrap_or_else(|| default_grace(&rt, &cur_v))
            } else {
                0
            };
            let mut finalizers = object::all_finalizers(&cur_v, &rt.kind);
            let adds_finalizer =
                extra_finalizer.is_some_and(|f| !finalizers.iter().any(|x| x == f));
            if let (true, Some(f)) = (adds_finalizer, extra_finalizer) {
                finalizers.push(f.to_string());
            }
            let existing_grace = cur_v["metadata"]["deletionGracePeriodSeconds"].as_i64();
            let remove_now = finalizers.is_empty() && (grace == 0 || existing_grace == Some(0));
            let swap = if remove_now {
                let release = Self::release_side(&rt, &cur_v);
                storage::delete(&self.store, &key, cur.rv, &release).await?
            } else {
                let mut new = cur_v.clone();
                let deleting = object::is_deleting(&cur_v);
                let shorter = existing_grace.is_none_or(|g| grace < g);
                if let (true, Some(f)) = (adds_finalizer, extra_finalizer) {
                    let mut own = object::finalizers(&cur_v);
                    own.push(f.to_string());
                    new["metadata"]["finalizers"] = own.into();
                }
                if rt.kind == "Namespace" && rt.group.is_empty() {
                    new["status"]["phase"] = "Terminating".into();
                }
                if deleting && !shorter && !adds_finalizer {
                    return Ok(DeleteResponse {
                        object: Some(envelope(&rt, &cur_v)?),
                        deleted: false,
                    });
                }
                if !deleting || shorter {
                    object::set(&mut new, "deletionTimestamp", object::now_plus(grace));
                    object::set(&mut new, "deletionGracePeriodSeconds", grace);
                }
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
                    return Ok(DeleteResponse {
                        object: Some(envelope(&rt, &new)?),
                        deleted: false,
                    });
                }
                swap
            };
            match swap {
                Swap::Done(rev) => {
                    let mut gone = cur_v;
                    object::set(&mut gone, "resourceVersion", rev.to_string());
                    return Ok(DeleteResponse {
                        object: Some(envelope(&rt, &gone)?),
                        deleted: true,
                    });
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
