//! The certificate controllers of the controller-manager: `csrapproving` approves the
//! CertificateSigningRequests nodes make for themselves, `csrsigning` signs approved
//! requests with the cluster CA.

pub(crate) mod approving;
pub mod signing;

use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestCondition,
};

/// A node's client certificate for the API (`system:node:<name>` in `system:nodes`).
pub(crate) const KUBELET_CLIENT_SIGNER: &str = "kubernetes.io/kube-apiserver-client-kubelet";
/// A node agent's serving certificate (its node's addresses).
pub(crate) const KUBELET_SERVING_SIGNER: &str = "kubernetes.io/kubelet-serving";
/// Any client certificate for the API; never approved automatically.
pub(crate) const API_CLIENT_SIGNER: &str = "kubernetes.io/kube-apiserver-client";
pub(crate) const NODES_GROUP: &str = "system:nodes";
pub(crate) const NODE_USER_PREFIX: &str = "system:node:";
pub(crate) const BOOTSTRAPPERS_GROUP: &str = "system:bootstrappers";

pub(crate) fn condition(csr: &CertificateSigningRequest, type_: &str) -> bool {
    csr.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == type_ && c.status == "True"))
}

pub(crate) fn has_certificate(csr: &CertificateSigningRequest) -> bool {
    csr.status
        .as_ref()
        .and_then(|s| s.certificate.as_ref())
        .is_some_and(|c| !c.0.is_empty())
}

/// Appends a True condition.
pub(crate) fn with_condition(
    csr: &CertificateSigningRequest,
    type_: &str,
    reason: &str,
    message: &str,
) -> CertificateSigningRequest {
    let mut csr = csr.clone();
    let st = csr.status.get_or_insert_with(Default::default);
    st.conditions
        .get_or_insert_with(Vec::new)
        .push(CertificateSigningRequestCondition {
            type_: type_.into(),
            status: "True".into(),
            reason: Some(reason.into()),
            message: Some(message.into()),
            last_update_time: Some(crate::certificates::now()),
            ..Default::default()
        });
    csr
}

fn now() -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Time {
    k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(client::events::now())
}

/// The PEM text of a request.
pub(crate) fn request_pem(csr: &CertificateSigningRequest) -> String {
    String::from_utf8_lossy(&csr.spec.request.0).into_owned()
}
