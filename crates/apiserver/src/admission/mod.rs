//! Admission: the mutating and validating stages of the request pipeline, each a trait
//! with a chain of plugins, one plugin per file.

mod defaults;
mod namespace_lifecycle;
mod priority;
mod service_account;

use async_trait::async_trait;
use serde_json::Value;

pub use defaults::Defaults;
pub use namespace_lifecycle::NamespaceLifecycle;
pub use priority::Priority;
pub use service_account::ServiceAccount;

use crate::auth::UserInfo;
use crate::error::Result;
use crate::registry::ResourceType;

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
