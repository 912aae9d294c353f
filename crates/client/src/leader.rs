//! Leader election on a `coordination.k8s.io/v1` Lease, as client-go's leaderelection:
//! the holder renews the Lease; others take it over only after observing no renewal for a
//! whole lease duration; a holder that cannot renew within its renew deadline steps down
//! first, so two candidates never both believe they lead.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::api::Api;
use crate::client::Client;
use crate::error::Result;

#[derive(Clone, Debug)]
pub struct LeaderElectionConfig {
    pub namespace: String,
    pub lease_name: String,
    /// This candidate's name, written as the Lease's holder.
    pub identity: String,
    pub lease_duration: Duration,
    /// A leader that has not renewed for this long steps down; shorter than the lease.
    pub renew_deadline: Duration,
    pub retry_period: Duration,
}

impl LeaderElectionConfig {
    pub fn new(namespace: &str, lease_name: &str, identity: &str) -> Self {
        LeaderElectionConfig {
            namespace: namespace.into(),
            lease_name: lease_name.into(),
            identity: identity.into(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

fn now() -> MicroTime {
    let us = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64);
    MicroTime(Timestamp::from_microsecond(us).unwrap_or(Timestamp::UNIX_EPOCH))
}

/// The state of one candidate.
struct Candidate {
    api: Api<Lease>,
    cfg: LeaderElectionConfig,
    /// The Lease as last seen (holder and renew time), and when it was seen to change.
    observed: Option<(Option<String>, Option<MicroTime>)>,
    observed_at: Instant,
}

impl Candidate {
    /// One attempt: `Ok(true)` when this candidate holds the Lease afterwards.
    async fn try_acquire_or_renew(&mut self) -> Result<bool> {
        let me = self.cfg.identity.clone();
        let secs = self.cfg.lease_duration.as_secs().max(1) as i32;
        let Some(mut lease) = self.api.get_opt(&self.cfg.lease_name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.cfg.lease_name.clone()),
                    namespace: Some(self.cfg.namespace.clone()),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(me),
                    lease_duration_seconds: Some(secs),
                    acquire_time: Some(now()),
                    renew_time: Some(now()),
                    lease_transitions: Some(0),
                    ..Default::default()
                }),
            };
            return match self.api.create(&lease).await {
                Ok(_) => Ok(true),
                Err(e) if e.is_already_exists() => Ok(false),
                Err(e) => Err(e),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let record = (spec.holder_identity.clone(), spec.renew_time.clone());
        if self.observed.as_ref() != Some(&record) {
            self.observed = Some(record);
            self.observed_at = Instant::now();
        }
        let holder = spec.holder_identity.clone().unwrap_or_default();
        let duration =
            Duration::from_secs(spec.lease_duration_seconds.unwrap_or(secs).max(1) as u64);
        if !holder.is_empty() && holder != me && self.observed_at.elapsed() < duration {
            return Ok(false);
        }
        let mut new = spec.clone();
        if holder != me {
            new.acquire_time = Some(now());
            new.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        }
        new.holder_identity = Some(me);
        new.renew_time = Some(now());
        new.lease_duration_seconds = Some(secs);
        lease.spec = Some(new);
        match self.api.replace(&lease).await {
            Ok(_) => Ok(true),
            Err(e) if e.is_conflict() => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// A running election: `is_leader` says whether this candidate leads now.
pub struct LeaderElection {
    pub is_leader: watch::Receiver<bool>,
    task: JoinHandle<()>,
}

impl Drop for LeaderElection {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl LeaderElection {
    /// Starts campaigning; stops when dropped.
    pub fn start(client: Client, cfg: LeaderElectionConfig) -> Self {
        let (tx, rx) = watch::channel(false);
        let mut c = Candidate {
            api: Api::namespaced(client, &cfg.namespace),
            cfg,
            observed: None,
            observed_at: Instant::now(),
        };
        let task = tokio::spawn(async move {
            let mut last_renew: Option<Instant> = None;
            loop {
                let attempt =
                    tokio::time::timeout(c.cfg.renew_deadline, c.try_acquire_or_renew()).await;
                match attempt {
                    Ok(Ok(true)) => {
                        last_renew = Some(Instant::now());
                        tx.send_if_modified(|l| !std::mem::replace(l, true));
                    }
                    Ok(Ok(false)) => {
                        last_renew = None;
                        tx.send_if_modified(|l| std::mem::replace(l, false));
                    }
                    Ok(Err(e)) => tracing::debug!(error = %e, "leader election: attempt failed"),
                    Err(_) => tracing::debug!("leader election: attempt timed out"),
                }
                if last_renew.is_some_and(|t| t.elapsed() >= c.cfg.renew_deadline) {
                    last_renew = None;
                    tx.send_if_modified(|l| std::mem::replace(l, false));
                }
                tokio::time::sleep(c.cfg.retry_period).await;
            }
        });
        LeaderElection {
            is_leader: rx,
            task,
        }
    }

    pub fn is_leader(&self) -> bool {
        *self.is_leader.borrow()
    }
}
