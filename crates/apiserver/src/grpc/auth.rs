//! The Auth service: TokenRequest and SelfSubjectReview.

use std::sync::Arc;

use rkube_proto::api::auth_server::Auth;
use rkube_proto::api::*;
use serde_json::json;
use tonic::{Request, Response, Status};

use crate::handler::Api;
use crate::tokens::Tokens;

#[derive(Clone)]
pub struct AuthService {
    pub api: Arc<Api>,
    pub tokens: Arc<Tokens>,
}

fn envelope(api_version: &str, kind: &str, ns: &str, name: &str, v: &serde_json::Value) -> Object {
    Object {
        r#type: Some(TypeRef {
            api_version: api_version.into(),
            kind: kind.into(),
        }),
        namespace: ns.into(),
        name: name.into(),
        resource_version: String::new(),
        json: serde_json::to_vec(v).unwrap_or_default().into(),
    }
}

#[tonic::async_trait]
impl Auth for AuthService {
    async fn create_token(
        &self,
        req: Request<CreateTokenRequest>,
    ) -> Result<Response<Object>, Status> {
        let user = self.api.user(&req).await?;
        let r = req.into_inner();
        let rt = self.api.registry.get("v1", "ServiceAccount")?;
        self.api
            .authorize(&user, "create", &rt, "token", &r.namespace, &r.name)?;
        let v = self
            .tokens
            .request(&r.namespace, &r.name, &r.json, &r.secret_name)
            .await?;
        Ok(Response::new(envelope(
            "authentication.k8s.io/v1",
            "TokenRequest",
            &r.namespace,
            &r.name,
            &v,
        )))
    }

    async fn public_keys(
        &self,
        _req: Request<PublicKeysRequest>,
    ) -> Result<Response<PublicKeysResponse>, Status> {
        Ok(Response::new(PublicKeysResponse {
            pem: vec![self.tokens.public_pem()?],
            issuer: crate::tokens::ISSUER.into(),
        }))
    }

    async fn who_am_i(&self, req: Request<WhoAmIRequest>) -> Result<Response<Object>, Status> {
        let user = self.api.user(&req).await?;
        let v = json!({
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "SelfSubjectReview",
            "metadata": {},
            "status": {"userInfo": {
                "username": user.name,
                "uid": user.uid,
                "groups": user.groups,
            }},
        });
        Ok(Response::new(envelope(
            "authentication.k8s.io/v1",
            "SelfSubjectReview",
            "",
            "",
            &v,
        )))
    }
}
