//! Secrets encrypted at rest (`--encryption-provider-config`): written under the first
//! key, read under any listed key, rewritten under a new first key after a rotation, and
//! never found in plaintext in a data directory.

use std::time::Duration;

use client::Api;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;
use rkube_tests::{eventually, Cluster};

const K1: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="; // 32 bytes
const K2: &str = "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA="; // 32 bytes

fn config(keys: &[(&str, &str)]) -> String {
    let keys: Vec<String> = keys
        .iter()
        .map(|(n, s)| format!("          - name: {n}\n            secret: {s}\n"))
        .collect();
    format!(
        "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n  \
         - resources: [\"secrets\"]\n    providers:\n      - aesgcm:\n          keys:\n{}      \
         - identity: {{}}\n",
        keys.concat()
    )
}

fn secret(name: &str, value: &str) -> Secret {
    let mut s = Secret::default();
    s.metadata.name = Some(name.into());
    s.data = Some([("v".to_string(), ByteString(value.as_bytes().to_vec()))].into());
    s
}

async fn stored(c: &Cluster, name: &str) -> Vec<u8> {
    let key = format!("/registry/core/secrets/default/{name}");
    c.clients(0).value(&key).await.unwrap_or_default()
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Every file under `dir` that contains `needle`.
fn files_containing(dir: &std::path::Path, needle: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_containing(&p, needle));
        } else if std::fs::read(&p).is_ok_and(|b| contains(&b, needle)) {
            out.push(p.display().to_string());
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn secrets_are_encrypted_and_survive_a_key_rotation() {
    tokio::time::timeout(Duration::from_secs(150), async {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("encryption.yaml");
        std::fs::write(&cfg, config(&[("k1", K1)])).unwrap();
        let cfg_arg = cfg.to_string_lossy().into_owned();
        let mut c = Cluster::start(
            rkube_tests::Flavor::Server,
            3,
            &["--encryption-provider-config", &cfg_arg],
        )
        .await;
        let secrets = Api::<Secret>::namespaced(c.api_client(), "default");
        let old_value = format!("old-plaintext-{}", std::process::id());
        secrets.create(&secret("old", &old_value)).await.unwrap();
        let raw = stored(&c, "old").await;
        assert!(
            raw.starts_with(b"k8s:enc:aesgcm:v1:k1:"),
            "{:?}",
            &raw[..20]
        );
        assert!(!contains(&raw, old_value.as_bytes()));

        // Rotation: a new first key, the old one still listed; every member restarted.
        std::fs::write(&cfg, config(&[("k2", K2), ("k1", K1)])).unwrap();
        for i in 0..3 {
            c.kill(i);
        }
        for i in 0..3 {
            c.spawn(i, "new");
        }
        c.wait_leader(Duration::from_secs(30)).await;
        let secrets = Api::<Secret>::namespaced(c.api_client(), "default");
        let got = secrets.get("old").await.unwrap();
        assert_eq!(got.data.unwrap()["v"].0, old_value.as_bytes());
        let new_value = format!("new-plaintext-{}", std::process::id());
        secrets.create(&secret("new", &new_value)).await.unwrap();
        assert!(stored(&c, "new")
            .await
            .starts_with(b"k8s:enc:aesgcm:v1:k2:"));
        eventually(
            Duration::from_secs(20),
            "the old Secret rewritten under k2",
            || async {
                stored(&c, "old")
                    .await
                    .starts_with(b"k8s:enc:aesgcm:v1:k2:")
                    .then_some(())
            },
        )
        .await;

        // No member's data directory holds either value in plaintext (nor base64).
        for m in &c.members {
            for v in [&old_value, &new_value] {
                let b64 = base64_of(v);
                for needle in [v.as_bytes(), b64.as_bytes()] {
                    let found = files_containing(&m.data_dir, needle);
                    assert!(found.is_empty(), "{v} in {found:?}");
                }
            }
        }
    })
    .await
    .expect("within the deadline");
}

fn base64_of(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}
