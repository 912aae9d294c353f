//! Tests of the failure policy and of the TLS trust a webhook needs.

use super::*;

fn hook(policy: FailurePolicy) -> Hook {
    Hook {
        name: "h.example.com".into(),
        client: Default::default(),
        rules: Vec::new(),
        failure_policy: policy,
        namespace_selector: None,
        object_selector: None,
        timeout: std::time::Duration::from_secs(10),
        review_versions: vec!["v1".into()],
    }
}

fn unreachable() -> Outcome {
    Outcome::Failed(CallError::Post {
        url: "https://h.example.com:443/?timeout=10s".into(),
        reason: "context deadline exceeded".into(),
    })
}

#[test]
fn the_failure_policy_decides_when_a_webhook_cannot_be_called() {
    assert!(settle(&hook(FailurePolicy::Ignore), unreachable()).is_ok());
    let e = settle(&hook(FailurePolicy::Fail), unreachable()).unwrap_err();
    assert!(matches!(e, Error::Internal(_)), "{e:?}");
    assert_eq!(
        e.to_string(),
        "Internal error occurred: failed calling webhook \"h.example.com\": failed to call webhook: \
         Post \"https://h.example.com:443/?timeout=10s\": context deadline exceeded"
    );
    // A denial is a denial whatever the policy.
    let denied = Outcome::Refused(Error::Forbidden("no".into()));
    assert!(matches!(
        settle(&hook(FailurePolicy::Ignore), denied),
        Err(Error::Forbidden(_))
    ));
}

#[tokio::test]
async fn a_webhook_without_a_ca_bundle_is_refused_before_dialling() {
    let cache = WatchCache::new(Arc::new(crate::registry::Registry::with_builtins()), 16);
    let mut h = hook(FailurePolicy::Fail);
    h.client.url = Some("https://127.0.0.1:1/".into());
    let e = Caller::default()
        .post(&cache, &h, b"{}".to_vec())
        .await
        .unwrap_err();
    assert!(matches!(e, CallError::Client(_)), "{e:?}");
    assert!(e.to_string().contains("caBundle is empty"), "{e}");

    h.client.ca_bundle = Some(k8s_openapi::ByteString(b"not a certificate".to_vec()));
    let e = Caller::default()
        .post(&cache, &h, b"{}".to_vec())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("no PEM certificate"), "{e}");
}
