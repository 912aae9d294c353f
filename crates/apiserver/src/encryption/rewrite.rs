//! Re-sealing stored values after the configuration changed (encryption turned on or off, or
//! a new key listed first): what a Kubernetes operator does by replacing every Secret, done
//! here at the storage level, so no object changes but its `resourceVersion`.

use bytes::Bytes;
use raft_store::Store;
use rkube_proto::etcd::RangeRequest;

use super::Transformer;
use crate::cache::REGISTRY_PREFIX;
use crate::error::{Error, Result};
use crate::handler::Api;
use crate::storage::{self, Side, Swap};

/// Values read per range request.
const PAGE: i64 = 256;

/// Rewrites every value of the resources `api`'s encryption configuration names that is not
/// written under its current provider and key. Returns how many were rewritten; 0 without a
/// configuration.
pub async fn rewrite_stale(api: &Api) -> Result<usize> {
    match &api.encryption {
        Some(t) => rewrite_stale_in(&api.store, t).await,
        None => Ok(0),
    }
}

/// [`rewrite_stale`] for `store` and `t`. Each value is replaced by a compare-and-swap on
/// its mod revision; a lost swap is skipped, because the write that won sealed the value
/// with the current key already. A value that does not open is left as it is and the others
/// are still rewritten; the pass then fails with Internal, naming the first such key.
pub async fn rewrite_stale_in(store: &Store, t: &Transformer) -> Result<usize> {
    let end = raft_store::prefix_end(REGISTRY_PREFIX.as_bytes());
    let mut start = Bytes::from_static(REGISTRY_PREFIX.as_bytes());
    let mut rewritten = 0;
    let mut unreadable: Vec<super::Error> = Vec::new();
    loop {
        let resp = store
            .range(&RangeRequest {
                key: start.clone(),
                range_end: end.clone(),
                limit: PAGE,
                ..Default::default()
            })
            .await?;
        for kv in &resp.kvs {
            let Ok(key) = std::str::from_utf8(&kv.key) else {
                continue;
            };
            if !t.applies_to(key) || t.is_current(key, &kv.value) {
                continue;
            }
            let value = match t.decrypt(key, &kv.value).and_then(|p| t.encrypt(key, &p)) {
                Ok(v) => v,
                Err(e) => {
                    tracing::warn!(key, error = %e, "encryption: cannot rewrite a stored value");
                    unreadable.push(e);
                    continue;
                }
            };
            let swap =
                storage::update(store, key, kv.mod_revision, value, &Side::default()).await?;
            if let Swap::Done(_) = swap {
                rewritten += 1;
            }
        }
        match resp.kvs.last() {
            Some(last) if resp.more => {
                let mut next = last.key.to_vec();
                next.push(0);
                start = Bytes::from(next);
            }
            _ => break,
        }
    }
    tracing::info!(
        rewritten,
        failed = unreadable.len(),
        "encryption: rewrote stale values"
    );
    match unreadable.first() {
        None => Ok(rewritten),
        Some(first) => Err(Error::Internal(format!(
            "rewrote {rewritten} stored values; {} could not be rewritten, the first: {first}",
            unreadable.len()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;
    use std::time::Duration;

    use base64::Engine;
    use raft_store::StoreConfig;

    use super::*;
    use crate::cache::WatchCache;
    use crate::registry::Registry;

    const SECRET: &str = "/registry/core/secrets/default/a";
    const CONFIGMAP: &str = "/registry/core/configmaps/default/a";
    const JSON: &[u8] = br#"{"metadata":{"name":"a","namespace":"default"},"data":{"p":"eA=="}}"#;

    fn transformer(keys: &[(&str, u8)]) -> Transformer {
        let keys: Vec<String> = keys
            .iter()
            .map(|(name, fill)| {
                let secret = base64::engine::general_purpose::STANDARD.encode([*fill; 32]);
                format!("{{name: {name}, secret: \"{secret}\"}}")
            })
            .collect();
        Transformer::parse(&format!(
            "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\n\
             resources: [{{resources: [secrets], providers: [{{aesgcm: {{keys: [{}]}}}}]}}]\n",
            keys.join(", ")
        ))
        .expect("valid configuration")
    }

    async fn raw(store: &Store, key: &str) -> Bytes {
        let resp = store
            .range(&RangeRequest {
                key: Bytes::copy_from_slice(key.as_bytes()),
                ..Default::default()
            })
            .await
            .expect("range");
        resp.kvs
            .first()
            .map(|kv| kv.value.clone())
            .unwrap_or_default()
    }

    async fn single_member(dir: &std::path::Path) -> Store {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let addr = format!("127.0.0.1:{port}");
        let cluster = BTreeMap::from([("m1".to_string(), addr.clone())]);
        let cfg = StoreConfig::new("m1", dir.join("m1"), addr.parse().expect("addr"), cluster);
        Store::open(cfg).await.expect("open store")
    }

    #[tokio::test]
    async fn rewrites_plaintext_then_old_keys_and_the_cache_reads_the_result() {
        let dir = tempfile::tempdir().expect("tempdir");
        let test = async {
            let store = single_member(dir.path()).await;
            for key in [SECRET, CONFIGMAP] {
                storage::create(&store, key, Bytes::from_static(JSON), &Side::default())
                    .await
                    .expect("create");
            }
            let k1 = transformer(&[("k1", 1)]);
            assert_eq!(rewrite_stale_in(&store, &k1).await.expect("rewrite"), 1);
            assert!(raw(&store, SECRET)
                .await
                .starts_with(b"k8s:enc:aesgcm:v1:k1:"));
            assert_eq!(raw(&store, CONFIGMAP).await.as_ref(), JSON);
            assert_eq!(rewrite_stale_in(&store, &k1).await.expect("again"), 0);

            let k2 = transformer(&[("k2", 2), ("k1", 1)]);
            assert_eq!(rewrite_stale_in(&store, &k2).await.expect("rotate"), 1);
            assert!(raw(&store, SECRET)
                .await
                .starts_with(b"k8s:enc:aesgcm:v1:k2:"));

            let lost = transformer(&[("k3", 3)]);
            let err = rewrite_stale_in(&store, &lost)
                .await
                .expect_err("k2 is gone");
            assert!(err.to_string().contains("k8s:enc:aesgcm:v1:k2"), "{err}");

            let cache = WatchCache::new(Arc::new(Registry::with_builtins()), 100);
            cache.set_encryption(k2);
            let run = tokio::spawn(cache.clone().run(store.clone()));
            cache.wait_fresh(&store).await.expect("fresh");
            let cached = cache.get(SECRET).expect("the cache opened the Secret");
            assert_eq!(cached.value().expect("json")["data"]["p"], "eA==");
            run.abort();
            store.shutdown().await;
        };
        tokio::time::timeout(Duration::from_secs(60), test)
            .await
            .expect("the rewrite test finished within 60 s");
    }
}
