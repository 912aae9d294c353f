//! etcd's Lease service.

use std::pin::Pin;

use futures::{Stream, StreamExt};
use rkube_proto::etcd::lease_server::Lease;
use rkube_proto::etcd::*;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::EtcdService;

type KeepAliveStream = Pin<Box<dyn Stream<Item = Result<LeaseKeepAliveResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Lease for EtcdService {
    async fn lease_grant(
        &self,
        req: Request<LeaseGrantRequest>,
    ) -> Result<Response<LeaseGrantResponse>, Status> {
        let mut r = self.store.lease_grant(req.into_inner()).await?;
        r.header = self.header(r.header);
        Ok(Response::new(r))
    }

    async fn lease_revoke(
        &self,
        req: Request<LeaseRevokeRequest>,
    ) -> Result<Response<LeaseRevokeResponse>, Status> {
        let mut r = self.store.lease_revoke(req.get_ref().id).await?;
        r.header = self.header(r.header);
        Ok(Response::new(r))
    }

    type LeaseKeepAliveStream = KeepAliveStream;

    async fn lease_keep_alive(
        &self,
        req: Request<Streaming<LeaseKeepAliveRequest>>,
    ) -> Result<Response<Self::LeaseKeepAliveStream>, Status> {
        let mut input = req.into_inner();
        let (tx, rx) = mpsc::channel(16);
        let this = self.clone();
        tokio::spawn(async move {
            while let Some(Ok(r)) = input.next().await {
                let out = this
                    .store
                    .lease_keep_alive(r.id)
                    .await
                    .map_err(Status::from)
                    .map(|mut resp| {
                        resp.header = this.header(resp.header);
                        resp
                    });
                let failed = out.is_err();
                if tx.send(out).await.is_err() || failed {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn lease_time_to_live(
        &self,
        req: Request<LeaseTimeToLiveRequest>,
    ) -> Result<Response<LeaseTimeToLiveResponse>, Status> {
        let id = req.get_ref().id;
        let mut r = match self.store.lease_time_to_live(req.into_inner()).await {
            // etcd answers an unknown (expired) lease with TTL -1, not an error.
            Err(crate::Error::LeaseNotFound) => LeaseTimeToLiveResponse {
                id,
                ttl: -1,
                ..Default::default()
            },
            Err(crate::Error::Remote(s)) if s.code() == tonic::Code::NotFound => {
                LeaseTimeToLiveResponse {
                    id,
                    ttl: -1,
                    ..Default::default()
                }
            }
            r => r?,
        };
        r.header = self.header(r.header);
        Ok(Response::new(r))
    }

    async fn lease_leases(
        &self,
        _: Request<LeaseLeasesRequest>,
    ) -> Result<Response<LeaseLeasesResponse>, Status> {
        let mut r = self.store.leases().await?;
        r.header = self.header(r.header);
        Ok(Response::new(r))
    }
}
