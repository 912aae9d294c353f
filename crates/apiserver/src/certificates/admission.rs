//! CertificateSigning admission: who asked is recorded from the request's credentials
//! (never from the body), the request must be a well-formed PEM request whose signature
//! verifies, the spec never changes, and a certificate is only ever set once, after
//! approval.

use async_trait::async_trait;
use serde_json::{json, Value};

use super::{has_condition, is_csr};
use crate::admission::{AdmissionRequest, MutatingAdmission, Operation, ValidatingAdmission};
use crate::error::{Error, FieldError, Result};

/// Key usages a request may name (Kubernetes' `KeyUsage` values).
const USAGES: &[&str] = &[
    "signing",
    "digital signature",
    "content commitment",
    "key encipherment",
    "key agreement",
    "data encipherment",
    "cert sign",
    "crl sign",
    "encipher only",
    "decipher only",
    "any",
    "server auth",
    "client auth",
    "code signing",
    "email protection",
    "s/mime",
    "ipsec end system",
    "ipsec tunnel",
    "ipsec user",
    "timestamping",
    "ocsp signing",
    "microsoft sgc",
    "netscape sgc",
];

pub struct CertificateSigning;

#[async_trait]
impl MutatingAdmission for CertificateSigning {
    fn name(&self) -> &'static str {
        "CertificateSigning"
    }

    async fn admit(&self, req: &AdmissionRequest<'_>, obj: &mut Value) -> Result<()> {
        if !is_csr(&req.rt.group, &req.rt.kind) || req.op != Operation::Create {
            return Ok(());
        }
        let u = req.user;
        obj["spec"]["username"] = u.name.clone().into();
        obj["spec"]["uid"] = u.uid.clone().into();
        obj["spec"]["groups"] = json!(u.groups);
        if let Some(spec) = obj["spec"].as_object_mut() {
            spec.remove("extra");
        }
        Ok(())
    }
}

#[async_trait]
impl ValidatingAdmission for CertificateSigning {
    fn name(&self) -> &'static str {
        "CertificateSigning"
    }

    async fn validate(&self, req: &AdmissionRequest<'_>, obj: &Value) -> Result<()> {
        if !is_csr(&req.rt.group, &req.rt.kind) {
            return Ok(());
        }
        let errs = match (req.op, req.old) {
            (Operation::Create, _) => check_spec(&obj["spec"]),
            (Operation::Update, Some(old)) => check_update(old, obj),
            _ => vec![],
        };
        if errs.is_empty() {
            Ok(())
        } else {
            Err(Error::invalid(&req.rt.kind, req.name, errs))
        }
    }
}

fn check_spec(spec: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    match spec["request"].as_str() {
        None | Some("") => errs.push(FieldError::required("spec.request")),
        Some(b64) => match decode(b64).map(|pem| pki::parse_request(&pem)) {
            Some(Ok(_)) => {}
            Some(Err(e)) => errs.push(FieldError::invalid(
                "spec.request",
                "<request>",
                e.to_string(),
            )),
            None => errs.push(FieldError::invalid(
                "spec.request",
                "<request>",
                "must be base64 of a PEM CERTIFICATE REQUEST",
            )),
        },
    }
    match spec["signerName"].as_str() {
        None | Some("") => errs.push(FieldError::required("spec.signerName")),
        Some(s) if !qualified(s) => errs.push(FieldError::invalid(
            "spec.signerName",
            s,
            "must be a fully qualified domain and path of the form 'example.com/signer-name'",
        )),
        Some(_) => {}
    }
    match spec["usages"].as_array() {
        Some(u) if !u.is_empty() => {
            for (i, v) in u.iter().enumerate() {
                let s = v.as_str().unwrap_or_default();
                if !USAGES.contains(&s) {
                    errs.push(FieldError::invalid(
                        format!("spec.usages[{i}]"),
                        s,
                        "is not a supported key usage",
                    ));
                }
            }
        }
        _ => errs.push(FieldError::required("spec.usages")),
    }
    if let Some(secs) = spec["expirationSeconds"].as_i64() {
        if secs < 600 {
            errs.push(FieldError::invalid(
                "spec.expirationSeconds",
                secs,
                "may not specify a duration less than 600 seconds (10 minutes)",
            ));
        }
    }
    errs
}

fn check_update(old: &Value, new: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if old["spec"] != new["spec"] {
        errs.push(FieldError::forbidden("spec", "field is immutable"));
    }
    if has_condition(new, "Approved") && has_condition(new, "Denied") {
        errs.push(FieldError::forbidden(
            "status.conditions",
            "Approved and Denied conditions are mutually exclusive",
        ));
    }
    for t in ["Approved", "Denied"] {
        if has_condition(old, t) && !has_condition(new, t) {
            errs.push(FieldError::forbidden(
                "status.conditions",
                format!("updates may not remove a condition of type {t:?}"),
            ));
        }
    }
    let (was, is) = (
        old["status"]["certificate"].as_str().unwrap_or_default(),
        new["status"]["certificate"].as_str().unwrap_or_default(),
    );
    if was != is {
        if !was.is_empty() {
            errs.push(FieldError::forbidden(
                "status.certificate",
                "updates may not modify existing certificate content",
            ));
        } else if !has_condition(new, "Approved")
            || has_condition(new, "Denied")
            || has_condition(new, "Failed")
        {
            errs.push(FieldError::forbidden(
                "status.certificate",
                "updates may not set certificate content unless the Approved condition is \
                 present and the Denied and Failed conditions are not",
            ));
        } else if !decode(is).is_some_and(|pem| pem.contains("-----BEGIN CERTIFICATE-----")) {
            errs.push(FieldError::invalid(
                "status.certificate",
                "<certificate>",
                "must be base64 of PEM CERTIFICATE blocks",
            ));
        }
    }
    errs
}

fn decode(b64: &str) -> Option<String> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    String::from_utf8(bytes).ok()
}

/// `domain/path`, the domain with at least one dot.
fn qualified(s: &str) -> bool {
    match s.split_once('/') {
        Some((domain, path)) => {
            domain.contains('.')
                && !path.is_empty()
                && domain
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-')
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine;

    use super::*;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    #[test]
    fn a_request_must_verify_and_name_a_signer_and_usages() {
        let (pem, _) = pki::new_request("system:node:w1", &[], &[]).unwrap();
        let good = json!({"request": b64(&pem),
            "signerName": "kubernetes.io/kube-apiserver-client-kubelet",
            "usages": ["digital signature", "client auth"]});
        assert!(check_spec(&good).is_empty());
        let bad = json!({"request": b64("garbage"), "signerName": "nodomain",
            "usages": ["flying"], "expirationSeconds": 60});
        let paths: Vec<String> = check_spec(&bad).into_iter().map(|e| e.path).collect();
        assert_eq!(
            paths,
            vec![
                "spec.request",
                "spec.signerName",
                "spec.usages[0]",
                "spec.expirationSeconds"
            ]
        );
    }

    #[test]
    fn a_certificate_is_set_once_and_only_after_approval() {
        let cert = b64("-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n");
        let pending = json!({"spec": {"request": "r"}});
        let issued = json!({"spec": {"request": "r"}, "status": {"certificate": cert}});
        assert_eq!(
            check_update(&pending, &issued)[0].path,
            "status.certificate"
        );
        let approved = json!({"spec": {"request": "r"}, "status": {"conditions": [
            {"type": "Approved", "status": "True"}]}});
        let mut signed = approved.clone();
        signed["status"]["certificate"] = cert.clone().into();
        assert!(check_update(&approved, &signed).is_empty());
        let mut replaced = signed.clone();
        replaced["status"]["certificate"] = b64("-----BEGIN CERTIFICATE-----\nAQ==\n").into();
        assert_eq!(check_update(&signed, &replaced).len(), 1);
        let mut respec = approved.clone();
        respec["spec"]["request"] = "other".into();
        assert_eq!(check_update(&approved, &respec)[0].path, "spec");
    }
}
