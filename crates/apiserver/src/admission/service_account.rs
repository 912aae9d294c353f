//! ServiceAccount: pods without a service account run as `default`.

use async_trait::async_trait;
use serde_json::Value;

use super::{AdmissionRequest, MutatingAdmission, Operation};
use crate::error::Result;

pub struct ServiceAccount;

#[async_trait]
impl MutatingAdmission for ServiceAccount {
    fn name(&self) -> &'static str {
        "ServiceAccount"
    }

    async fn admit(&self, req: &AdmissionRequest<'_>, obj: &mut Value) -> Result<()> {
        if req.op != Operation::Create || req.rt.kind != "Pod" || !req.rt.group.is_empty() {
            return Ok(());
        }
        let Some(spec) = obj.get_mut("spec").and_then(|s| s.as_object_mut()) else {
            return Ok(());
        };
        let sa = spec
            .get("serviceAccountName")
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty())
            .unwrap_or("default")
            .to_string();
        spec.insert("serviceAccountName".into(), sa.clone().into());
        spec.insert("serviceAccount".into(), sa.into());
        Ok(())
    }
}
