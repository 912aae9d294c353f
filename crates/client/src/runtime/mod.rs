//! The controller runtime every rkube controller runs on, in kube-runtime's shape:
//!
//! - [`Controller`]: shared informers as sources (`new` for the primary kind, `owns` for
//!   what it controls, `watches` with a mapper for anything else), one work queue, and
//!   `reconcile(key) → Result<Action, E>` run by up to `concurrency` workers;
//! - an error policy decides what a failure leads to ([`backoff`]: per-key exponential
//!   back-off);
//! - [`WorkQueue`]: client-go's rate-limited delaying queue, with no task of its own;
//! - [`Expectations`]: creates and deletes not yet seen in an informer;
//! - [`run_while_leading`]: leader gating on a Lease;
//! - [`Metrics`]: reconcile counts, errors, durations and queue depth per controller.
//!
//! Nothing it starts outlives the future that runs it: dropping [`Controller::run`] stops
//! every source and worker, and a cancelled token stops it gracefully.

mod controller;
pub mod expectations;
pub mod leading;
pub mod metrics;
mod queue;

use std::time::Duration;

pub use controller::{backoff, controller_key, key_of, Controller, BASE_BACKOFF, MAX_BACKOFF};
pub use expectations::Expectations;
pub use leading::run_while_leading;
pub use metrics::Metrics;
pub use queue::{Key, WorkQueue};
pub use tokio_util::sync::CancellationToken;

/// What to do with a key after its reconcile (or, from an error policy, after it failed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Reconcile again after this long, even without a change.
    Requeue(Duration),
    /// Reconcile again only when something it watches changes.
    AwaitChange,
    /// Reconcile again after the key's next exponential back-off delay.
    Backoff,
}

impl Action {
    pub fn requeue(d: Duration) -> Self {
        Action::Requeue(d)
    }

    pub fn await_change() -> Self {
        Action::AwaitChange
    }

    /// `Some(d)`: requeue after `d`; `None`: await a change.
    pub fn requeue_after(d: Option<Duration>) -> Self {
        d.map_or(Action::AwaitChange, Action::Requeue)
    }
}
