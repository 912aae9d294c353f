use std::borrow::Cow;

use base64::Engine;
use serde_json::json;

use super::*;

const SECRET: &str = "/registry/core/secrets/default/db";
const CONFIGMAP: &str = "/registry/core/configmaps/default/db";

/// A base64 key of `len` bytes, all `fill`.
fn key(len: usize, fill: u8) -> String {
    base64::engine::general_purpose::STANDARD.encode(vec![fill; len])
}

/// A configuration for `secrets` with `providers` (YAML flow items).
fn config(providers: &[String]) -> String {
    format!(
        "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- resources: [secrets]\n  providers:\n{}",
        providers
            .iter()
            .map(|p| format!("  - {p}\n"))
            .collect::<String>()
    )
}

fn aesgcm(keys: &[(&str, String)]) -> String {
    let keys: Vec<String> = keys
        .iter()
        .map(|(n, s)| format!("{{name: {n}, secret: \"{s}\"}}"))
        .collect();
    format!("aesgcm: {{keys: [{}]}}", keys.join(", "))
}

fn secretbox(keys: &[(&str, String)]) -> String {
    aesgcm(keys).replacen("aesgcm", "secretbox", 1)
}

fn transformer(providers: &[String]) -> Transformer {
    Transformer::parse(&config(providers)).expect("valid configuration")
}

fn field_of(text: &str) -> (String, String) {
    match Transformer::parse(text) {
        Err(Error::Invalid { field, reason }) => (field, reason),
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[test]
fn both_providers_round_trip_with_kubernetes_prefixes() {
    for (provider, prefix) in [
        (aesgcm(&[("k1", key(32, 1))]), "k8s:enc:aesgcm:v1:k1:"),
        (aesgcm(&[("k1", key(24, 1))]), "k8s:enc:aesgcm:v1:k1:"),
        (aesgcm(&[("k1", key(16, 1))]), "k8s:enc:aesgcm:v1:k1:"),
        (secretbox(&[("k1", key(32, 1))]), "k8s:enc:secretbox:v1:k1:"),
    ] {
        let t = transformer(&[provider]);
        let sealed = t.encrypt(SECRET, b"{\"data\":{}}").expect("encrypt");
        assert!(sealed.starts_with(prefix.as_bytes()), "{sealed:?}");
        assert!(!sealed.windows(4).any(|w| w == b"data"), "plaintext leaked");
        assert_eq!(
            t.decrypt(SECRET, &sealed).expect("decrypt").as_ref(),
            b"{\"data\":{}}"
        );
        assert!(t.is_current(SECRET, &sealed));
        let again = t.encrypt(SECRET, b"{\"data\":{}}").expect("encrypt");
        assert_ne!(sealed, again, "nonces must differ");
    }
}

#[test]
fn the_first_key_writes_and_every_key_reads() {
    let old = transformer(&[
        secretbox(&[("old", key(32, 9))]),
        aesgcm(&[("k1", key(32, 1))]),
    ]);
    let by_old = old.encrypt(SECRET, b"one").expect("encrypt");
    let k2_only = transformer(&[aesgcm(&[("k2", key(32, 2))])]);
    let by_k2 = k2_only.encrypt(SECRET, b"two").expect("encrypt");

    let t = transformer(&[
        aesgcm(&[("k2", key(32, 2)), ("k1", key(32, 1))]),
        secretbox(&[("old", key(32, 9))]),
    ]);
    let written = t.encrypt(SECRET, b"three").expect("encrypt");
    assert!(written.starts_with(b"k8s:enc:aesgcm:v1:k2:"));
    for (stored, want) in [(&by_old, "one"), (&by_k2, "two"), (&written, "three")] {
        assert_eq!(
            t.decrypt(SECRET, stored).expect("decrypt").as_ref(),
            want.as_bytes()
        );
    }
    assert!(!t.is_current(SECRET, &by_old));
    assert!(t.is_current(SECRET, &by_k2));
}

#[test]
fn a_value_written_before_a_rotation_is_read_after_it() {
    let before = transformer(&[aesgcm(&[("k1", key(32, 1))])]);
    let stored = before.encrypt(SECRET, b"payload").expect("encrypt");
    let after = transformer(&[aesgcm(&[("k2", key(32, 2)), ("k1", key(32, 1))])]);
    assert!(!after.is_current(SECRET, &stored));
    let plain = after.decrypt(SECRET, &stored).expect("old key still reads");
    let rewritten = after.encrypt(SECRET, &plain).expect("encrypt");
    assert!(after.is_current(SECRET, &rewritten));
    // Once every value is rewritten, the old key can go.
    let done = transformer(&[aesgcm(&[("k2", key(32, 2))])]);
    assert_eq!(
        done.decrypt(SECRET, &rewritten).expect("decrypt").as_ref(),
        b"payload"
    );
    assert!(matches!(
        done.decrypt(SECRET, &stored),
        Err(Error::UnknownKey { prefix, .. }) if prefix == "k8s:enc:aesgcm:v1:k1"
    ));
}

#[test]
fn wrong_keys_tampering_and_moved_values_are_errors() {
    for provider in [
        aesgcm(&[("k1", key(32, 1))]),
        secretbox(&[("k1", key(32, 1))]),
    ] {
        let t = transformer(std::slice::from_ref(&provider));
        let stored = t.encrypt(SECRET, b"payload").expect("encrypt");

        let same_name = transformer(&[provider.replace(&key(32, 1), &key(32, 7))]);
        assert!(matches!(
            same_name.decrypt(SECRET, &stored),
            Err(Error::Decrypt { .. })
        ));
        for at in [stored.len() - 1, stored.len() - 20] {
            let mut tampered = stored.to_vec();
            tampered[at] ^= 0x01;
            assert!(matches!(
                t.decrypt(SECRET, &tampered),
                Err(Error::Decrypt { .. })
            ));
        }
        let cut = &stored[..stored.len() - 5];
        assert!(matches!(t.decrypt(SECRET, cut), Err(Error::Decrypt { .. })));
    }
    // aesgcm authenticates the etcd key: a value copied to another Secret does not open.
    let t = transformer(&[aesgcm(&[("k1", key(32, 1))])]);
    let stored = t.encrypt(SECRET, b"payload").expect("encrypt");
    let other = "/registry/core/secrets/default/other";
    let err = t.decrypt(other, &stored).expect_err("moved value");
    assert!(err.to_string().contains(other), "{err}");
}

#[test]
fn plaintext_is_read_through_and_other_resources_are_untouched() {
    let t = transformer(&[aesgcm(&[("k1", key(32, 1))])]);
    let json = br#"{"kind":"Secret"}"#;
    assert!(matches!(t.decrypt(SECRET, json), Ok(Cow::Borrowed(_))));
    assert!(!t.is_current(SECRET, json), "plaintext Secrets are stale");
    assert!(t.applies_to(SECRET));
    assert!(!t.applies_to(CONFIGMAP));
    assert!(!t.applies_to("/rkube/internal/service-account-signing-key"));
    assert_eq!(t.encrypt(CONFIGMAP, json).expect("identity").as_ref(), json);
    assert!(t.is_current(CONFIGMAP, json));
    assert!(matches!(
        t.decrypt(CONFIGMAP, b"k8s:enc:aesgcm:v1:k1:xxxx"),
        Err(Error::UnknownKey { .. })
    ));
}

#[test]
fn identity_first_writes_plaintext_and_still_reads_sealed_values() {
    let sealing = transformer(&[secretbox(&[("k1", key(32, 1))])]);
    let stored = sealing.encrypt(SECRET, b"payload").expect("encrypt");
    let t = transformer(&["identity: {}".into(), secretbox(&[("k1", key(32, 1))])]);
    assert_eq!(
        t.encrypt(SECRET, b"payload").expect("encrypt").as_ref(),
        b"payload"
    );
    assert_eq!(
        t.decrypt(SECRET, &stored).expect("decrypt").as_ref(),
        b"payload"
    );
    assert!(!t.is_current(SECRET, &stored));
    assert!(t.is_current(SECRET, b"payload"));
    assert!(!t.is_identity());
    assert!(transformer(&["identity: {}".into()]).is_identity());
}

#[test]
fn wildcards_and_order_pick_the_rule() {
    let text = format!(
        r#"{{"apiVersion": "apiserver.config.k8s.io/v1", "kind": "EncryptionConfiguration",
            "resources": [
              {{"resources": ["events"], "providers": [{{"identity": {{}}}}]}},
              {{"resources": ["secrets", "deployments.apps"], "providers": [{{"aesgcm": {{"keys": [{{"name": "a", "secret": "{a}"}}]}}}}]}},
              {{"resources": ["*.*"], "providers": [{{"secretbox": {{"keys": [{{"name": "b", "secret": "{b}"}}]}}}}]}}
            ]}}"#,
        a = key(16, 1),
        b = key(32, 2)
    );
    let t = Transformer::parse(&text).expect("JSON configuration");
    let sealed = |k: &str| t.encrypt(k, b"x").expect("encrypt");
    assert!(sealed(SECRET).starts_with(b"k8s:enc:aesgcm:v1:a:"));
    assert!(sealed("/registry/apps/deployments/ns/d").starts_with(b"k8s:enc:aesgcm:v1:a:"));
    assert!(sealed(CONFIGMAP).starts_with(b"k8s:enc:secretbox:v1:b:"));
    assert!(sealed("/registry/example.com/widgets/ns/w").starts_with(b"k8s:enc:secretbox:"));
    assert_eq!(sealed("/registry/core/events/ns/e").as_ref(), b"x");
    assert!(t.applies_to("/registry/core/events/ns/e"));
}

#[test]
fn configuration_errors_name_the_field() {
    let good = aesgcm(&[("k1", key(32, 1))]);
    let base = config(std::slice::from_ref(&good));
    let cases: Vec<(String, &str, &str)> = vec![
        (
            config(&[
                good.clone(),
                aesgcm(&[("k1", key(32, 1)), ("k2", key(7, 1))]),
            ]),
            "resources[0].providers[1].aesgcm.keys[1].secret",
            "must be 16, 24 or 32 bytes after base64 decoding, got 7",
        ),
        (
            config(&[secretbox(&[("k1", key(16, 1))])]),
            "resources[0].providers[0].secretbox.keys[0].secret",
            "must be 32 bytes after base64 decoding, got 16",
        ),
        (
            config(&[aesgcm(&[("k1", "not base64!".into())])]),
            "resources[0].providers[0].aesgcm.keys[0].secret",
            "must be base64",
        ),
        (
            config(&[aesgcm(&[("", key(32, 1))])]),
            "resources[0].providers[0].aesgcm.keys[0].name",
            "Required value",
        ),
        (
            config(&[aesgcm(&[("a:b", key(32, 1))])]),
            "resources[0].providers[0].aesgcm.keys[0].name",
            "must not contain ':'",
        ),
        (
            config(&[good.clone(), aesgcm(&[("k1", key(16, 1))])]),
            "resources[0].providers[1].aesgcm.keys[0].name",
            "Duplicate value",
        ),
        (
            config(&["aescbc: {keys: []}".into()]),
            "resources[0].providers[0].aescbc",
            "not supported",
        ),
        (
            config(&["{}".into()]),
            "resources[0].providers[0]",
            "exactly one",
        ),
        (
            config(&[format!("{{identity: {{}}, {}}}", good)]),
            "resources[0].providers[0]",
            "not several",
        ),
        (
            config(&["aesgcm: {keys: []}".into()]),
            "resources[0].providers[0].aesgcm.keys",
            "Required value",
        ),
        (
            config(&["aesgcm: {keys: [{name: k1, secret: x, extra: 1}]}".into()]),
            "resources[0].providers[0].aesgcm.keys[0].extra",
            "unknown field `extra`",
        ),
        (
            base.replace("v1\n", "v2\n"),
            "apiVersion",
            "must be \"apiserver.config.k8s.io/v1\"",
        ),
        (
            base.replace("kind: EncryptionConfiguration\n", ""),
            "kind",
            "Required value",
        ),
        (
            base.replace("[secrets]", "[]"),
            "resources[0].resources",
            "Required value",
        ),
        (
            base.replace("[secrets]", "[Secrets]"),
            "resources[0].resources[0]",
            "lowercase",
        ),
        (
            base.replace("[secrets]", "['*.', secrets]"),
            "resources[0].resources[1]",
            "overlaps resources[0].resources[0]",
        ),
        (
            base.replace("[secrets]", "['*.*']")
                + &format!("- resources: [configmaps]\n  providers: [{good}]\n"),
            "resources[1].resources[0]",
            "overlaps resources[0].resources[0] (*.*)",
        ),
        (
            config(&[]).replace("  providers:\n", "  providers: []\n"),
            "resources[0].providers",
            "Required value",
        ),
    ];
    for (text, want_field, want_reason) in cases {
        let (field, reason) = field_of(&text);
        assert_eq!(field, want_field, "{text}");
        assert!(
            reason.contains(want_reason),
            "{want_field}: {reason:?} lacks {want_reason:?}"
        );
    }
    let err = Transformer::parse(&config(&[aesgcm(&[("k1", key(7, 1))])])).expect_err("short key");
    assert_eq!(
        err.to_string(),
        "resources[0].providers[0].aesgcm.keys[0].secret: must be 16, 24 or 32 bytes after base64 decoding, got 7"
    );
}

#[test]
fn from_file_skips_absent_and_identity_only_configurations() {
    let dir = tempfile::tempdir().expect("tempdir");
    let identity = dir.path().join("identity.yaml");
    std::fs::write(&identity, config(&["identity: {}".into()])).expect("write");
    let sealing = dir.path().join("aesgcm.yaml");
    std::fs::write(&sealing, config(&[aesgcm(&[("k1", key(32, 1))])])).expect("write");
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, config(&[aesgcm(&[("k1", key(3, 1))])])).expect("write");

    assert!(from_file(None).expect("absent").is_none());
    assert!(from_file(Some(&identity)).expect("identity").is_none());
    assert!(from_file(Some(&sealing)).expect("aesgcm").is_some());
    let err = from_file(Some(&bad)).expect_err("bad key").to_string();
    assert!(
        err.starts_with(&format!("{}: resources[0]", bad.display())),
        "{err}"
    );
    let missing = dir.path().join("missing.yaml");
    assert!(matches!(from_file(Some(&missing)), Err(Error::Read { .. })));
}

#[test]
fn storage_encode_and_decode_seal_only_covered_keys() {
    let t = transformer(&[aesgcm(&[("k1", key(32, 1))])]);
    let obj =
        json!({"metadata": {"name": "db", "resourceVersion": "5"}, "data": {"p": "cGFzcw=="}});
    let sealed = crate::storage::encode(Some(&t), SECRET, &obj).expect("encode");
    assert!(sealed.starts_with(b"k8s:enc:aesgcm:v1:k1:"));
    let back = crate::storage::decode(Some(&t), SECRET, &sealed, 9).expect("decode");
    assert_eq!(back["data"], obj["data"]);
    assert_eq!(back["metadata"]["resourceVersion"], "9");
    let plain = crate::storage::encode(Some(&t), CONFIGMAP, &obj).expect("encode");
    assert!(plain.starts_with(b"{"));
    assert!(crate::storage::decode(None, SECRET, &sealed, 9).is_err());
}
