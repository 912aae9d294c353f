//! Certificate signing requests (PKCS #10): nodes make them, the cluster CA signs them.
//!
//! The signer copies only the subject and the alternative names from a request; usages,
//! lifetime and every other extension come from the signer, never from the requester.

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use rcgen::{
    CertificateParams, CertificateSigningRequestParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, KeyPair, KeyUsagePurpose,
};
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer;

use crate::ca::{random_serial, san, ClusterCa, Usage};
use crate::error::{Error, Result};

/// What a request asks for, read from a request whose signature verified.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestInfo {
    pub common_name: String,
    pub organizations: Vec<String>,
    pub dns_names: Vec<String>,
    pub ip_addresses: Vec<IpAddr>,
    /// Email addresses, URIs and every other kind of name.
    pub other_names: usize,
}

/// A new P-256 key and a request for `common_name` in `organizations` with `sans` (DNS
/// names or IP addresses): `(request PEM, key PEM)`.
pub fn new_request(
    common_name: &str,
    organizations: &[String],
    sans: &[String],
) -> Result<(String, String)> {
    let key = KeyPair::generate().map_err(Error::cert("key"))?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    for o in organizations {
        dn.push(DnType::OrganizationName, o.as_str());
    }
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    params.subject_alt_names = sans
        .iter()
        .map(|s| san(s).map_err(Error::cert(format!("name {s:?}"))))
        .collect::<Result<_>>()?;
    let csr = params
        .serialize_request(&key)
        .map_err(Error::cert("request"))?;
    let pem = csr.pem().map_err(Error::cert("request"))?;
    Ok((pem, key.serialize_pem()))
}

fn request_der(pem: &str) -> Result<Vec<u8>> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateSigningRequestDer::from_pem_slice(pem.as_bytes())
        .map(|d| d.as_ref().to_vec())
        .map_err(|e| Error::Parse {
            what: "certificate request".into(),
            reason: format!("not a PEM CERTIFICATE REQUEST block: {e}"),
        })
}

/// Parses a PEM request and verifies its signature (proof that the requester holds the key).
pub fn parse_request(pem: &str) -> Result<RequestInfo> {
    let der = request_der(pem)?;
    let bad = |reason: String| Error::Parse {
        what: "certificate request".into(),
        reason,
    };
    let (_, csr) = x509_parser::certification_request::X509CertificationRequest::from_der(&der)
        .map_err(|e| bad(e.to_string()))?;
    csr.verify_signature()
        .map_err(|_| bad("its signature does not verify".into()))?;
    let subject = &csr.certification_request_info.subject;
    let mut info = RequestInfo {
        common_name: subject
            .iter_common_name()
            .next()
            .and_then(|a| a.as_str().ok())
            .unwrap_or_default()
            .to_string(),
        organizations: subject
            .iter_organization()
            .filter_map(|o| o.as_str().ok().map(String::from))
            .collect(),
        ..Default::default()
    };
    for ext in csr.requested_extensions().into_iter().flatten() {
        if let ParsedExtension::SubjectAlternativeName(names) = ext {
            for n in &names.general_names {
                match n {
                    GeneralName::DNSName(d) => info.dns_names.push(d.to_string()),
                    GeneralName::IPAddress(b) => match ip_of(b) {
                        Some(ip) => info.ip_addresses.push(ip),
                        None => info.other_names += 1,
                    },
                    _ => info.other_names += 1,
                }
            }
        }
    }
    Ok(info)
}

fn ip_of(b: &[u8]) -> Option<IpAddr> {
    match b.len() {
        4 => <[u8; 4]>::try_from(b).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(b).ok().map(IpAddr::from),
        _ => None,
    }
}

/// A certificate signed from a request.
#[derive(Clone, Debug)]
pub struct Signed {
    pub cert_pem: String,
    pub not_after: SystemTime,
}

impl ClusterCa {
    /// Signs `request_pem` for `usage`, valid for `validity`: subject and alternative names
    /// come from the (verified) request, everything else from here.
    pub fn sign_request(
        &self,
        request_pem: &str,
        usage: Usage,
        validity: Duration,
    ) -> Result<Signed> {
        let der = request_der(request_pem)?;
        let req = CertificateSigningRequestParams::from_der(&der.into())
            .map_err(Error::cert("request"))?;
        let mut params = CertificateParams::default();
        params.distinguished_name = req.params.distinguished_name.clone();
        params.subject_alt_names = req.params.subject_alt_names.clone();
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = match usage {
            Usage::Server => vec![ExtendedKeyUsagePurpose::ServerAuth],
            Usage::Client => vec![ExtendedKeyUsagePurpose::ClientAuth],
            Usage::ServerAndClient => vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
        };
        params.serial_number = Some(random_serial()?);
        params.use_authority_key_identifier_extension = true;
        let now = SystemTime::now();
        let not_after = now + validity;
        params.not_before = (now - Duration::from_secs(300)).into();
        params.not_after = not_after.into();
        let signed = CertificateSigningRequestParams {
            params,
            public_key: req.public_key,
        }
        .signed_by(self.issuer())
        .map_err(Error::cert("signing the request"))?;
        Ok(Signed {
            cert_pem: signed.pem(),
            not_after,
        })
    }
}

/// `sha256:<hex>` of the public key of the first certificate in `ca_pem`: what a token's
/// `K10` prefix pins.
pub fn ca_fingerprint(ca_pem: &str) -> Result<String> {
    use rustls::pki_types::pem::PemObject;
    let der =
        rustls::pki_types::CertificateDer::from_pem_slice(ca_pem.as_bytes()).map_err(|e| {
            Error::Parse {
                what: "CA certificate".into(),
                reason: e.to_string(),
            }
        })?;
    let (_, cert) =
        x509_parser::parse_x509_certificate(der.as_ref()).map_err(|e| Error::Parse {
            what: "CA certificate".into(),
            reason: e.to_string(),
        })?;
    Ok(format!(
        "sha256:{}",
        crate::ca::sha256_hex(cert.public_key().raw)
    ))
}

/// When a certificate (PEM) stops being valid, and whether `ca_pem` signed it.
pub fn validity_of(cert_pem: &str, ca_pem: &str) -> Result<(SystemTime, SystemTime)> {
    use rustls::pki_types::pem::PemObject;
    let parse = |what: &str, reason: String| Error::Parse {
        what: what.into(),
        reason,
    };
    let der = rustls::pki_types::CertificateDer::from_pem_slice(cert_pem.as_bytes())
        .map_err(|e| parse("certificate", e.to_string()))?;
    let ca = rustls::pki_types::CertificateDer::from_pem_slice(ca_pem.as_bytes())
        .map_err(|e| parse("CA certificate", e.to_string()))?;
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref())
        .map_err(|e| parse("certificate", e.to_string()))?;
    let (_, ca) = x509_parser::parse_x509_certificate(ca.as_ref())
        .map_err(|e| parse("CA certificate", e.to_string()))?;
    cert.verify_signature(Some(ca.public_key()))
        .map_err(|_| parse("certificate", "not signed by the cluster CA".into()))?;
    let at = |t: x509_parser::time::ASN1Time| {
        SystemTime::UNIX_EPOCH + Duration::from_secs(t.timestamp().max(0) as u64)
    };
    Ok((
        at(cert.validity().not_before),
        at(cert.validity().not_after),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::ClusterToken;

    #[test]
    fn a_signed_request_keeps_subject_and_names_and_takes_usage_from_the_signer() {
        let ca = ClusterCa::from_token(&ClusterToken::parse(&"c".repeat(40)).unwrap()).unwrap();
        let orgs = vec!["system:nodes".to_string()];
        let sans = vec!["10.1.2.3".to_string(), "w1.example".to_string()];
        let (pem, _key) = new_request("system:node:w1", &orgs, &sans).unwrap();
        let info = parse_request(&pem).unwrap();
        assert_eq!(info.common_name, "system:node:w1");
        assert_eq!(info.organizations, orgs);
        assert_eq!(
            info.ip_addresses,
            vec!["10.1.2.3".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(info.dns_names, vec!["w1.example"]);
        let signed = ca
            .sign_request(&pem, Usage::Server, Duration::from_secs(3600))
            .unwrap();
        let (nb, na) = validity_of(&signed.cert_pem, ca.cert_pem()).unwrap();
        assert!(nb < SystemTime::now() && na > SystemTime::now());
        let der = {
            use rustls::pki_types::pem::PemObject;
            rustls::pki_types::CertificateDer::from_pem_slice(signed.cert_pem.as_bytes()).unwrap()
        };
        assert_eq!(
            crate::subject_of(&[der]).unwrap(),
            ("system:node:w1".to_string(), orgs)
        );
        assert_eq!(ca_fingerprint(ca.cert_pem()).unwrap(), ca.fingerprint());
        let other = ClusterCa::from_token(&ClusterToken::parse(&"d".repeat(40)).unwrap()).unwrap();
        assert!(validity_of(&signed.cert_pem, other.cert_pem()).is_err());
    }

    #[test]
    fn a_tampered_request_is_refused() {
        let (pem, _) = new_request("system:node:w1", &[], &[]).unwrap();
        let mut der = request_der(&pem).unwrap();
        // Another node's name: the signature no longer covers the content.
        let i = der.windows(7).position(|w| w == b"node:w1").unwrap() + 6;
        der[i] = b'2';
        let tampered = format!(
            "-----BEGIN CERTIFICATE REQUEST-----\n{}\n-----END CERTIFICATE REQUEST-----\n",
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &der)
        );
        assert!(parse_request(&tampered).is_err());
        assert!(parse_request("not pem").is_err());
    }
}
