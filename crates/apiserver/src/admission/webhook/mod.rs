//! Dynamic admission control: the MutatingAdmissionWebhook and ValidatingAdmissionWebhook
//! plugins, which send an AdmissionReview to every webhook of the stored
//! Mutating/ValidatingWebhookConfigurations whose rules and selectors match the request.
//!
//! Mutating webhooks run one after another, each seeing the patches of those before it;
//! validating webhooks run in parallel. A denial refuses the request with the webhook's
//! message; a webhook that cannot be called, or answers badly, refuses it too unless its
//! failurePolicy is `Ignore`.

mod call;
mod config;
mod resolve;
mod review;

use std::sync::Arc;

use async_trait::async_trait;
use futures::future::join_all;
use serde_json::Value;

use self::call::{CallError, Caller};
use self::config::{FailurePolicy, Hook, Labels, Stage};
use super::namespace_lifecycle::namespace_key;
use super::{AdmissionRequest, MutatingAdmission, Operation, ValidatingAdmission};
use crate::cache::WatchCache;
use crate::error::{Error, Result};

const MUTATING_NAME: &str = "MutatingAdmissionWebhook";
const VALIDATING_NAME: &str = "ValidatingAdmissionWebhook";

/// Calls the webhooks of MutatingWebhookConfigurations and applies their patches.
pub struct MutatingWebhooks {
    pub cache: Arc<WatchCache>,
    caller: Caller,
}

/// Calls the webhooks of ValidatingWebhookConfigurations.
pub struct ValidatingWebhooks {
    pub cache: Arc<WatchCache>,
    caller: Caller,
}

impl MutatingWebhooks {
    pub fn new(cache: Arc<WatchCache>) -> Self {
        MutatingWebhooks {
            cache,
            caller: Caller::default(),
        }
    }
}

impl ValidatingWebhooks {
    pub fn new(cache: Arc<WatchCache>) -> Self {
        ValidatingWebhooks {
            cache,
            caller: Caller::default(),
        }
    }
}

/// How one webhook call ended, short of an answer that admits.
enum Outcome {
    /// No usable answer: the failure policy decides.
    Failed(CallError),
    /// The webhook denied the request: refused whatever the failure policy.
    Refused(Error),
}

impl From<CallError> for Outcome {
    fn from(e: CallError) -> Self {
        Outcome::Failed(e)
    }
}

/// Whether `req`, with the object as it is now, is sent to `hook`.
fn sent(
    cache: &WatchCache,
    hook: &Hook,
    req: &AdmissionRequest<'_>,
    obj: Option<&Value>,
) -> Result<bool> {
    let namespace_labels = |ns: &str| -> Labels {
        cache
            .get(&namespace_key(ns))
            .map(|n| n.labels.clone())
            .unwrap_or_default()
    };
    hook.matches(req, obj, &namespace_labels)
        .map_err(|e| Error::Internal(format!("webhook {:?} cannot be matched: {e}", hook.name)))
}

/// One AdmissionReview exchange with `hook`: the patch it returned, if any.
async fn call(
    caller: &Caller,
    cache: &WatchCache,
    hook: &Hook,
    req: &AdmissionRequest<'_>,
    obj: Option<&Value>,
    stage: Stage,
) -> Result<Option<Vec<u8>>, Outcome> {
    if !hook.review_versions.iter().any(|v| v == "v1") {
        return Err(CallError::Review(format!(
            "webhook does not accept the v1 AdmissionReview (admissionReviewVersions: {:?})",
            hook.review_versions
        ))
        .into());
    }
    let uid = crate::object::new_uid();
    let review = review::request(req, obj, &uid);
    let body = serde_json::to_vec(&review).map_err(|e| CallError::Review(e.to_string()))?;
    let answer = caller.post(cache, hook, body).await?;
    let verdict =
        review::verdict(&answer, &uid, stage == Stage::Mutating).map_err(CallError::Response)?;
    for w in verdict.warnings {
        super::warn(w);
    }
    if !verdict.allowed {
        return Err(Outcome::Refused(review::denial(
            &hook.name,
            &verdict.status,
        )));
    }
    Ok(verdict.patch)
}

/// Settles a failed call by the webhook's failure policy: `Ok` admits.
fn settle(hook: &Hook, outcome: Outcome) -> Result<()> {
    match outcome {
        Outcome::Refused(e) => Err(e),
        Outcome::Failed(e) if hook.failure_policy == FailurePolicy::Ignore => {
            tracing::warn!(webhook = %hook.name, "failed calling webhook, failing open: {e}");
            Ok(())
        }
        Outcome::Failed(e) => {
            tracing::warn!(webhook = %hook.name, "failed calling webhook, failing closed: {e}");
            Err(Error::Internal(format!(
                "failed calling webhook {:?}: {e}",
                hook.name
            )))
        }
    }
}

#[async_trait]
impl MutatingAdmission for MutatingWebhooks {
    fn name(&self) -> &'static str {
        MUTATING_NAME
    }

    async fn admit(&self, req: &AdmissionRequest<'_>, obj: &mut Value) -> Result<()> {
        if config::never_sent(req.rt) {
            return Ok(());
        }
        for hook in config::load(&self.cache, Stage::Mutating) {
            // Each webhook is matched against the object as the ones before it left it.
            let object = (req.op != Operation::Delete).then_some(&*obj);
            if !sent(&self.cache, &hook, req, object)? {
                continue;
            }
            let patch = match call(
                &self.caller,
                &self.cache,
                &hook,
                req,
                object,
                Stage::Mutating,
            )
            .await
            {
                Ok(patch) => patch,
                Err(outcome) => {
                    settle(&hook, outcome)?;
                    continue;
                }
            };
            if let Some(patch) = patch {
                if req.op == Operation::Delete {
                    return Err(Error::Internal(format!(
                        "admission webhook {:?} attempted to modify the object, which is not \
                         supported for this operation",
                        hook.name
                    )));
                }
                review::apply_patch(&hook.name, obj, &patch)?;
            }
        }
        Ok(())
    }
}

#[async_trait]
impl ValidatingAdmission for ValidatingWebhooks {
    fn name(&self) -> &'static str {
        VALIDATING_NAME
    }

    async fn validate(&self, req: &AdmissionRequest<'_>, obj: &Value) -> Result<()> {
        if config::never_sent(req.rt) {
            return Ok(());
        }
        // A delete is admitted on the stored object, which Kubernetes sends as oldObject.
        let object = (req.op != Operation::Delete).then_some(obj);
        let mut hooks = Vec::new();
        for hook in config::load(&self.cache, Stage::Validating) {
            if sent(&self.cache, &hook, req, object)? {
                hooks.push(hook);
            }
        }
        if hooks.is_empty() {
            return Ok(());
        }
        let calls = hooks
            .iter()
            .map(|h| call(&self.caller, &self.cache, h, req, object, Stage::Validating));
        let results = join_all(calls).await;
        let mut first = None;
        for (hook, result) in hooks.iter().zip(results) {
            if let Err(outcome) = result {
                if let Err(e) = settle(hook, outcome) {
                    first.get_or_insert(e);
                }
            }
        }
        first.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
