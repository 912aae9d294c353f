//! Server-side apply and managed fields: an apply merges the caller's configuration by the
//! kind's list types and records what its field manager owns; every other write records
//! the fields it changed (`metadata.managedFields`), as Kubernetes does.

use api_model::merge::ApplyError;
use api_model::schema::{Definitions, Node};
use rkube_proto::api::Object;
use serde_json::Value;

use super::write::Change;
use super::{Api, WriteOptions};
use crate::auth::UserInfo;
use crate::error::{Error, FieldError, Result};
use crate::object;
use crate::registry::{ResourceType, Schema};

/// The schema that decides how `rt`'s lists merge: the built-in definitions, or the CRD's
/// structural schema (None: every list is atomic).
pub fn schema_node(rt: &ResourceType) -> Option<Node<'_>> {
    static EMPTY: std::sync::OnceLock<Definitions> = std::sync::OnceLock::new();
    match &rt.schema {
        Schema::Builtin(_) => api_model::schema::builtin().root(&rt.api_version(), &rt.kind),
        Schema::Custom(Some(s)) => Some(Node::new(EMPTY.get_or_init(Definitions::default), s)),
        Schema::Custom(None) => None,
    }
}

fn apply_error(rt: &ResourceType, name: &str, e: ApplyError) -> Error {
    match e {
        ApplyError::Conflicts(cs) => Error::FieldConflicts {
            message: api_model::merge::conflict_message(&cs),
            causes: cs
                .iter()
                .map(|c| {
                    let msg = api_model::merge::conflict_cause_message(c);
                    (c.field.clone(), msg)
                })
                .collect(),
        },
        ApplyError::Invalid { path, message } => {
            Error::invalid(&rt.kind, name, vec![FieldError::invalid(path, "", message)])
        }
    }
}

/// The object an apply of `applied` to `cur` (None: it does not exist) gives.
pub(super) fn merged(
    rt: &ResourceType,
    cur: Option<&Value>,
    applied: &Value,
    opts: &WriteOptions,
) -> Result<Value> {
    api_model::merge::apply(
        cur,
        applied,
        &opts.field_manager,
        opts.force,
        schema_node(rt),
        &rt.api_version(),
        &object::now(),
    )
    .map_err(|e| apply_error(rt, object::name(applied), e))
}

/// The object an apply to the existing `cur` stores: the merge, with the status kept from
/// `cur` (or, for an apply to the status subresource, only the status taken).
pub(super) fn desired(
    rt: &ResourceType,
    cur: &Value,
    applied: &Value,
    status: bool,
    opts: &WriteOptions,
) -> Result<Value> {
    let merged = merged(rt, Some(cur), applied, opts)?;
    Ok(if status {
        let mut new = cur.clone();
        new["status"] = merged["status"].clone();
        new["metadata"]["managedFields"] = merged["metadata"]["managedFields"].clone();
        new
    } else if rt.has_status {
        let mut new = merged;
        new["status"] = cur["status"].clone();
        new
    } else {
        merged
    })
}

/// The manager a write without `fieldManager` is recorded under: the user's name.
fn manager<'a>(opts: &'a WriteOptions, user: &'a UserInfo) -> &'a str {
    if opts.field_manager.is_empty() {
        &user.name
    } else {
        &opts.field_manager
    }
}

/// Records in `new` the fields a create (`old` None) or update changed. Writes through
/// the gRPC API (no field manager) are recorded only on objects already tracked, so
/// rkube's own controllers pay nothing for objects no apply has touched.
pub(super) fn record(
    rt: &ResourceType,
    old: Option<&Value>,
    new: &mut Value,
    sub: &str,
    opts: &WriteOptions,
    user: &UserInfo,
) {
    let tracked = old.is_some_and(|o| {
        o["metadata"]["managedFields"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
    });
    if opts.field_manager.is_empty() && !tracked {
        if let Some(m) = new.get_mut("metadata").and_then(|m| m.as_object_mut()) {
            m.remove("managedFields");
        }
        return;
    }
    api_model::merge::record_update(
        old,
        new,
        manager(opts, user),
        sub,
        schema_node(rt),
        &rt.api_version(),
        &object::now(),
    );
}

impl Api {
    /// Server-side apply of `env` (its JSON is the applied configuration): merged into the
    /// object, or creating it when it does not exist.
    pub async fn apply_with(
        &self,
        user: &UserInfo,
        env: &Object,
        status: bool,
        opts: &WriteOptions,
    ) -> Result<Object> {
        let rt = self.resolve(env.r#type.as_ref()).await?;
        if opts.field_manager.is_empty() {
            return Err(Error::BadRequest(
                "fieldManager: Required value: is required for apply patch".into(),
            ));
        }
        let applied = self.parse_object(&rt, env)?;
        let ns = Self::namespace_of(&rt, object::namespace(&applied))?;
        let name = object::name(&applied).to_string();
        if name.is_empty() {
            return Err(Error::invalid(
                &rt.kind,
                "",
                vec![FieldError::required("metadata.name")],
            ));
        }
        for _ in 0..super::MAX_RETRIES {
            let change = Change::Apply(&applied, status);
            match self.change(user, &rt, &ns, &name, change, opts).await {
                Err(Error::NotFound { .. }) if !status => {}
                r => return r,
            }
            let created = merged(&rt, None, &applied, opts)?;
            let mut create = opts.clone();
            create.managed_fields = created["metadata"].get("managedFields").cloned();
            let env = super::envelope(&rt, &created)?;
            match self.create_with(user, &env, &create).await {
                Err(Error::AlreadyExists { .. }) => continue,
                r => return r,
            }
        }
        Err(Error::conflict(&rt.qualified(), &name))
    }
}
