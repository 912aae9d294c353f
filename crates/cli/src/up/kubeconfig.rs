//! The kubeconfig `rkube up` gives kubectl: an `rkube` cluster, user and context merged
//! into `$KUBECONFIG` (its first file) or `~/.kube/config`, with the CA and the admin's
//! certificate inline. Its server is a local TCP balancer run by `rkube up`, which passes
//! each connection to the first member that accepts it, so the context keeps working
//! while any member is alive.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use base64::Engine;
use serde_yaml_ng::{Mapping, Value};
use tokio::net::{TcpListener, TcpStream};

/// The name of the cluster, user and context `rkube up` writes.
pub const CONTEXT: &str = "rkube";

/// Where kubectl reads its configuration: the first file of `$KUBECONFIG`, else
/// `~/.kube/config`.
pub fn default_path() -> Option<PathBuf> {
    if let Some(k) = std::env::var_os("KUBECONFIG").filter(|k| !k.is_empty()) {
        return std::env::split_paths(&k).next();
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".kube").join("config"))
}

fn b64(s: &str) -> Value {
    Value::String(base64::engine::general_purpose::STANDARD.encode(s))
}

fn named(name: &str, key: &str, body: Value) -> Value {
    let mut m = Mapping::new();
    m.insert("name".into(), name.into());
    m.insert(key.into(), body);
    Value::Mapping(m)
}

/// Replaces the entry called `name` in the list `list` of `doc`, or adds it.
fn upsert(doc: &mut Mapping, list: &str, name: &str, entry: Value) {
    let items = doc
        .entry(list.into())
        .or_insert_with(|| Value::Sequence(Vec::new()));
    if !items.is_sequence() {
        *items = Value::Sequence(Vec::new());
    }
    if let Value::Sequence(seq) = items {
        seq.retain(|e| e.get("name").and_then(|n| n.as_str()) != Some(name));
        seq.push(entry);
    }
}

/// The admin's credentials for the kubeconfig.
pub struct Credentials<'a> {
    pub server: String,
    pub ca_pem: &'a str,
    pub cert_pem: &'a str,
    pub key_pem: &'a str,
}

/// Merges the `rkube` context into the kubeconfig at `path` (created if missing; other
/// clusters, users and contexts are kept) and makes it the current context.
pub fn merge(path: &Path, c: &Credentials<'_>) -> anyhow::Result<()> {
    let mut doc: Mapping = match std::fs::read(path) {
        Ok(b) if !b.iter().all(|c| c.is_ascii_whitespace()) => serde_yaml_ng::from_slice(&b)
            .with_context(|| format!("{} is not a kubeconfig", path.display()))?,
        Ok(_) => Mapping::new(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Mapping::new(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    doc.insert("apiVersion".into(), "v1".into());
    doc.insert("kind".into(), "Config".into());
    let mut cluster = Mapping::new();
    cluster.insert("server".into(), c.server.clone().into());
    cluster.insert("certificate-authority-data".into(), b64(c.ca_pem));
    upsert(
        &mut doc,
        "clusters",
        CONTEXT,
        named(CONTEXT, "cluster", cluster.into()),
    );
    let mut user = Mapping::new();
    user.insert("client-certificate-data".into(), b64(c.cert_pem));
    user.insert("client-key-data".into(), b64(c.key_pem));
    upsert(
        &mut doc,
        "users",
        CONTEXT,
        named(CONTEXT, "user", user.into()),
    );
    let mut ctx = Mapping::new();
    ctx.insert("cluster".into(), CONTEXT.into());
    ctx.insert("user".into(), CONTEXT.into());
    upsert(
        &mut doc,
        "contexts",
        CONTEXT,
        named(CONTEXT, "context", ctx.into()),
    );
    doc.insert("current-context".into(), CONTEXT.into());
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let text = serde_yaml_ng::to_string(&doc)?;
    pki::write_private(path, text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Passes every connection on `listener` to the first of `members` that accepts it
/// (starting after the one that last failed), byte for byte: TLS stays end to end.
pub async fn balance(listener: TcpListener, members: Vec<SocketAddr>) {
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    loop {
        let Ok((mut inbound, _)) = listener.accept().await else {
            continue;
        };
        let (members, next) = (members.clone(), next.clone());
        tokio::spawn(async move {
            let n = members.len();
            let first = next.load(std::sync::atomic::Ordering::Relaxed);
            for i in 0..n {
                let idx = (first + i) % n;
                let dial = TcpStream::connect(members[idx]);
                let Ok(Ok(mut out)) = tokio::time::timeout(Duration::from_secs(2), dial).await
                else {
                    next.store((idx + 1) % n, std::sync::atomic::Ordering::Relaxed);
                    continue;
                };
                let _ = out.set_nodelay(true);
                let _ = inbound.set_nodelay(true);
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                return;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_keeps_other_contexts_and_replaces_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        std::fs::write(
            &path,
            "apiVersion: v1\nkind: Config\nclusters:\n- name: other\n  cluster: {server: https://x}\ncontexts:\n- name: other\n  context: {cluster: other, user: other}\ncurrent-context: other\nusers:\n- name: other\n  user: {token: t}\n",
        )
        .unwrap();
        let c = Credentials {
            server: "https://127.0.0.1:1".into(),
            ca_pem: "CA",
            cert_pem: "CERT",
            key_pem: "KEY",
        };
        merge(&path, &c).unwrap();
        let c2 = Credentials {
            server: "https://127.0.0.1:2".into(),
            ..c
        };
        merge(&path, &c2).unwrap();
        let doc: Value = serde_yaml_ng::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(doc["current-context"], "rkube");
        let clusters = doc["clusters"].as_sequence().unwrap();
        assert_eq!(clusters.len(), 2);
        let rk = clusters.iter().find(|c| c["name"] == "rkube").unwrap();
        assert_eq!(rk["cluster"]["server"], "https://127.0.0.1:2");
        assert_eq!(doc["contexts"].as_sequence().unwrap().len(), 2);
        assert_eq!(doc["users"][1]["user"]["client-key-data"], "S0VZ");
    }

    #[tokio::test]
    async fn balancer_skips_a_dead_member() {
        let live = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let live_addr = live.local_addr().unwrap();
        let dead = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let dead_addr = dead.local_addr().unwrap();
        drop(dead);
        tokio::spawn(async move {
            let (mut s, _) = live.accept().await.unwrap();
            use tokio::io::AsyncWriteExt;
            s.write_all(b"hello").await.unwrap();
        });
        let lb = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let lb_addr = lb.local_addr().unwrap();
        tokio::spawn(balance(lb, vec![dead_addr, live_addr]));
        let mut c = TcpStream::connect(lb_addr).await.unwrap();
        let mut buf = Vec::new();
        use tokio::io::AsyncReadExt;
        c.read_to_end(&mut buf).await.unwrap();
        assert_eq!(buf, b"hello");
    }
}
