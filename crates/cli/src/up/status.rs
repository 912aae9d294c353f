//! `rkube up --status`: the cluster in `--dir` at a glance — whether `rkube up` runs, each
//! member (its process, API address, readiness, and who leads) and each node (its process
//! and Ready condition), asked with the cluster's admin configuration.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use k8s_openapi::api::core::v1::Node;

use super::plan::{self, Proc};

fn process(p: &Proc) -> String {
    match p.pid {
        Some(pid) if plan::alive(pid) => format!("running (pid {pid})"),
        _ => "not running".into(),
    }
}

fn node_ready(n: &Node) -> &'static str {
    let ready = n
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .find(|c| c.type_ == "Ready");
    match ready.map(|c| c.status.as_str()) {
        Some("True") => "Ready",
        Some(_) => "NotReady",
        None => "not registered",
    }
}

pub async fn print(dir: &Path) -> anyhow::Result<()> {
    let state = plan::load(dir).with_context(|| {
        format!(
            "{} holds no cluster of `rkube up` (no up.json)",
            dir.display()
        )
    })?;
    match state.pid.filter(|p| plan::alive(*p)) {
        Some(pid) => println!("rkube up: running (pid {pid}) in {}", dir.display()),
        None => println!("rkube up: not running in {}", dir.display()),
    }
    let config = std::fs::read_to_string(dir.join("config"))
        .with_context(|| format!("reading {}", dir.join("config").display()))?;
    let admin = client::ClientConfig::parse(&config)?;
    let ca = admin
        .ca
        .as_ref()
        .map(std::fs::read_to_string)
        .transpose()?
        .context("the admin configuration names no CA")?;
    let tls = pki::client_config(&ca, None)?;
    let client = client::Client::new(admin)?;
    let ask = Duration::from_secs(3);
    let members = tokio::time::timeout(ask, client.members())
        .await
        .ok()
        .and_then(Result::ok);
    let leader = members.as_ref().and_then(|r| {
        r.members
            .iter()
            .find(|m| m.id == r.leader_id && r.leader_id != 0)
            .map(|m| m.name.clone())
    });
    println!(
        "members (leader: {}):",
        leader.as_deref().unwrap_or("none known")
    );
    for m in &state.members {
        let ready = match m.api {
            Some(a) => tokio::time::timeout(ask, pki::https_get(a, "/readyz", tls.clone()))
                .await
                .ok()
                .and_then(Result::ok)
                .and_then(|out| out.lines().next().map(str::to_string))
                .map_or("no answer".to_string(), |l| {
                    if l.contains(" 200") {
                        "ready".into()
                    } else {
                        l
                    }
                }),
            None => "no API address".into(),
        };
        let api = m.api.map_or("-".to_string(), |a| a.to_string());
        println!("  {:<4} {:<24} API {:<22} {ready}", m.name, process(m), api);
    }
    let nodes = tokio::time::timeout(
        ask,
        client::Api::<Node>::all(client.clone()).list(&Default::default()),
    )
    .await
    .ok()
    .and_then(Result::ok)
    .map(|l| l.items)
    .unwrap_or_default();
    println!("nodes:");
    for n in &state.nodes {
        let condition = nodes
            .iter()
            .find(|x| x.metadata.name.as_deref() == Some(n.name.as_str()))
            .map_or("unknown (no answer from the API)", node_ready);
        println!("  {:<4} {:<24} {condition}", n.name, process(n));
    }
    if let Some(p) = &state.provider {
        println!("cloud provider: {}", process(p));
    }
    Ok(())
}
