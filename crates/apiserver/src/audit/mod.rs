//! Auditing, as kube-apiserver's audit log: every resource request is matched against the
//! audit policy ([`policy`]), and at the level it decides one `audit.k8s.io/v1` `Event`
//! per stage ([`event`]) goes to a backend — the JSON-lines log file with size-based
//! rotation ([`log`]). Recording never blocks a request: when the backend falls behind,
//! events are dropped and counted.
//!
//! It must not depend on the request handler: it sees requests only through
//! [`RequestInfo`] and [`request::AuditTarget`].

pub mod event;
pub mod log;
pub mod policy;
mod recorder;
pub mod request;

use std::path::PathBuf;
use std::sync::Arc;

pub use event::{Event, ObjectRef, ResponseStatus, UserRecord};
pub use policy::{Attributes, Policy};
pub use recorder::{Completion, Hold, Recorder};
use serde::Serialize;

use crate::auth::UserInfo;
use crate::error::FieldError;

/// How much a request's events record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum Level {
    /// Not recorded.
    None,
    /// Who, what, when and the outcome; never an object body.
    Metadata,
    /// Metadata and the request body of writes.
    Request,
    /// Request and the response body.
    RequestResponse,
}

impl Level {
    fn parse(s: &str) -> Option<Level> {
        Some(match s {
            "None" => Level::None,
            "Metadata" => Level::Metadata,
            "Request" => Level::Request,
            "RequestResponse" => Level::RequestResponse,
            _ => return None,
        })
    }
}

/// The stages of a request at which an event may be recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Stage {
    /// As soon as the request is authenticated and its level is known.
    RequestReceived,
    /// For long-running requests (watches): when the response starts to stream.
    ResponseStarted,
    /// When the response is complete.
    ResponseComplete,
    /// Accepted in policies; rkube records no panic events.
    Panic,
}

impl Stage {
    fn parse(s: &str) -> Option<Stage> {
        Some(match s {
            "RequestReceived" => Stage::RequestReceived,
            "ResponseStarted" => Stage::ResponseStarted,
            "ResponseComplete" => Stage::ResponseComplete,
            "Panic" => Stage::Panic,
            _ => return None,
        })
    }
}

/// Errors of setting up auditing; none is retryable until the configuration is fixed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The policy could not be decoded; `field` is the path of the offending field.
    #[error("{field}: {reason}")]
    Decode { field: String, reason: String },
    /// The policy decoded but breaks the rules of `audit.k8s.io/v1`.
    #[error("{}", join(.0))]
    Invalid(Vec<FieldError>),
    #[error("{path}: {source}")]
    InFile {
        path: PathBuf,
        #[source]
        source: Box<Error>,
    },
    /// The audit log could not be opened.
    #[error("{path}: {source}")]
    Log {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// The flag whose value is at fault.
    pub fn flag(&self) -> &'static str {
        match self {
            Error::Log { .. } => "--audit-log-path",
            _ => "--audit-policy-file",
        }
    }
}

fn join(errs: &[FieldError]) -> String {
    errs.iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The `--audit-*` flags.
#[derive(Clone, Debug, PartialEq)]
pub struct AuditConfig {
    /// `--audit-log-path`: the log file; `-` is standard output. None: no audit log.
    pub log_path: Option<PathBuf>,
    /// `--audit-policy-file`. None: nothing is audited.
    pub policy_file: Option<PathBuf>,
    /// `--audit-log-maxsize`: megabytes a log file reaches before it is rotated; 0 never.
    pub log_max_size_mb: u64,
    /// `--audit-log-maxbackup`: rotated files kept; 0 keeps them all.
    pub log_max_backups: usize,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            log_path: None,
            policy_file: None,
            log_max_size_mb: 100,
            log_max_backups: 10,
        }
    }
}

/// Where events go (Kubernetes' audit backend).
pub trait Backend: Send + Sync {
    /// Takes one event. Must not block.
    fn process(&self, event: &Event);
}

/// What the request pipeline knows of a request when it is authenticated.
#[derive(Clone, Debug, Default)]
pub struct RequestInfo {
    pub audit_id: String,
    /// The request as Kubernetes' REST path (with its query), for `requestURI`.
    pub request_uri: String,
    /// Kubernetes' verb: `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`.
    pub verb: String,
    /// Who sent the request; None when authentication failed.
    pub user: Option<UserInfo>,
    /// Whom the request acts as, when it impersonates.
    pub impersonated: Option<UserInfo>,
    pub source_ips: Vec<String>,
    pub user_agent: String,
    /// None for non-resource requests.
    pub object_ref: Option<ObjectRef>,
    pub received: event::MicroTime,
}

/// The audit policy and the backend its events go to. One per apiserver.
pub struct Auditor {
    policy: Policy,
    backend: Box<dyn Backend>,
}

impl Auditor {
    pub fn new(policy: Policy, backend: Box<dyn Backend>) -> Self {
        Auditor { policy, backend }
    }

    /// The auditor the flags ask for: None unless both a policy file and a log path are
    /// given. Reads and checks the policy and opens the log now, so mistakes stop startup.
    pub fn from_config(cfg: &AuditConfig) -> Result<Option<Arc<Auditor>>> {
        let (Some(path), Some(policy_file)) = (&cfg.log_path, &cfg.policy_file) else {
            if cfg.log_path.is_some() {
                tracing::warn!("--audit-log-path without --audit-policy-file: nothing is audited");
            }
            return Ok(None);
        };
        let policy = Policy::load(policy_file).map_err(|e| match e {
            Error::InFile { .. } | Error::Read { .. } => e,
            other => Error::InFile {
                path: policy_file.clone(),
                source: Box::new(other),
            },
        })?;
        let target = if path.as_os_str() == "-" {
            log::Target::Stdout
        } else {
            log::Target::File(path.clone())
        };
        let opts = log::Options {
            max_bytes: cfg.log_max_size_mb.saturating_mul(1024 * 1024),
            max_backups: cfg.log_max_backups,
            buffer: log::DEFAULT_BUFFER,
        };
        let sink = log::LogBackend::start(target, opts).map_err(|source| Error::Log {
            path: path.clone(),
            source,
        })?;
        tracing::info!(log = %path.display(), policy = %policy_file.display(), "audit log on");
        Ok(Some(Arc::new(Auditor::new(policy, Box::new(sink)))))
    }

    /// Decides the level of the request `info` describes: None when it is not audited.
    pub fn begin(self: &Arc<Self>, info: RequestInfo) -> Option<Recorder> {
        let (resource, api_group, subresource, namespace, name) = match &info.object_ref {
            Some(o) => (
                o.resource.as_str(),
                o.api_group.as_str(),
                o.subresource.as_str(),
                o.namespace.as_str(),
                o.name.as_str(),
            ),
            None => ("", "", "", "", ""),
        };
        let path = info.request_uri.split('?').next().unwrap_or_default();
        let decision = self.policy.decide(&Attributes {
            user: info.user.as_ref(),
            verb: &info.verb,
            api_group,
            resource,
            subresource,
            namespace,
            name,
            path: info.object_ref.is_none().then_some(path),
        });
        if decision.level == Level::None {
            return None;
        }
        Some(Recorder::new(self.clone(), decision, info))
    }

    fn process(&self, event: &Event) {
        self.backend.process(event);
    }
}

#[cfg(test)]
mod tests;
