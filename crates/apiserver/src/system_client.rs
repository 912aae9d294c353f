//! Typed reads and writes for the apiserver's own loops (the `kubernetes` Service, member
//! leases), through the same handler every request takes — validation, admission and
//! the store's transactions — as `system:apiserver` in `system:masters`.

use std::sync::Arc;

use k8s_openapi::Resource;
use rkube_proto::api::{DeleteRequest, GetRequest, ListRequest, Object, TypeRef};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::auth::UserInfo;
use crate::error::{Error, Result};
use crate::handler::Api;

/// The apiserver's own identity.
pub fn apiserver_user() -> UserInfo {
    UserInfo {
        name: crate::tokens::APISERVER_USER.into(),
        uid: String::new(),
        groups: vec!["system:masters".into()],
    }
}

#[derive(Clone)]
pub struct SystemClient {
    api: Arc<Api>,
    user: UserInfo,
}

fn type_ref<K: Resource>() -> Option<TypeRef> {
    Some(TypeRef {
        api_version: K::API_VERSION.into(),
        kind: K::KIND.into(),
    })
}

fn decode<K: DeserializeOwned>(o: &Object) -> Result<K> {
    serde_json::from_slice(&o.json).map_err(|e| Error::Internal(format!("decoding: {e}")))
}

fn encode<K: Resource + Serialize>(obj: &K) -> Result<Object> {
    let mut v = serde_json::to_value(obj).map_err(|e| Error::Internal(e.to_string()))?;
    v["apiVersion"] = K::API_VERSION.into();
    v["kind"] = K::KIND.into();
    Ok(Object {
        r#type: type_ref::<K>(),
        namespace: v["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .into(),
        name: v["metadata"]["name"].as_str().unwrap_or_default().into(),
        json: serde_json::to_vec(&v).unwrap_or_default().into(),
        ..Default::default()
    })
}

impl SystemClient {
    pub fn new(api: Arc<Api>) -> Self {
        SystemClient {
            api,
            user: apiserver_user(),
        }
    }

    pub async fn get<K: Resource + DeserializeOwned>(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<K>> {
        let req = GetRequest {
            r#type: type_ref::<K>(),
            namespace: namespace.into(),
            name: name.into(),
        };
        match self.api.get(&self.user, &req).await {
            Ok(o) => decode(&o).map(Some),
            Err(Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The objects of `namespace` matching the label selector `labels`.
    pub async fn list<K: Resource + DeserializeOwned>(
        &self,
        namespace: &str,
        labels: &str,
    ) -> Result<Vec<K>> {
        let req = ListRequest {
            r#type: type_ref::<K>(),
            namespace: namespace.into(),
            label_selector: labels.into(),
            ..Default::default()
        };
        let out = self.api.list(&self.user, &req).await?;
        out.items.iter().map(decode).collect()
    }

    pub async fn create<K: Resource + Serialize + DeserializeOwned>(&self, obj: &K) -> Result<K> {
        decode(&self.api.create(&self.user, &encode(obj)?).await?)
    }

    /// Replaces the object; its resourceVersion is the precondition.
    pub async fn replace<K: Resource + Serialize + DeserializeOwned>(&self, obj: &K) -> Result<K> {
        decode(&self.api.update(&self.user, &encode(obj)?, "").await?)
    }

    /// Deletes the object; one already gone is no error.
    pub async fn delete<K: Resource>(&self, namespace: &str, name: &str) -> Result<()> {
        let req = DeleteRequest {
            r#type: type_ref::<K>(),
            namespace: namespace.into(),
            name: name.into(),
            ..Default::default()
        };
        match self.api.delete(&self.user, &req).await {
            Ok(_) | Err(Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}
