//! The service loop: a `type: LoadBalancer` Service of the provider's class gets a load
//! balancer forwarding to the Ready nodes, and its address in `status.loadBalancer`. The
//! Service holds the `service.kubernetes.io/load-balancer-cleanup` finalizer while it has a
//! balancer, so the cloud resource is deleted before the Service goes. Node changes update
//! every balancer's backends; a request the provider has already answered is not sent
//! again.

use std::collections::HashMap;
use std::sync::Arc;

use client::informer::Change;
use client::reflector::ObjectKey;
use client::runtime::{backoff, Action};
use client::state::EventType;
use client::Api;
use k8s_openapi::api::core::v1::{Node, Service};
use parking_lot::Mutex;
use rkube_proto::cloudprovider as cp;

use super::lb_plan::{self, Step, FINALIZER};
use super::{Cloud, CloudError};
use crate::context::Ctx;

struct ServiceLoop {
    cloud: Arc<Cloud>,
    cluster_name: String,
    /// The last request the provider answered, per Service.
    sent: Mutex<HashMap<ObjectKey, cp::LoadBalancerRequest>>,
}

fn key_of(s: &Service) -> ObjectKey {
    ObjectKey {
        namespace: s.metadata.namespace.clone().unwrap_or_default(),
        name: s.metadata.name.clone().unwrap_or_default(),
    }
}

pub(crate) async fn run(ctx: Arc<Ctx>, cloud: Arc<Cloud>, cluster_name: String) {
    let this = Arc::new(ServiceLoop {
        cloud,
        cluster_name,
        sent: Mutex::new(HashMap::new()),
    });
    // Any node change may change the backends: every Service with a balancer looks again.
    let services = ctx.services.clone();
    let with_balancers = move |_: &Change<Node>| -> Vec<ObjectKey> {
        services
            .list()
            .iter()
            .filter(|s| {
                s.metadata
                    .finalizers
                    .iter()
                    .flatten()
                    .any(|f| f == FINALIZER)
            })
            .map(|s| key_of(s))
            .collect()
    };
    ctx.controller("cloud-service", &ctx.services)
        .watches(ctx.nodes.clone(), with_balancers)
        .concurrency(2)
        .run(
            move |key, ctx| {
                let this = this.clone();
                async move { this.reconcile(&ctx, key).await }
            },
            backoff,
            ctx.clone(),
        )
        .await
}

impl ServiceLoop {
    fn request(&self, ctx: &Ctx, s: &Service) -> cp::LoadBalancerRequest {
        cp::LoadBalancerRequest {
            cluster_name: self.cluster_name.clone(),
            service: Some(lb_plan::to_proto(s)),
            nodes: lb_plan::backends(&ctx.nodes.list()),
        }
    }

    async fn reconcile(&self, ctx: &Ctx, key: ObjectKey) -> Result<Action, CloudError> {
        let Some(s) = ctx.services.get(&key) else {
            self.sent.lock().remove(&key);
            return Ok(Action::AwaitChange);
        };
        let api = Api::<Service>::namespaced(ctx.client.clone(), &key.namespace);
        match lb_plan::step(&s, &self.cloud.plugin.info.load_balancer_class) {
            Step::Nothing => {}
            Step::AddFinalizer => {
                let mut want = (*s).clone();
                want.metadata
                    .finalizers
                    .get_or_insert_with(Vec::new)
                    .push(FINALIZER.into());
                api.replace(&want).await?;
            }
            Step::Ensure => self.ensure(ctx, &api, &key, &s).await?,
            Step::Delete => self.delete(ctx, &api, &key, &s).await?,
        }
        Ok(Action::AwaitChange)
    }

    async fn ensure(
        &self,
        ctx: &Ctx,
        api: &Api<Service>,
        key: &ObjectKey,
        s: &Service,
    ) -> Result<(), CloudError> {
        let req = self.request(ctx, s);
        let current = s.status.as_ref().and_then(|st| st.load_balancer.clone());
        let has_address = current.as_ref().is_some_and(|lb| lb.ingress.is_some());
        if has_address && self.sent.lock().get(key) == Some(&req) {
            return Ok(());
        }
        let answer = self
            .cloud
            .plugin
            .call("EnsureLoadBalancer", req.clone(), |ch, r| async move {
                cp::load_balancer_client::LoadBalancerClient::new(ch)
                    .ensure_load_balancer(r)
                    .await
            })
            .await?;
        let want = lb_plan::status(&answer);
        if current.as_ref() != Some(&want) {
            let mut updated = s.clone();
            updated
                .status
                .get_or_insert_with(Default::default)
                .load_balancer = Some(want);
            api.replace_status(&updated).await?;
            ctx.events.record(
                s,
                EventType::Normal,
                "EnsuredLoadBalancer",
                "Ensured load balancer".into(),
            );
        }
        self.sent.lock().insert(key.clone(), req);
        Ok(())
    }

    async fn delete(
        &self,
        ctx: &Ctx,
        api: &Api<Service>,
        key: &ObjectKey,
        s: &Service,
    ) -> Result<(), CloudError> {
        let req = self.request(ctx, s);
        self.cloud
            .plugin
            .call("EnsureLoadBalancerDeleted", req, |ch, r| async move {
                cp::load_balancer_client::LoadBalancerClient::new(ch)
                    .ensure_load_balancer_deleted(r)
                    .await
            })
            .await?;
        self.sent.lock().remove(key);
        ctx.events.record(
            s,
            EventType::Normal,
            "DeletedLoadBalancer",
            "Deleted load balancer".into(),
        );
        let mut current = s.clone();
        let has_address = s
            .status
            .as_ref()
            .and_then(|st| st.load_balancer.as_ref())
            .is_some_and(|lb| lb.ingress.is_some());
        if has_address {
            current
                .status
                .get_or_insert_with(Default::default)
                .load_balancer = Some(Default::default());
            current = api.replace_status(&current).await?;
        }
        if let Some(f) = current.metadata.finalizers.as_mut() {
            f.retain(|f| f != FINALIZER);
        }
        match api.replace(&current).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}
