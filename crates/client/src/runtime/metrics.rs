//! Per-controller metrics under the names kube-controller-manager exports for its work
//! queues (`workqueue_*`) and controller-runtime's for reconciles
//! (`controller_runtime_reconcile_*`), all labelled by controller.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ControllerLabel {
    pub controller: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub controller: String,
    /// `success`, `requeue`, `requeue_after` or `error`.
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueueLabel {
    pub name: String,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

fn reconcile_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 18))
}

/// Metrics every controller of a process shares, one series per controller.
#[derive(Clone)]
pub struct Metrics {
    pub reconciles: Family<ResultLabels, Counter>,
    pub errors: Family<ControllerLabel, Counter>,
    pub reconcile_seconds: Histograms<ControllerLabel>,
    pub depth: Family<QueueLabel, Gauge>,
    pub adds: Family<QueueLabel, Counter>,
    pub retries: Family<QueueLabel, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            reconciles: Family::default(),
            errors: Family::default(),
            reconcile_seconds: Family::new_with_constructor(reconcile_buckets),
            depth: Family::default(),
            adds: Family::default(),
            retries: Family::default(),
        }
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    /// Registers every family in `r`.
    pub fn register(&self, r: &mut Registry) {
        r.register(
            "controller_runtime_reconcile",
            "Total number of reconciliations per controller and result",
            self.reconciles.clone(),
        );
        r.register(
            "controller_runtime_reconcile_errors",
            "Total number of reconciliation errors per controller",
            self.errors.clone(),
        );
        r.register(
            "controller_runtime_reconcile_time_seconds",
            "Length of time per reconciliation per controller",
            self.reconcile_seconds.clone(),
        );
        r.register(
            "workqueue_depth",
            "Current depth of workqueue",
            self.depth.clone(),
        );
        r.register(
            "workqueue_adds",
            "Total number of adds handled by workqueue",
            self.adds.clone(),
        );
        r.register(
            "workqueue_retries",
            "Total number of retries handled by workqueue",
            self.retries.clone(),
        );
    }

    /// The series of one controller. Each is looked up in a statement of its own: a
    /// family's lookup guard held across a second lookup that inserts would deadlock.
    pub(crate) fn of(&self, controller: &str) -> ControllerMetrics {
        let c = ControllerLabel {
            controller: controller.to_string(),
        };
        let q = QueueLabel {
            name: controller.to_string(),
        };
        let result = |r: &str| -> Counter {
            let labels = ResultLabels {
                controller: controller.to_string(),
                result: r.to_string(),
            };
            self.reconciles.get_or_create(&labels).clone()
        };
        let success = result("success");
        let requeue = result("requeue");
        let requeue_after = result("requeue_after");
        let error = result("error");
        let errors = self.errors.get_or_create(&c).clone();
        let seconds = self.reconcile_seconds.get_or_create(&c).clone();
        let depth = self.depth.get_or_create(&q).clone();
        let adds = self.adds.get_or_create(&q).clone();
        let retries = self.retries.get_or_create(&q).clone();
        ControllerMetrics {
            success,
            requeue,
            requeue_after,
            error,
            errors,
            seconds,
            depth,
            adds,
            retries,
        }
    }
}

/// One controller's series, resolved once.
#[derive(Clone)]
pub(crate) struct ControllerMetrics {
    pub success: Counter,
    pub requeue: Counter,
    pub requeue_after: Counter,
    pub error: Counter,
    pub errors: Counter,
    pub seconds: Histogram,
    pub depth: Gauge,
    pub adds: Counter,
    pub retries: Counter,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_controllers_get_their_own_series() {
        let m = Metrics::default();
        let (a, b) = (m.of("a"), m.of("b"));
        a.success.inc();
        a.success.inc();
        b.error.inc();
        assert_eq!((m.of("a").success.get(), m.of("b").error.get()), (2, 1));
        let mut r = Registry::default();
        m.register(&mut r);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &r).unwrap();
        assert!(
            text.contains(
                r#"controller_runtime_reconcile_total{controller="a",result="success"} 2"#
            ),
            "{text}"
        );
    }
}
