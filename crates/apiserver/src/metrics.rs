//! Prometheus metrics of the apiserver, in the text exposition format.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub verb: String,
    pub code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VerbLabels {
    pub verb: String,
}

/// The labels of Kubernetes' `apiserver_request_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RestLabels {
    pub verb: String,
    pub dry_run: String,
    pub group: String,
    pub version: String,
    pub resource: String,
    pub subresource: String,
    pub scope: String,
    pub component: String,
    pub code: String,
}

/// The labels of Kubernetes' `apiserver_request_duration_seconds` (no code).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RestDurationLabels {
    pub verb: String,
    pub dry_run: String,
    pub group: String,
    pub version: String,
    pub resource: String,
    pub subresource: String,
    pub scope: String,
    pub component: String,
}

type RestHistograms = Family<RestDurationLabels, Histogram, fn() -> Histogram>;

type HistogramFamily = Family<VerbLabels, Histogram, fn() -> Histogram>;

#[derive(Clone)]
pub struct Metrics {
    registry: Arc<parking_lot::Mutex<Registry>>,
    /// The REST API's metrics, under Kubernetes' names (no prefix).
    rest_registry: Arc<parking_lot::Mutex<Registry>>,
    pub rest_requests: Family<RestLabels, Counter>,
    pub rest_latency: RestHistograms,
    pub requests: Family<RequestLabels, Counter>,
    pub latency: HistogramFamily,
    pub watches: Gauge,
    pub cached_objects: Gauge,
    pub revision: Gauge,
    pub is_leader: Gauge,
    pub raft_term: Gauge,
}

/// Kubernetes' buckets for `apiserver_request_duration_seconds`.
fn rest_histogram() -> Histogram {
    Histogram::new([
        0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0,
        10.0, 15.0, 20.0, 30.0, 45.0, 60.0,
    ])
}

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

impl Default for Metrics {
    fn default() -> Self {
        let mut r = Registry::with_prefix("rkube_apiserver");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency: HistogramFamily = Family::new_with_constructor(latency_histogram);
        let m = Metrics {
            requests,
            latency,
            watches: Gauge::default(),
            cached_objects: Gauge::default(),
            revision: Gauge::default(),
            is_leader: Gauge::default(),
            raft_term: Gauge::default(),
            registry: Default::default(),
            rest_registry: Default::default(),
            rest_requests: Default::default(),
            rest_latency: Family::new_with_constructor(rest_histogram),
        };
        let mut k = Registry::default();
        k.register(
            "apiserver_request",
            "Counter of apiserver requests broken out for each verb, dry run value, group, version, resource, scope, component, and HTTP response code.",
            m.rest_requests.clone(),
        );
        k.register(
            "apiserver_request_duration_seconds",
            "Response latency distribution in seconds for each verb, dry run value, group, version, resource, subresource, scope and component.",
            m.rest_latency.clone(),
        );
        *m.rest_registry.lock() = k;
        r.register(
            "requests",
            "Requests by verb and gRPC code",
            m.requests.clone(),
        );
        r.register(
            "request_duration_seconds",
            "Request latency by verb",
            m.latency.clone(),
        );
        r.register("watches", "Open watch streams", m.watches.clone());
        r.register(
            "cached_objects",
            "Objects in the watch cache",
            m.cached_objects.clone(),
        );
        r.register(
            "store_revision",
            "The store revision the watch cache has reached",
            m.revision.clone(),
        );
        r.register("is_leader", "1 on the Raft leader", m.is_leader.clone());
        r.register("raft_term", "The current Raft term", m.raft_term.clone());
        *m.registry.lock() = r;
        m
    }
}

impl Metrics {
    pub fn observe(&self, verb: &str, code: tonic::Code, secs: f64) {
        self.requests
            .get_or_create(&RequestLabels {
                verb: verb.to_string(),
                code: format!("{code:?}"),
            })
            .inc();
        self.latency
            .get_or_create(&VerbLabels {
                verb: verb.to_string(),
            })
            .observe(secs);
    }

    /// Counts a REST request: `verb` is Kubernetes' metric verb (GET, LIST, WATCH, POST,
    /// PUT, PATCH, APPLY, DELETE, DELETECOLLECTION, CONNECT).
    pub fn observe_rest(&self, l: RestDurationLabels, code: u16, secs: f64) {
        self.rest_requests
            .get_or_create(&RestLabels {
                verb: l.verb.clone(),
                dry_run: l.dry_run.clone(),
                group: l.group.clone(),
                version: l.version.clone(),
                resource: l.resource.clone(),
                subresource: l.subresource.clone(),
                scope: l.scope.clone(),
                component: l.component.clone(),
                code: code.to_string(),
            })
            .inc();
        self.rest_latency.get_or_create(&l).observe(secs);
    }

    /// Adds metrics of components running in this process (the controller-manager's),
    /// exported under their own names beside the REST API's.
    pub fn register_component(&self, register: impl FnOnce(&mut Registry)) {
        register(&mut self.rest_registry.lock());
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode_registry(&mut out, &self.registry.lock());
        let _ = prometheus_client::encoding::text::encode_registry(
            &mut out,
            &self.rest_registry.lock(),
        );
        let _ = prometheus_client::encoding::text::encode_eof(&mut out);
        out
    }
}
