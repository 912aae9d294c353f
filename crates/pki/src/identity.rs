//! Who a certificate names, in Kubernetes' terms: CN is the user, O the groups.

use rustls::pki_types::CertificateDer;

/// The group of cluster administrators (Kubernetes' `system:masters`).
pub const MASTERS_GROUP: &str = "system:masters";
/// The group of control-plane members: only they may speak on the peer port.
pub const MEMBERS_GROUP: &str = "system:rkube-members";
/// The user of the admin client certificate that `rkube server` and `rkube up` write.
pub const ADMIN_USER: &str = "rkube-admin";
/// A DNS name every member's certificate carries. Members check it when they dial each
/// other, whatever address (or proxy) they dial.
pub const MEMBER_SERVER_NAME: &str = "member.rkube.internal";

/// A verified caller: user name and groups.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub user: String,
    pub groups: Vec<String>,
}

impl Identity {
    /// The identity in the first (the peer's own) certificate of a verified chain.
    pub fn of(certs: &[CertificateDer<'_>]) -> Option<Identity> {
        subject_of(certs).map(|(user, groups)| Identity { user, groups })
    }

    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }
}

/// The common name and organizations of the first certificate. The caller must have had
/// the TLS layer verify the chain.
pub fn subject_of(certs: &[CertificateDer<'_>]) -> Option<(String, Vec<String>)> {
    let der = certs.first()?;
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
    let subject = cert.subject();
    let cn = subject
        .iter_common_name()
        .next()?
        .as_str()
        .ok()?
        .to_string();
    let orgs = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok().map(String::from))
        .collect();
    Some((cn, orgs))
}
