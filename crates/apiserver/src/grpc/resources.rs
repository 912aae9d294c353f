//! The Resources service: authentication, then the handler, with metrics per verb.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rkube_proto::api::resources_server::Resources;
use rkube_proto::api::*;
use tonic::{Request, Response, Status};

use crate::auth::UserInfo;
use crate::error::Error;
use crate::handler::{Api, WatchStream};
use crate::patch::PatchKind;

#[derive(Clone)]
pub struct ResourcesService {
    pub api: Arc<Api>,
    pub bookmark_interval: Duration,
}

impl ResourcesService {
    async fn run<T, R, F, Fut>(
        &self,
        verb: &str,
        req: Request<T>,
        f: F,
    ) -> Result<Response<R>, Status>
    where
        F: FnOnce(Arc<Api>, UserInfo, T) -> Fut,
        Fut: std::future::Future<Output = Result<R, Error>>,
    {
        let start = Instant::now();
        let res = match self.api.user(&req).await {
            Ok(user) => f(self.api.clone(), user, req.into_inner()).await,
            Err(e) => Err(e),
        };
        let code = res.as_ref().map_or_else(|e| e.code(), |_| tonic::Code::Ok);
        self.api
            .metrics
            .observe(verb, code, start.elapsed().as_secs_f64());
        res.map(Response::new).map_err(Status::from)
    }
}

#[tonic::async_trait]
impl Resources for ResourcesService {
    async fn get(&self, req: Request<GetRequest>) -> Result<Response<Object>, Status> {
        self.run("get", req, |api, u, r| async move { api.get(&u, &r).await })
            .await
    }

    async fn list(&self, req: Request<ListRequest>) -> Result<Response<ListResponse>, Status> {
        self.run(
            "list",
            req,
            |api, u, r| async move { api.list(&u, &r).await },
        )
        .await
    }

    type WatchStream = WatchStream;

    async fn watch(&self, req: Request<WatchRequest>) -> Result<Response<WatchStream>, Status> {
        let every = self.bookmark_interval;
        let metrics = self.api.metrics.clone();
        let resp = self
            .run("watch", req, |api, u, r| async move {
                api.watch(&u, &r, every).await
            })
            .await?;
        metrics.watches.inc();
        let stream = resp.into_inner();
        Ok(Response::new(Box::pin(Counted {
            inner: stream,
            metrics,
        })))
    }

    async fn create(&self, req: Request<CreateRequest>) -> Result<Response<Object>, Status> {
        self.run("create", req, |api, u, r| async move {
            let obj = r
                .object
                .ok_or_else(|| Error::BadRequest("object: Required value".into()))?;
            api.create(&u, &obj).await
        })
        .await
    }

    async fn update(&self, req: Request<UpdateRequest>) -> Result<Response<Object>, Status> {
        self.run("update", req, |api, u, r| async move {
            let obj = r
                .object
                .ok_or_else(|| Error::BadRequest("object: Required value".into()))?;
            api.update(&u, &obj, "").await
        })
        .await
    }

    async fn update_status(&self, req: Request<UpdateRequest>) -> Result<Response<Object>, Status> {
        self.run("update_status", req, |api, u, r| async move {
            let obj = r
                .object
                .ok_or_else(|| Error::BadRequest("object: Required value".into()))?;
            let sub = match r.subresource.as_str() {
                "" => "status",
                s => s,
            };
            api.update(&u, &obj, sub).await
        })
        .await
    }

    async fn patch(&self, req: Request<PatchRequest>) -> Result<Response<Object>, Status> {
        self.run("patch", req, |api, u, r| async move {
            let kind = match PatchType::try_from(r.patch_type) {
                Ok(PatchType::Merge) => PatchKind::Merge,
                Ok(PatchType::Strategic) => PatchKind::Strategic,
                Ok(PatchType::Json) => PatchKind::Json,
                _ => {
                    return Err(Error::BadRequest(
                        "patch_type: Required value: MERGE, STRATEGIC or JSON".into(),
                    ))
                }
            };
            api.patch(&u, &r, kind).await
        })
        .await
    }

    async fn delete(
        &self,
        req: Request<DeleteRequest>,
    ) -> Result<Response<DeleteResponse>, Status> {
        self.run("delete", req, |api, u, r| async move {
            api.delete(&u, &r).await
        })
        .await
    }

    async fn bind(&self, req: Request<BindRequest>) -> Result<Response<Object>, Status> {
        self.run("bind", req, |api, u, r| async move {
            api.bind(&u, &r.namespace, &r.name, &r.node_name, &r.uid)
                .await
        })
        .await
    }
}

/// A watch stream that keeps the open-watches gauge right.
struct Counted {
    inner: WatchStream,
    metrics: crate::metrics::Metrics,
}

impl futures::Stream for Counted {
    type Item = Result<WatchEvent, Status>;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.metrics.watches.dec();
    }
}
