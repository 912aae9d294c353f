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

type HistogramFamily = Family<VerbLabels, Histogram, fn() -> Histogram>;

#[derive(Clone)]
pub struct Metrics {
    registry: Arc<parking_lot::Mutex<Registry>>,
    pub requests: Family<RequestLabels, Counter>,
    pub latency: HistogramFamily,
    pub watches: Gauge,
    pub cached_objects: Gauge,
    pub revision: Gauge,
    pub is_leader: Gauge,
    pub raft_term: Gauge,
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
        };
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

    pub fn encode(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry.lock());
        out
    }
}
