//! The token controller's decisions, one table row per case Kubernetes' tokens controller
//! tests cover: a ServiceAccount without a token Secret gets one, a token Secret missing
//! its token gets one, a token Secret whose ServiceAccount is gone (or was re-created) is
//! deleted, and Secrets of other types, and Secrets being deleted, are left alone.

use serde_json::{json, Value};

use super::*;

fn account(uid: &str, deleting: bool) -> ServiceAccount {
    let mut v = json!({"metadata": {"name": "build", "namespace": "ci", "uid": uid}});
    if deleting {
        v["metadata"]["deletionTimestamp"] = json!("2023-11-14T22:13:20Z");
    }
    serde_json::from_value(v).unwrap()
}

/// A Secret of `type_` naming ServiceAccount `sa` (and `uid`, unless empty), with
/// `data`; `d` in `flags`: being deleted.
fn secret(type_: &str, sa: &str, uid: &str, data: Value, flags: &str) -> Secret {
    let mut annotations = json!({ SA_NAME: sa });
    if !uid.is_empty() {
        annotations[SA_UID] = json!(uid);
    }
    let mut v = json!({
        "metadata": {"name": "build-token-x", "namespace": "ci", "uid": "s1",
            "annotations": annotations},
        "type": type_, "data": data
    });
    if flags.contains('d') {
        v["metadata"]["deletionTimestamp"] = json!("2023-11-14T22:13:20Z");
    }
    serde_json::from_value(v).unwrap()
}

fn token_secret(uid: &str, data: Value) -> Secret {
    secret(SECRET_TYPE, "build", uid, data, "")
}

/// "dG9rZW4=" is "token".
fn with_token() -> Value {
    json!({"token": "dG9rZW4="})
}

#[test]
fn every_service_account_gets_one_token_secret() {
    let rows: Vec<(&str, ServiceAccount, Vec<Secret>, bool)> = vec![
        (
            "without a token Secret: one is made",
            account("u1", false),
            vec![],
            true,
        ),
        (
            "with its token Secret: nothing",
            account("u1", false),
            vec![token_secret("u1", json!(null))],
            false,
        ),
        (
            "the token Secret of an earlier ServiceAccount by that name does not count",
            account("u2", false),
            vec![token_secret("u1", with_token())],
            true,
        ),
        (
            "the token Secret of another ServiceAccount does not count",
            account("u1", false),
            vec![secret(SECRET_TYPE, "deploy", "u1", json!(null), "")],
            true,
        ),
        (
            "a Secret of another type does not count",
            account("u1", false),
            vec![secret("Opaque", "build", "u1", json!(null), "")],
            true,
        ),
        ("being deleted: none", account("u1", true), vec![], false),
    ];
    for (name, sa, secrets, want) in rows {
        let secrets: Vec<_> = secrets.into_iter().map(Arc::new).collect();
        let got = missing_secret(&sa, &secrets);
        assert_eq!(got.is_some(), want, "{name}");
        if let Some(s) = got {
            let m = &s.metadata;
            let uid = sa.metadata.uid.as_deref().unwrap();
            assert_eq!(s.type_.as_deref(), Some(SECRET_TYPE), "{name}");
            assert_eq!(m.namespace.as_deref(), Some("ci"), "{name}");
            assert_eq!(annotation(m, SA_NAME), "build", "{name}");
            assert_eq!(annotation(m, SA_UID), uid, "{name}");
            assert_eq!(s.data, None, "{name}: the token comes later");
        }
    }
}

#[test]
fn the_secret_name_is_fixed_per_service_account_uid() {
    let s = missing_secret(&account("ab-c1-2def", false), &[]).unwrap();
    assert_eq!(s.metadata.name.as_deref(), Some("build-token-abc12"));
}

#[test]
fn token_secrets_follow_their_service_account() {
    let live = Some(account("u1", false));
    let rows: Vec<(&str, Secret, Option<ServiceAccount>, SecretPlan)> = vec![
        (
            "a Secret of another type is ignored",
            secret("Opaque", "build", "u9", json!(null), ""),
            None,
            SecretPlan::Nothing,
        ),
        (
            "a token Secret being deleted is left alone",
            secret(SECRET_TYPE, "build", "u9", json!(null), "d"),
            None,
            SecretPlan::Nothing,
        ),
        (
            "its ServiceAccount is gone: deleted",
            token_secret("u1", with_token()),
            None,
            SecretPlan::Delete,
        ),
        (
            "its ServiceAccount was re-created: deleted",
            token_secret("u0", with_token()),
            live.clone(),
            SecretPlan::Delete,
        ),
        (
            "missing its token: filled",
            token_secret("u1", json!(null)),
            live.clone(),
            SecretPlan::Fill,
        ),
        (
            "an empty token: filled",
            token_secret("u1", json!({"token": ""})),
            live.clone(),
            SecretPlan::Fill,
        ),
        (
            "with its token: nothing",
            token_secret("u1", with_token()),
            live.clone(),
            SecretPlan::Nothing,
        ),
        (
            "without a uid it belongs to any ServiceAccount by that name",
            token_secret("", json!(null)),
            live.clone(),
            SecretPlan::Fill,
        ),
        (
            "without a uid and without its ServiceAccount: deleted",
            token_secret("", json!(null)),
            None,
            SecretPlan::Delete,
        ),
    ];
    for (name, s, sa, want) in rows {
        assert_eq!(plan_secret(&s, sa.as_ref()), want, "{name}");
    }
}

#[test]
fn a_filled_secret_carries_its_token_and_namespace() {
    let s = token_secret("u1", json!({"ca.crt": "Y2E="}));
    let f = filled(&s, "ci", "jwt");
    let data = f.data.unwrap();
    let text = |k: &str| String::from_utf8(data[k].0.clone()).unwrap();
    assert_eq!(
        (text("token"), text("namespace"), text("ca.crt")),
        ("jwt".into(), "ci".into(), "ca".into())
    );
    assert_eq!(f.metadata, s.metadata);
}
