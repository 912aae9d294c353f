//! The Discovery service: every kind served, built-in and custom.

use std::sync::Arc;

use rkube_proto::api::discovery_server::Discovery;
use rkube_proto::api::*;
use tonic::{Request, Response, Status};

use crate::handler::Api;

#[derive(Clone)]
pub struct DiscoveryService {
    pub api: Arc<Api>,
}

const VERBS: &[&str] = &[
    "create", "delete", "get", "list", "patch", "update", "watch",
];

#[tonic::async_trait]
impl Discovery for DiscoveryService {
    async fn list_resources(
        &self,
        _req: Request<ListResourcesRequest>,
    ) -> Result<Response<ListResourcesResponse>, Status> {
        // CRDs committed before this call are registered before it answers.
        self.api
            .cache
            .wait_fresh(&self.api.store)
            .await
            .map_err(Status::from)?;
        let resources = self
            .api
            .registry
            .all()
            .iter()
            .map(|t| {
                let mut subresources = Vec::new();
                if t.has_status {
                    subresources.push("status".to_string());
                }
                if t.kind == "Pod" && t.group.is_empty() {
                    subresources.push("binding".to_string());
                }
                if crate::certificates::is_csr(&t.group, &t.kind) {
                    subresources.push("approval".to_string());
                }
                // Reviews are answered, never stored: create is all they serve.
                let verbs: &[&str] = if crate::rbac::review::is_review(t) {
                    &["create"]
                } else {
                    VERBS
                };
                ApiResource {
                    group: t.group.clone(),
                    version: t.version.clone(),
                    kind: t.kind.clone(),
                    name: t.plural.clone(),
                    singular_name: t.singular.clone(),
                    namespaced: t.namespaced,
                    short_names: t.short_names.clone(),
                    verbs: verbs.iter().map(|v| v.to_string()).collect(),
                    subresources,
                    categories: t.categories.clone(),
                }
            })
            .collect();
        Ok(Response::new(ListResourcesResponse { resources }))
    }
}
