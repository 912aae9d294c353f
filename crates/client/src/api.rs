//! [`Api<K>`]: typed access to one kind, namespaced or across namespaces.

use std::marker::PhantomData;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::{Metadata, Resource};
use rkube_proto::api::*;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::Streaming;

use crate::client::Client;
use crate::error::{Error, Result};

/// What a list selects.
#[derive(Clone, Debug, Default)]
pub struct ListParams {
    pub label_selector: Option<String>,
    pub field_selector: Option<String>,
    pub limit: Option<i64>,
    pub continue_token: Option<String>,
}

impl ListParams {
    pub fn labels(mut self, s: &str) -> Self {
        self.label_selector = Some(s.to_string());
        self
    }
    pub fn fields(mut self, s: &str) -> Self {
        self.field_selector = Some(s.to_string());
        self
    }
    pub fn limit(mut self, n: i64) -> Self {
        self.limit = Some(n);
        self
    }
}

/// How a delete is done.
#[derive(Clone, Debug, Default)]
pub struct DeleteParams {
    pub grace_period_seconds: Option<i64>,
    /// "Background", "Foreground" or "Orphan".
    pub propagation_policy: Option<String>,
    /// Delete only the object with this uid.
    pub precondition_uid: Option<String>,
}

/// How a patch is read.
#[derive(Clone, Copy, Debug)]
pub enum PatchParams {
    Merge,
    Strategic,
    Json,
}

/// One page of a list.
#[derive(Clone, Debug)]
pub struct ObjectList<K> {
    pub items: Vec<K>,
    pub resource_version: String,
    /// Set when more pages remain.
    pub continue_token: Option<String>,
}

/// What the typed API, watchers and controllers work with: a `k8s-openapi` kind with
/// standard metadata.
pub trait ApiObject:
    Resource + Metadata<Ty = ObjectMeta> + Serialize + DeserializeOwned + Clone + Send + Sync + 'static
{
}

impl<K> ApiObject for K where
    K: Resource
        + Metadata<Ty = ObjectMeta>
        + Serialize
        + DeserializeOwned
        + Clone
        + Send
        + Sync
        + 'static
{
}

/// A typed handle on one kind.
pub struct Api<K> {
    client: Client,
    namespace: Option<String>,
    _k: PhantomData<fn() -> K>,
}

impl<K> Clone for Api<K> {
    fn clone(&self) -> Self {
        Api {
            client: self.client.clone(),
            namespace: self.namespace.clone(),
            _k: PhantomData,
        }
    }
}

pub fn decode<K: DeserializeOwned + Resource>(o: &Object) -> Result<K> {
    serde_json::from_slice(&o.json).map_err(|e| Error::Decode {
        kind: K::KIND.to_string(),
        source: e,
    })
}

impl<K: ApiObject> Api<K> {
    /// Objects of one namespace.
    pub fn namespaced(client: Client, ns: &str) -> Self {
        Api {
            client,
            namespace: Some(ns.to_string()),
            _k: PhantomData,
        }
    }

    /// Every namespace (or a cluster-scoped kind).
    pub fn all(client: Client) -> Self {
        Api {
            client,
            namespace: None,
            _k: PhantomData,
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }

    pub fn type_ref() -> TypeRef {
        TypeRef {
            api_version: K::API_VERSION.to_string(),
            kind: K::KIND.to_string(),
        }
    }

    fn ns(&self) -> String {
        self.namespace.clone().unwrap_or_default()
    }

    fn envelope(&self, obj: &K) -> Result<Object> {
        let mut v = serde_json::to_value(obj).map_err(|e| Error::Decode {
            kind: K::KIND.to_string(),
            source: e,
        })?;
        v["apiVersion"] = K::API_VERSION.into();
        v["kind"] = K::KIND.into();
        let meta = obj.metadata();
        Ok(Object {
            r#type: Some(Self::type_ref()),
            namespace: meta
                .namespace
                .clone()
                .or_else(|| self.namespace.clone())
                .unwrap_or_default(),
            name: meta.name.clone().unwrap_or_default(),
            resource_version: meta.resource_version.clone().unwrap_or_default(),
            json: serde_json::to_vec(&v).unwrap_or_default().into(),
        })
    }

    pub async fn get(&self, name: &str) -> Result<K> {
        let o = self
            .client
            .get(GetRequest {
                r#type: Some(Self::type_ref()),
                namespace: self.ns(),
                name: name.to_string(),
            })
            .await?;
        decode(&o)
    }

    /// `Ok(None)` when the object does not exist.
    pub async fn get_opt(&self, name: &str) -> Result<Option<K>> {
        match self.get(name).await {
            Ok(k) => Ok(Some(k)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub async fn list(&self, lp: &ListParams) -> Result<ObjectList<K>> {
        let resp = self
            .client
            .list(ListRequest {
                r#type: Some(Self::type_ref()),
                namespace: self.ns(),
                label_selector: lp.label_selector.clone().unwrap_or_default(),
                field_selector: lp.field_selector.clone().unwrap_or_default(),
                limit: lp.limit.unwrap_or(0),
                continue_token: lp.continue_token.clone().unwrap_or_default(),
            })
            .await?;
        Ok(ObjectList {
            items: resp.items.iter().map(decode).collect::<Result<_>>()?,
            resource_version: resp.resource_version,
            continue_token: (!resp.continue_token.is_empty()).then_some(resp.continue_token),
        })
    }

    pub async fn create(&self, obj: &K) -> Result<K> {
        let o = self
            .client
            .create(CreateRequest {
                object: Some(self.envelope(obj)?),
            })
            .await?;
        decode(&o)
    }

    /// Update; the object's resourceVersion, when set, must be the stored one.
    pub async fn replace(&self, obj: &K) -> Result<K> {
        let req = UpdateRequest {
            object: Some(self.envelope(obj)?),
            ..Default::default()
        };
        decode(&self.client.update(req, false).await?)
    }

    /// Update of the status subresource.
    pub async fn replace_status(&self, obj: &K) -> Result<K> {
        let req = UpdateRequest {
            object: Some(self.envelope(obj)?),
            ..Default::default()
        };
        decode(&self.client.update(req, true).await?)
    }

    /// Update of the `approval` subresource (CertificateSigningRequests): only the
    /// Approved and Denied conditions are taken from the object.
    pub async fn replace_approval(&self, obj: &K) -> Result<K> {
        let req = UpdateRequest {
            object: Some(self.envelope(obj)?),
            subresource: "approval".into(),
        };
        decode(&self.client.update(req, true).await?)
    }

    async fn patch_any(
        &self,
        name: &str,
        pp: PatchParams,
        patch: &serde_json::Value,
        status: bool,
    ) -> Result<K> {
        let patch_type = match pp {
            PatchParams::Merge => PatchType::Merge,
            PatchParams::Strategic => PatchType::Strategic,
            PatchParams::Json => PatchType::Json,
        };
        let o = self
            .client
            .patch(PatchRequest {
                r#type: Some(Self::type_ref()),
                namespace: self.ns(),
                name: name.to_string(),
                patch_type: patch_type as i32,
                patch: serde_json::to_vec(patch).unwrap_or_default().into(),
                status,
            })
            .await?;
        decode(&o)
    }

    pub async fn patch(&self, name: &str, pp: PatchParams, patch: &serde_json::Value) -> Result<K> {
        self.patch_any(name, pp, patch, false).await
    }

    pub async fn patch_status(
        &self,
        name: &str,
        pp: PatchParams,
        patch: &serde_json::Value,
    ) -> Result<K> {
        self.patch_any(name, pp, patch, true).await
    }

    /// Deletes; returns the object and whether it is gone (false: it waits on finalizers or
    /// a grace period).
    pub async fn delete(&self, name: &str, grace_period_seconds: Option<i64>) -> Result<(K, bool)> {
        self.delete_with(
            name,
            &DeleteParams {
                grace_period_seconds,
                ..Default::default()
            },
        )
        .await
    }

    /// Deletes with a grace period, a propagation policy and preconditions.
    pub async fn delete_with(&self, name: &str, dp: &DeleteParams) -> Result<(K, bool)> {
        let resp = self
            .client
            .delete(DeleteRequest {
                r#type: Some(Self::type_ref()),
                namespace: self.ns(),
                name: name.to_string(),
                grace_period_seconds: dp.grace_period_seconds,
                propagation_policy: dp.propagation_policy.clone().unwrap_or_default(),
                precondition_uid: dp.precondition_uid.clone().unwrap_or_default(),
                ..Default::default()
            })
            .await?;
        let obj = resp
            .object
            .ok_or_else(|| Error::Config("delete returned no object".into()))?;
        Ok((decode(&obj)?, resp.deleted))
    }

    /// A raw watch stream from `resource_version` ("" or "0": current state first).
    pub async fn watch_raw(
        &self,
        lp: &ListParams,
        resource_version: &str,
        bookmarks: bool,
    ) -> Result<Streaming<WatchEvent>> {
        self.client
            .watch(WatchRequest {
                r#type: Some(Self::type_ref()),
                namespace: self.ns(),
                label_selector: lp.label_selector.clone().unwrap_or_default(),
                field_selector: lp.field_selector.clone().unwrap_or_default(),
                resource_version: resource_version.to_string(),
                allow_bookmarks: bookmarks,
            })
            .await
    }
}
