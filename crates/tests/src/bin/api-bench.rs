//! Benchmark of the resource API against a 3-member `rkube server` cluster: pod creates/s
//! and latency, a fixed-rate run at the SLO's rate, LIST latency and apiserver RSS at 10k
//! and 100k pods, and watch fan-out to 1,000 watchers. Prints measured numbers.
//!
//! `cargo build --release --bin rkube && cargo run --release -p rkube-tests --bin api-bench`

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use client::Client;
use futures::StreamExt;
use parking_lot::Mutex;
use rkube_proto::api::{CreateRequest, ListRequest, Object, TypeRef, WatchRequest};
use rkube_tests::webhook_server::WebhookServer;
use rkube_tests::{api_object, Cluster, Flavor};
use serde_json::json;

#[derive(Parser)]
struct Args {
    /// Seconds of load per create row.
    #[arg(long, default_value_t = 5)]
    duration_secs: u64,
    #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
    clients: Vec<usize>,
    /// Creates/s of the fixed-rate row.
    #[arg(long, default_value_t = 1000)]
    rate: u64,
    #[arg(long, value_delimiter = ',', default_value = "10000,100000")]
    list_sizes: Vec<usize>,
    #[arg(long, default_value_t = 1000)]
    watchers: usize,
    /// Pods created while the watchers listen.
    #[arg(long, default_value_t = 200)]
    fanout_events: usize,
    /// Members with `--insecure-plaintext` instead of TLS (to measure what TLS costs).
    #[arg(long)]
    plaintext: bool,
    /// Who loads the cluster: `masters` (the administrator, allowed before any authorizer
    /// looks), `rbac` (a user granted `edit` by a ClusterRoleBinding, beside 1,000
    /// RoleBindings of others, under `Node,RBAC`), or `always-allow` (the same user, with
    /// `--authorization-mode=AlwaysAllow`).
    #[arg(long, value_parser = ["masters", "rbac", "always-allow"], default_value = "masters")]
    authz: String,
    /// Validating admission webhooks (HTTPS, served in this process, allowing everything)
    /// that every pod create calls.
    #[arg(long, default_value_t = 0)]
    webhooks: usize,
}

/// `n` ValidatingWebhookConfigurations, each calling `hook` for every pod create.
async fn register_webhooks(admin: &Client, hook: &WebhookServer, n: usize) {
    use base64::Engine as _;
    let bundle = base64::engine::general_purpose::STANDARD.encode(&hook.ca_pem);
    for i in 0..n {
        let v = json!({"metadata": {"name": format!("bench-{i}")}, "webhooks": [{
            "name": format!("bench-{i}.hooks.bench"),
            "clientConfig": {"url": format!("https://{}/validate", hook.addr), "caBundle": bundle},
            "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}],
            "sideEffects": "None", "admissionReviewVersions": ["v1"], "failurePolicy": "Fail"}]});
        admin
            .create(CreateRequest {
                object: Some(api_object(
                    "admissionregistration.k8s.io/v1",
                    "ValidatingWebhookConfiguration",
                    "",
                    v,
                )),
            })
            .await
            .expect("a webhook configuration");
    }
}

/// A client per member for a user granted `edit` everywhere, with 1,000 other RoleBindings
/// in the index beside its own.
async fn rbac_user(cluster: &Cluster, admin: &Client) -> Vec<Client> {
    let crb = json!({"metadata": {"name": "bench-edit"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "bench-user"}]});
    let rbac = |kind: &str, ns: &str, v: serde_json::Value| Object {
        r#type: Some(TypeRef {
            api_version: "rbac.authorization.k8s.io/v1".into(),
            kind: kind.into(),
        }),
        namespace: ns.into(),
        json: serde_json::to_vec(&v).unwrap_or_default().into(),
        ..Default::default()
    };
    admin
        .create(CreateRequest {
            object: Some(rbac("ClusterRoleBinding", "", crb)),
        })
        .await
        .expect("bind edit");
    for i in 0..1000 {
        let rb = json!({"metadata": {"name": format!("rb-{i}"), "namespace": "bench"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": format!("user-{i}")}]});
        admin
            .create(CreateRequest {
                object: Some(rbac("RoleBinding", "bench", rb)),
            })
            .await
            .expect("a RoleBinding");
    }
    let path = cluster.config_for("bench-user", "bench-user", &[]);
    let cfg = client::ClientConfig::load(&path).expect("bench-user configuration");
    (0..cluster.members.len())
        .map(|i| {
            let mut c = cfg.clone();
            c.servers = vec![cfg.servers[i].clone()];
            Client::new(c).expect("bench-user client")
        })
        .collect()
}

fn pod(ns: &str, name: &str) -> Object {
    let v = json!({"metadata": {"name": name, "namespace": ns, "labels": {"app": "bench"}},
        "spec": {"containers": [{"name": "c", "image": "busybox:1.36", "command": ["sleep", "3600"]}]}});
    api_object("v1", "Pod", ns, v)
}

fn namespace(name: &str) -> Object {
    api_object("v1", "Namespace", "", json!({"metadata": {"name": name}}))
}

fn pct(lat: &mut [Duration], q: f64) -> f64 {
    lat.sort();
    lat.get(((lat.len() as f64 * q) as usize).min(lat.len().saturating_sub(1)))
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

/// One client per member, so load spreads over every apiserver.
fn clients(cluster: &Cluster) -> Vec<Client> {
    (0..cluster.members.len())
        .map(|i| cluster.api_client_of(i))
        .collect()
}

/// `n` workers creating pods for `dur`, or until `total` pods are made; each worker
/// paces itself to `rate_each` creates/s when set.
async fn create_load(
    cs: &[Client],
    ns: &str,
    prefix: &str,
    n: usize,
    dur: Duration,
    total: Option<usize>,
    rate_each: Option<f64>,
) -> (usize, Duration, Vec<Duration>) {
    let start = Instant::now();
    let counter = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for w in 0..n {
        let c = cs[w % cs.len()].clone();
        let (ns, prefix, counter) = (ns.to_string(), prefix.to_string(), counter.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut k = 0u64;
            loop {
                let i = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if total.is_some_and(|t| i >= t) || (total.is_none() && start.elapsed() >= dur) {
                    break;
                }
                if let Some(r) = rate_each {
                    // Workers are spread evenly over each period, so the load arrives at a
                    // steady rate rather than in bursts of `n`.
                    let due = start + Duration::from_secs_f64((k as f64 + w as f64 / n as f64) / r);
                    tokio::time::sleep_until(due.into()).await;
                    k += 1;
                }
                let t = Instant::now();
                c.create(CreateRequest {
                    object: Some(pod(&ns, &format!("{prefix}-{w}-{i}"))),
                })
                .await
                .expect("create");
                lat.push(t.elapsed());
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    (all.len(), start.elapsed(), all)
}

async fn list_latency(c: &Client, ns: &str) -> (usize, f64) {
    let mut lat = Vec::new();
    let mut n = 0;
    for _ in 0..5 {
        let t = Instant::now();
        let l = c
            .list(ListRequest {
                r#type: Some(TypeRef {
                    api_version: "v1".into(),
                    kind: "Pod".into(),
                }),
                namespace: ns.into(),
                ..Default::default()
            })
            .await
            .expect("list");
        lat.push(t.elapsed());
        n = l.items.len();
    }
    (n, pct(&mut lat, 0.5))
}

fn rss_mb(cluster: &Cluster) -> String {
    (0..cluster.members.len())
        .map(|i| {
            format!(
                "{:.0}",
                cluster.rss_bytes(i).unwrap_or(0) as f64 / 1048576.0
            )
        })
        .collect::<Vec<_>>()
        .join(" / ")
}

/// The cluster the flags ask for, announced.
async fn start_cluster(args: &Args) -> Cluster {
    let extra: &[&str] = match args.authz.as_str() {
        "always-allow" => &["--authorization-mode=AlwaysAllow"],
        _ => &[],
    };
    let cluster = if args.plaintext {
        Cluster::start_plaintext(Flavor::Apiserver, 3, extra).await
    } else {
        Cluster::start(Flavor::Apiserver, 3, extra).await
    };
    println!(
        "API over {}, load as {}",
        if args.plaintext { "plaintext" } else { "TLS" },
        args.authz
    );
    cluster
}

/// A webhook server that allows every admission review.
async fn allow_all_webhook() -> WebhookServer {
    let allow: rkube_tests::webhook_server::Review = Arc::new(|_: &str, body: &[u8]| {
        let review: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
        json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "response": {"uid": review["request"]["uid"], "allowed": true}})
    });
    rkube_tests::webhook_server::start(allow).await
}

/// Rows of creates/s and latency, one per client count.
async fn create_rows(cs: &[Client], args: &Args, dur: Duration) {
    println!("\n| clients | creates/s | p50 ms | p99 ms |\n|---|---|---|---|");
    for &n in &args.clients {
        let (count, el, mut lat) =
            create_load(cs, "bench", &format!("c{n}"), n, dur, None, None).await;
        println!(
            "| {n} | {:.0} | {:.2} | {:.2} |",
            count as f64 / el.as_secs_f64(),
            pct(&mut lat, 0.5),
            pct(&mut lat, 0.99)
        );
    }
}

/// Creates at `--rate` per second, spread over 64 workers.
async fn fixed_rate(cs: &[Client], args: &Args, dur: Duration) {
    let workers = 64;
    let (count, el, mut lat) = create_load(
        cs,
        "bench",
        "rate",
        workers,
        dur,
        None,
        Some(args.rate as f64 / workers as f64),
    )
    .await;
    println!(
        "\nfixed rate {} creates/s ({workers} workers): achieved {:.0}/s, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        args.rate,
        count as f64 / el.as_secs_f64(),
        pct(&mut lat, 0.5),
        pct(&mut lat, 0.99),
        pct(&mut lat, 1.0)
    );
}

/// LIST latency and RSS with the `list` namespace filled to each of `--list-sizes`.
async fn list_rows(cluster: &Cluster, cs: &[Client], args: &Args, dur: Duration) {
    println!(
        "\n| pods | LIST p50 ms (all pods, one namespace) | RSS per member MB |\n|---|---|---|"
    );
    for &size in &args.list_sizes {
        let (have, _) = list_latency(&cs[0], "list").await;
        if have < size {
            let t = Instant::now();
            let (made, _, _) = create_load(
                cs,
                "list",
                &format!("fill{size}"),
                64,
                dur,
                Some(size - have),
                None,
            )
            .await;
            eprintln!("filled {made} pods in {:.1}s", t.elapsed().as_secs_f64());
        }
        let (n, p50) = list_latency(&cs[1], "list").await;
        println!("| {n} | {p50:.0} | {} |", rss_mb(cluster));
    }
}

/// `n` watchers of the `fanout` namespace, spread over members and connections; each
/// sends the delay of every pod named in `sent`. Resolves once every watch is open.
async fn start_watchers(
    cluster: &Cluster,
    n: usize,
    sent: &Arc<Mutex<HashMap<String, Instant>>>,
    tx: &tokio::sync::mpsc::UnboundedSender<Duration>,
) {
    let watch_clients: Vec<Client> = (0..30).map(|i| cluster.api_client_of(i % 3)).collect();
    let mut ready = Vec::new();
    for w in 0..n {
        let c = watch_clients[w % watch_clients.len()].clone();
        let (sent, tx) = (sent.clone(), tx.clone());
        let (rtx, rrx) = tokio::sync::oneshot::channel();
        ready.push(rrx);
        tokio::spawn(async move {
            let mut s = c
                .watch(WatchRequest {
                    r#type: Some(TypeRef {
                        api_version: "v1".into(),
                        kind: "Pod".into(),
                    }),
                    namespace: "fanout".into(),
                    resource_version: "0".into(),
                    ..Default::default()
                })
                .await
                .expect("watch");
            let _ = rtx.send(());
            while let Some(Ok(ev)) = s.next().await {
                let Some(o) = ev.object else { continue };
                let t0 = sent.lock().get(&o.name).copied();
                if let Some(t0) = t0 {
                    let _ = tx.send(t0.elapsed());
                }
            }
        });
    }
    for r in ready {
        let _ = r.await;
    }
}

/// Watch fan-out: `--fanout-events` creates, each delivered to `--watchers` watchers.
async fn watch_fanout(cluster: &Cluster, cs: &[Client], args: &Args) {
    let sent: Arc<Mutex<HashMap<String, Instant>>> = Default::default();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Duration>();
    start_watchers(cluster, args.watchers, &sent, &tx).await;
    drop(tx);
    let t = Instant::now();
    for i in 0..args.fanout_events {
        let name = format!("f-{i}");
        sent.lock().insert(name.clone(), Instant::now());
        cs[i % 3]
            .create(CreateRequest {
                object: Some(pod("fanout", &name)),
            })
            .await
            .expect("create");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let want = args.watchers * args.fanout_events;
    let mut lat = Vec::with_capacity(want);
    let deadline = Instant::now() + Duration::from_secs(60);
    while lat.len() < want && Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(5), rx.recv()).await {
            Ok(Some(d)) => lat.push(d),
            _ => break,
        }
    }
    println!(
        "\nwatch fan-out: {} watchers x {} creates in {:.1}s: {} of {want} events delivered, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        args.watchers,
        args.fanout_events,
        t.elapsed().as_secs_f64(),
        lat.len(),
        pct(&mut lat, 0.5),
        pct(&mut lat, 0.99),
        pct(&mut lat, 1.0)
    );
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let cluster = start_cluster(&args).await;
    let mut cs = clients(&cluster);
    for ns in ["bench", "fanout", "list"] {
        cs[0]
            .create(CreateRequest {
                object: Some(namespace(ns)),
            })
            .await
            .expect("create the namespace");
    }
    let hook = allow_all_webhook().await;
    register_webhooks(&cs[0], &hook, args.webhooks).await;
    println!("validating webhooks on pod creates: {}", args.webhooks);
    if args.authz != "masters" && !args.plaintext {
        cs = rbac_user(&cluster, &cs[0]).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    println!("idle RSS per member (MB): {}", rss_mb(&cluster));

    let dur = Duration::from_secs(args.duration_secs);
    create_rows(&cs, &args, dur).await;
    fixed_rate(&cs, &args, dur).await;
    list_rows(&cluster, &cs, &args, dur).await;
    watch_fanout(&cluster, &cs, &args).await;
    println!("RSS per member after fan-out (MB): {}", rss_mb(&cluster));
}
