//! etcd's KV service.

use rkube_proto::etcd::kv_server::Kv;
use rkube_proto::etcd::*;
use tonic::{Request, Response, Status};

use super::EtcdService;

#[tonic::async_trait]
impl Kv for EtcdService {
    async fn range(&self, req: Request<RangeRequest>) -> Result<Response<RangeResponse>, Status> {
        let mut r = self.store.range(req.get_ref()).await?;
        r.header = self.header(r.header);
        Ok(Response::new(r))
    }

    async fn put(&self, req: Request<PutRequest>) -> Result<Response<PutResponse>, Status> {
        let mut r = self.store.put(req.into_inner()).await?;
        r.header = self.header(r.header);
        Ok(Response::new(r))
    }

    async fn delete_range(
        &self,
        req: Request<DeleteRangeRequest>,
    ) -> Result<Response<DeleteRangeResponse>, Status> {
        let mut r = self.store.delete_range(req.into_inner()).await?;
        r.header = self.header(r.header);
        Ok(Response::new(r))
    }

    async fn txn(&self, req: Request<TxnRequest>) -> Result<Response<TxnResponse>, Status> {
        let mut r = self.store.txn(req.into_inner()).await?;
        r.header = self.header(r.header);
        Ok(Response::new(r))
    }

    async fn compact(
        &self,
        req: Request<CompactionRequest>,
    ) -> Result<Response<CompactionResponse>, Status> {
        let mut r = self.store.compact(req.get_ref().revision).await?;
        r.header = self.header(r.header);
        Ok(Response::new(r))
    }
}
