//! What every controller of the controller-manager reads and writes through: the client,
//! one shared informer per kind, the event recorder, and the token that shuts every
//! controller down.

use std::sync::Arc;

use client::informer::Informer;
use client::metrics::PodMetrics;
use client::runtime::{CancellationToken, Controller, Key, Metrics};
use client::{Api, ApiObject, Client};
use k8s_openapi::api::apps::v1::{
    ControllerRevision, DaemonSet, Deployment, ReplicaSet, StatefulSet,
};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{
    ConfigMap, Namespace, Node, PersistentVolume, PersistentVolumeClaim, Pod,
    ReplicationController, ResourceQuota, Secret, Service, ServiceAccount,
};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::rbac::v1::ClusterRole;
use k8s_openapi::api::storage::v1::StorageClass;

use crate::events::Recorder;

pub(crate) struct Ctx {
    pub client: Client,
    pub events: Recorder,
    /// Every controller's reconcile and queue metrics.
    pub metrics: Metrics,
    /// Cancelled to shut down: every controller stops taking keys and lets the reconciles
    /// under way finish.
    pub shutdown: CancellationToken,
    pub pods: Arc<Informer<Pod>>,
    pub replicasets: Arc<Informer<ReplicaSet>>,
    pub replication_controllers: Arc<Informer<ReplicationController>>,
    pub deployments: Arc<Informer<Deployment>>,
    pub services: Arc<Informer<Service>>,
    pub namespaces: Arc<Informer<Namespace>>,
    pub service_accounts: Arc<Informer<ServiceAccount>>,
    pub secrets: Arc<Informer<Secret>>,
    pub config_maps: Arc<Informer<ConfigMap>>,
    pub nodes: Arc<Informer<Node>>,
    pub endpoint_slices: Arc<Informer<EndpointSlice>>,
    pub jobs: Arc<Informer<Job>>,
    pub cronjobs: Arc<Informer<CronJob>>,
    pub daemonsets: Arc<Informer<DaemonSet>>,
    pub statefulsets: Arc<Informer<StatefulSet>>,
    pub controller_revisions: Arc<Informer<ControllerRevision>>,
    pub pvcs: Arc<Informer<PersistentVolumeClaim>>,
    pub pvs: Arc<Informer<PersistentVolume>>,
    pub storage_classes: Arc<Informer<StorageClass>>,
    pub node_leases: Arc<Informer<Lease>>,
    pub hpas: Arc<Informer<HorizontalPodAutoscaler>>,
    pub pod_metrics: Arc<Informer<PodMetrics>>,
    pub csrs: Arc<Informer<CertificateSigningRequest>>,
    pub quotas: Arc<Informer<ResourceQuota>>,
    pub cluster_roles: Arc<Informer<ClusterRole>>,
}

fn all<K: ApiObject>(client: &Client) -> Arc<Informer<K>> {
    Informer::start(Api::<K>::all(client.clone()), Default::default())
}

impl Ctx {
    /// The names of the nodes whose Ready condition is True, sorted.
    pub(crate) fn ready_node_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .nodes
            .list()
            .iter()
            .filter(|n| {
                crate::node_lifecycle::ready_condition(n).is_some_and(|c| c.status == "True")
            })
            .filter_map(|n| n.metadata.name.clone())
            .collect();
        names.sort();
        names
    }

    /// Starts every informer; they stop when the context is dropped.
    pub(crate) fn start(
        client: Client,
        component: &str,
        metrics: Metrics,
        shutdown: CancellationToken,
    ) -> Arc<Ctx> {
        Arc::new(Ctx {
            events: Recorder::new(client.clone(), component),
            metrics,
            shutdown,
            pods: all(&client),
            replicasets: all(&client),
            replication_controllers: all(&client),
            deployments: all(&client),
            services: all(&client),
            namespaces: all(&client),
            service_accounts: all(&client),
            secrets: all(&client),
            config_maps: all(&client),
            nodes: all(&client),
            endpoint_slices: all(&client),
            jobs: all(&client),
            cronjobs: all(&client),
            daemonsets: all(&client),
            statefulsets: all(&client),
            controller_revisions: all(&client),
            pvcs: all(&client),
            pvs: all(&client),
            storage_classes: all(&client),
            hpas: all(&client),
            pod_metrics: all(&client),
            csrs: all(&client),
            quotas: all(&client),
            cluster_roles: all(&client),
            node_leases: Informer::start(
                Api::<Lease>::namespaced(client.clone(), "kube-node-lease"),
                Default::default(),
            ),
            client,
        })
    }

    /// The same informers, with writes (and events) made through `client`: what one
    /// controller sees when it acts under its own credentials.
    pub(crate) fn for_controller(&self, client: Client) -> Arc<Ctx> {
        Arc::new(Ctx {
            events: Recorder::new(client.clone(), "controller-manager"),
            metrics: self.metrics.clone(),
            shutdown: self.shutdown.clone(),
            client,
            pods: self.pods.clone(),
            replicasets: self.replicasets.clone(),
            replication_controllers: self.replication_controllers.clone(),
            deployments: self.deployments.clone(),
            services: self.services.clone(),
            namespaces: self.namespaces.clone(),
            service_accounts: self.service_accounts.clone(),
            secrets: self.secrets.clone(),
            config_maps: self.config_maps.clone(),
            nodes: self.nodes.clone(),
            endpoint_slices: self.endpoint_slices.clone(),
            jobs: self.jobs.clone(),
            cronjobs: self.cronjobs.clone(),
            daemonsets: self.daemonsets.clone(),
            statefulsets: self.statefulsets.clone(),
            controller_revisions: self.controller_revisions.clone(),
            pvcs: self.pvcs.clone(),
            pvs: self.pvs.clone(),
            storage_classes: self.storage_classes.clone(),
            node_leases: self.node_leases.clone(),
            hpas: self.hpas.clone(),
            pod_metrics: self.pod_metrics.clone(),
            csrs: self.csrs.clone(),
            quotas: self.quotas.clone(),
            cluster_roles: self.cluster_roles.clone(),
        })
    }

    /// A controller of `primary`, counted in the manager's metrics and shut down with it.
    pub(crate) fn controller<K: ApiObject>(
        &self,
        name: &'static str,
        primary: &Arc<Informer<K>>,
    ) -> Controller {
        Controller::new(name, primary.clone())
            .metrics(&self.metrics)
            .graceful_shutdown_on(self.shutdown.clone())
    }

    /// A controller of keys of its own (`resync` lists them all), counted in the manager's
    /// metrics and shut down with it.
    pub(crate) fn controller_with_resync<T: Key>(
        &self,
        name: &'static str,
        resync: Arc<dyn Fn() -> Vec<T> + Send + Sync>,
    ) -> Controller<T> {
        Controller::with_resync(name, resync)
            .metrics(&self.metrics)
            .graceful_shutdown_on(self.shutdown.clone())
    }

    /// Runs `step` every `period` (the first at once) until the shutdown token is
    /// cancelled: the loops that look at everything periodically rather than per change.
    pub(crate) async fn every<F, Fut>(&self, period: std::time::Duration, mut step: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        let mut tick = tokio::time::interval(period);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = self.shutdown.cancelled() => return,
            }
            step().await;
        }
    }

    pub(crate) async fn wait_ready(&self) {
        self.pods.wait_ready().await;
        self.replicasets.wait_ready().await;
        self.replication_controllers.wait_ready().await;
        self.deployments.wait_ready().await;
        self.services.wait_ready().await;
        self.namespaces.wait_ready().await;
        self.service_accounts.wait_ready().await;
        self.secrets.wait_ready().await;
        self.nodes.wait_ready().await;
        self.endpoint_slices.wait_ready().await;
        self.jobs.wait_ready().await;
        self.cronjobs.wait_ready().await;
        self.daemonsets.wait_ready().await;
        self.statefulsets.wait_ready().await;
        self.controller_revisions.wait_ready().await;
        self.pvcs.wait_ready().await;
        self.pvs.wait_ready().await;
        self.storage_classes.wait_ready().await;
        self.node_leases.wait_ready().await;
        self.hpas.wait_ready().await;
        self.pod_metrics.wait_ready().await;
        self.csrs.wait_ready().await;
        self.quotas.wait_ready().await;
        self.cluster_roles.wait_ready().await;
    }
}

/// The type reference of a kind that discovery lists, for requests about any kind.
pub(crate) fn type_of(r: &rkube_proto::api::ApiResource) -> rkube_proto::api::TypeRef {
    rkube_proto::api::TypeRef {
        api_version: if r.group.is_empty() {
            r.version.clone()
        } else {
            format!("{}/{}", r.group, r.version)
        },
        kind: r.kind.clone(),
    }
}

/// A failed call to the apiserver, naming what was asked: the error controllers wrap.
#[derive(Debug, thiserror::Error)]
#[error("{verb} {kind} {name}: {source}")]
pub(crate) struct ApiError {
    pub verb: &'static str,
    pub kind: &'static str,
    pub name: String,
    #[source]
    pub source: client::Error,
}

/// Turns a client error of `verb` on the `K` named `name` into an [`ApiError`].
pub(crate) fn api_error<K: client::ApiObject>(
    verb: &'static str,
    name: &str,
) -> impl FnOnce(client::Error) -> ApiError {
    let name = name.to_string();
    move |source| ApiError {
        verb,
        kind: K::KIND,
        name,
        source,
    }
}
