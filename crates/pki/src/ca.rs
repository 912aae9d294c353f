//! The cluster CA: an ECDSA P-256 key derived from the cluster token, so every member that
//! holds the token holds the same CA without exchanging a byte.
//!
//! ECDSA signatures are randomised, so two members' CA certificates differ in their bytes;
//! they share the key and the subject, so each verifies what the other signed. That is why
//! the fingerprint is the SHA-256 of the public key (as kubeadm's `--discovery-token-ca-cert-hash`),
//! never of the certificate.

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use p256::pkcs8::EncodePrivateKey;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PublicKeyData, SanType, SerialNumber,
};
use ring::rand::{SecureRandom, SystemRandom};

use crate::error::{Error, Result};
use crate::token::ClusterToken;

/// What a leaf certificate is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Usage {
    Server,
    Client,
    /// Members: they serve peers and dial them.
    ServerAndClient,
}

/// A certificate to issue: its subject, names and lifetime.
#[derive(Clone, Debug)]
pub struct LeafSpec {
    /// The user name (Kubernetes reads CN as the user).
    pub common_name: String,
    /// The groups (Kubernetes reads O as the groups).
    pub organizations: Vec<String>,
    /// DNS names and IP addresses.
    pub sans: Vec<String>,
    pub usage: Usage,
    pub validity: Duration,
}

/// A signed certificate and its fresh private key.
#[derive(Clone)]
pub struct Issued {
    pub cert_pem: String,
    pub cert_der: Vec<u8>,
    pub key_pem: String,
    pub key_der: Vec<u8>,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
    /// Two thirds into its lifetime counted from issuance (not from the back-dated
    /// `not_before`): when a holder should renew it.
    pub renew_at: SystemTime,
}

/// The cluster CA, able to sign.
pub struct ClusterCa {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
    cert_der: Vec<u8>,
    fingerprint: String,
}

impl ClusterCa {
    /// The CA of the cluster whose token this is. The same token gives the same key.
    pub fn from_token(token: &ClusterToken) -> Result<Self> {
        let key = derive_key(token)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = dn("rkube-ca", &["rkube".to_string()]);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.serial_number = Some(SerialNumber::from_slice(&[1]));
        params.not_before = rcgen::date_time_ymd(2025, 1, 1);
        params.not_after = rcgen::date_time_ymd(2125, 1, 1);
        let cert = params.self_signed(&key).map_err(Error::cert("CA"))?;
        let fingerprint = sha256_hex(key.subject_public_key_info().as_slice());
        if let Some(pinned) = token.pinned_ca_hash() {
            if pinned != fingerprint {
                return Err(Error::Token(format!(
                    "its CA hash {pinned} does not match the CA its secret yields ({fingerprint}): \
                     the token was altered"
                )));
            }
        }
        Ok(ClusterCa {
            cert_pem: cert.pem(),
            cert_der: cert.der().to_vec(),
            issuer: Issuer::new(params, key),
            fingerprint,
        })
    }

    /// `sha256:<hex>` of the CA public key.
    pub fn fingerprint(&self) -> String {
        format!("sha256:{}", self.fingerprint)
    }

    pub(crate) fn issuer(&self) -> &Issuer<'static, KeyPair> {
        &self.issuer
    }

    pub(crate) fn fingerprint_hex(&self) -> String {
        self.fingerprint.clone()
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// Issues a certificate for `spec` with a new P-256 key.
    pub fn issue(&self, spec: &LeafSpec) -> Result<Issued> {
        let key = KeyPair::generate().map_err(Error::cert("key"))?;
        let what = format!("for {}", spec.common_name);
        let mut params = CertificateParams::default();
        params.distinguished_name = dn(&spec.common_name, &spec.organizations);
        params.subject_alt_names = spec
            .sans
            .iter()
            .map(|s| san(s).map_err(Error::cert(what.clone())))
            .collect::<Result<_>>()?;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = match spec.usage {
            Usage::Server => vec![ExtendedKeyUsagePurpose::ServerAuth],
            Usage::Client => vec![ExtendedKeyUsagePurpose::ClientAuth],
            Usage::ServerAndClient => vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
        };
        params.serial_number = Some(random_serial()?);
        params.use_authority_key_identifier_extension = true;
        // A little back-dating tolerates clocks a few minutes apart.
        let now = SystemTime::now();
        let not_before = now - Duration::from_secs(300);
        let not_after = now + spec.validity;
        params.not_before = not_before.into();
        params.not_after = not_after.into();
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(Error::cert(what))?;
        Ok(Issued {
            cert_pem: cert.pem(),
            cert_der: cert.der().to_vec(),
            key_pem: key.serialize_pem(),
            key_der: key.serialize_der(),
            not_before,
            not_after,
            renew_at: now + spec.validity * 2 / 3,
        })
    }
}

/// The CA key: a P-256 scalar from the token. A derived value that is not a valid scalar
/// (probability about 2^-32) is derived again under the next counter.
fn derive_key(token: &ClusterToken) -> Result<KeyPair> {
    for i in 0u32.. {
        let seed = token.derive(&format!("cluster ca key {i}"));
        let Ok(secret) = p256::SecretKey::from_slice(&seed) else {
            continue;
        };
        let der = secret
            .to_pkcs8_der()
            .map_err(|e| Error::Token(format!("encoding the CA key: {e}")))?;
        return KeyPair::try_from(der.as_bytes()).map_err(Error::cert("CA key"));
    }
    Err(Error::Token("no CA key could be derived".into()))
}

fn dn(cn: &str, orgs: &[String]) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    for o in orgs {
        dn.push(DnType::OrganizationName, o.as_str());
    }
    dn.push(DnType::CommonName, cn);
    dn
}

pub(crate) fn san(s: &str) -> std::result::Result<SanType, rcgen::Error> {
    Ok(match s.parse::<IpAddr>() {
        Ok(ip) => SanType::IpAddress(ip),
        Err(_) => SanType::DnsName(s.to_string().try_into()?),
    })
}

pub(crate) fn random_serial() -> Result<SerialNumber> {
    let mut b = [0u8; 16];
    SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| Error::Tls("the system random generator failed".into()))?;
    b[0] &= 0x7f; // positive, as RFC 5280 requires
    Ok(SerialNumber::from_slice(&b))
}

pub(crate) fn sha256_hex(data: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, data)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(c: char) -> ClusterToken {
        ClusterToken::parse(&c.to_string().repeat(40)).unwrap()
    }

    #[test]
    fn one_token_one_ca_key_and_its_leaves_name_their_subject() {
        let a1 = ClusterCa::from_token(&token('a')).unwrap();
        let a2 = ClusterCa::from_token(&token('a')).unwrap();
        let b = ClusterCa::from_token(&token('b')).unwrap();
        assert_eq!(a1.fingerprint(), a2.fingerprint());
        assert_ne!(a1.fingerprint(), b.fingerprint());
        let leaf = a1
            .issue(&LeafSpec {
                common_name: "system:node:w1".into(),
                organizations: vec!["system:nodes".into()],
                sans: vec!["10.0.0.1".into(), "w1".into()],
                usage: Usage::Client,
                validity: Duration::from_secs(60),
            })
            .unwrap();
        let certs = [rustls::pki_types::CertificateDer::from(
            leaf.cert_der.clone(),
        )];
        let (cn, orgs) = crate::subject_of(&certs).unwrap();
        assert_eq!(cn, "system:node:w1");
        assert_eq!(orgs, vec!["system:nodes"]);
    }

    #[test]
    fn a_token_whose_hash_does_not_match_its_secret_is_refused() {
        let other = ClusterCa::from_token(&token('b'))
            .unwrap()
            .fingerprint_hex();
        let forged = ClusterToken::parse(&format!("K10{other}::{}", "a".repeat(40))).unwrap();
        let err = ClusterCa::from_token(&forged).err().unwrap().to_string();
        assert!(err.contains("does not match"), "{err}");
    }
}
