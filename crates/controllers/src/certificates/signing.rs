//! csrsigning: signs approved requests of the signers it knows with the cluster CA. The
//! usages and the lifetime come from the signer; a request that cannot be signed gets a
//! Failed condition saying why.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use client::reflector::ObjectKey;
use client::Api;
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use k8s_openapi::ByteString;
use pki::{ClusterCa, Usage};

use super::*;
use crate::context::Ctx;
use client::runtime::{backoff, Action};

/// The CA the controller signs with, and the longest lifetime it gives.
#[derive(Clone)]
pub struct Signer {
    pub ca: Arc<ClusterCa>,
    /// `--cluster-signing-duration`.
    pub duration: Duration,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer")
            .field("ca", &self.ca.fingerprint())
            .field("duration", &self.duration)
            .finish()
    }
}

/// What to sign a request as, if this signer signs it now.
pub(crate) fn plan(csr: &CertificateSigningRequest, max: Duration) -> Option<(Usage, Duration)> {
    if !condition(csr, "Approved")
        || condition(csr, "Denied")
        || condition(csr, "Failed")
        || has_certificate(csr)
    {
        return None;
    }
    let usage = match csr.spec.signer_name.as_str() {
        KUBELET_CLIENT_SIGNER | API_CLIENT_SIGNER => Usage::Client,
        KUBELET_SERVING_SIGNER => Usage::Server,
        _ => return None,
    };
    let asked = csr
        .spec
        .expiration_seconds
        .map(|s| Duration::from_secs(s.max(600) as u64));
    Some((usage, asked.map_or(max, |a| a.min(max))))
}

pub(crate) async fn run(ctx: Arc<Ctx>, signer: Signer) {
    let signer = Arc::new(signer);
    ctx.controller("csrsigning", &ctx.csrs)
        .concurrency(2)
        .run(
            move |key, ctx| {
                let signer = signer.clone();
                async move { reconcile(&ctx, &signer, key).await }
            },
            backoff,
            ctx.clone(),
        )
        .await
}

async fn reconcile(ctx: &Ctx, signer: &Signer, key: ObjectKey) -> Result<Action, client::Error> {
    let Some(csr) = ctx.csrs.get(&key) else {
        return Ok(Action::AwaitChange);
    };
    let Some((usage, validity)) = plan(&csr, signer.duration) else {
        return Ok(Action::AwaitChange);
    };
    let api = Api::<CertificateSigningRequest>::all(ctx.client.clone());
    let updated = match signer.ca.sign_request(&request_pem(&csr), usage, validity) {
        Ok(signed) => {
            let mut csr = (*csr).clone();
            csr.status.get_or_insert_with(Default::default).certificate =
                Some(ByteString(signed.cert_pem.into_bytes()));
            tracing::info!(csr = %key.name, "certificate signed");
            csr
        }
        Err(e) => {
            tracing::warn!(csr = %key.name, error = %e, "certificate request cannot be signed");
            with_condition(&csr, "Failed", "SignerValidationFailure", &e.to_string())
        }
    };
    api.replace_status(&updated).await?;
    Ok(Action::AwaitChange)
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::certificates::v1::CertificateSigningRequestSpec;

    use super::*;

    #[test]
    fn only_approved_unsigned_requests_of_known_signers_are_signed() {
        let year = Duration::from_secs(365 * 86400);
        let mut c = CertificateSigningRequest {
            spec: CertificateSigningRequestSpec {
                signer_name: KUBELET_SERVING_SIGNER.into(),
                expiration_seconds: Some(3600),
                ..Default::default()
            },
            ..Default::default()
        };
        assert_eq!(plan(&c, year), None, "pending");
        c = with_condition(&c, "Approved", "r", "m");
        assert_eq!(
            plan(&c, year),
            Some((Usage::Server, Duration::from_secs(3600)))
        );
        assert_eq!(
            plan(&c, Duration::from_secs(60)),
            Some((Usage::Server, Duration::from_secs(60))),
            "the signer's limit wins"
        );
        c.spec.signer_name = "example.com/other".into();
        assert_eq!(plan(&c, year), None, "unknown signer");
        c.spec.signer_name = KUBELET_CLIENT_SIGNER.into();
        let failed = with_condition(&c, "Failed", "r", "m");
        assert_eq!(plan(&failed, year), None);
        c.status.get_or_insert_with(Default::default).certificate = Some(ByteString(b"x".to_vec()));
        assert_eq!(plan(&c, year), None, "already signed");
    }
}
