//! Admission: the mutating and validating stages of the request pipeline, each a trait
//! with a chain of plugins, one plugin per file.

mod default_storage_class;
mod defaults;
mod limit_ranger;
mod namespace_lifecycle;
mod pod_security;
mod priority;
mod resource_quota;
mod service_account;
mod webhook;

use std::cell::RefCell;

use async_trait::async_trait;
use serde_json::Value;

pub use default_storage_class::DefaultStorageClass;
pub use defaults::Defaults;
pub use limit_ranger::LimitRanger;
pub use namespace_lifecycle::NamespaceLifecycle;
pub use pod_security::{Level, PodSecurity};
pub use priority::Priority;
pub use resource_quota::ResourceQuota;
pub use service_account::ServiceAccount;
pub use webhook::{MutatingWebhooks, ValidatingWebhooks};

use crate::auth::UserInfo;
use crate::error::Result;
use crate::registry::ResourceType;

tokio::task_local! {
    /// Warnings for the client, collected while one request is served.
    static WARNINGS: RefCell<Vec<String>>;
}

/// Adds a warning to the answer of the request being served (Kubernetes' `Warning`
/// header). Outside [`collect_warnings`] it is dropped.
pub fn warn(message: impl Into<String>) {
    let message = message.into();
    let _ = WARNINGS.try_with(|w| w.borrow_mut().push(message));
}

/// Runs `f`, returning its output with the warnings admission raised while it ran.
pub async fn collect_warnings<T>(f: impl std::future::Future<Output = T>) -> (T, Vec<String>) {
    WARNINGS
        .scope(RefCell::new(Vec::new()), async move {
            let out = f.await;
            let warnings = WARNINGS.with(|w| std::mem::take(&mut *w.borrow_mut()));
            (out, warnings)
        })
        .await
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    Create,
    Update,
    Delete,
}

/// What admission plugins see of a request.
pub struct AdmissionRequest<'a> {
    pub op: Operation,
    pub rt: &'a ResourceType,
    pub user: &'a UserInfo,
    pub namespace: &'a str,
    pub name: &'a str,
    /// The stored object, for updates and deletes.
    pub old: Option<&'a Value>,
    /// `status` for the status subresource, `binding` for binds, empty otherwise.
    pub subresource: &'a str,
}

/// A plugin that may change the object before it is validated.
#[async_trait]
pub trait MutatingAdmission: Send + Sync {
    fn name(&self) -> &'static str;
    async fn admit(&self, req: &AdmissionRequest<'_>, obj: &mut Value) -> Result<()>;
}

/// A plugin that may reject the (validated) object.
#[async_trait]
pub trait ValidatingAdmission: Send + Sync {
    fn name(&self) -> &'static str;
    async fn validate(&self, req: &AdmissionRequest<'_>, obj: &Value) -> Result<()>;
}

/// The admission chains, run in order.
#[derive(Default)]
pub struct Admission {
    pub mutating: Vec<Box<dyn MutatingAdmission>>,
    pub validating: Vec<Box<dyn ValidatingAdmission>>,
}

impl Admission {
    pub async fn mutate(&self, req: &AdmissionRequest<'_>, obj: &mut Value) -> Result<()> {
        for p in &self.mutating {
            p.admit(req, obj).await?;
        }
        Ok(())
    }

    pub async fn validate(&self, req: &AdmissionRequest<'_>, obj: &Value) -> Result<()> {
        for p in &self.validating {
            p.validate(req, obj).await?;
        }
        Ok(())
    }
}
