//! `rkube ctl top pods`: cpu and memory per pod, from the PodMetrics kubelets publish.

use clap::Args;
use client::metrics::PodMetrics;
use client::{Api, ListParams};

use super::Ctx;

#[derive(Args)]
pub struct TopArgs {
    /// `pods` (or `pod`, `po`).
    what: String,
    /// A pod name; all pods of the namespace when left out.
    name: Option<String>,
    /// Show each container.
    #[arg(long)]
    containers: bool,
    /// Every namespace.
    #[arg(short = 'A', long)]
    all_namespaces: bool,
}

fn milli(q: Option<&k8s_openapi::apimachinery::pkg::api::resource::Quantity>) -> i64 {
    q.and_then(|q| client::quantity::parse_milli(&q.0))
        .unwrap_or(0)
}

fn bytes(q: Option<&k8s_openapi::apimachinery::pkg::api::resource::Quantity>) -> i64 {
    q.and_then(|q| client::quantity::parse(&q.0)).unwrap_or(0)
}

pub async fn top(ctx: &Ctx, a: &TopArgs) -> anyhow::Result<()> {
    if !matches!(a.what.as_str(), "pods" | "pod" | "po") {
        anyhow::bail!("top {:?}: only `top pods` is supported", a.what);
    }
    let api = if a.all_namespaces {
        Api::<PodMetrics>::all(ctx.client.clone())
    } else {
        Api::<PodMetrics>::namespaced(ctx.client.clone(), &ctx.namespace())
    };
    let mut items = api.list(&ListParams::default()).await?.items;
    if let Some(n) = &a.name {
        items.retain(|m| m.metadata.name.as_deref() == Some(n));
        if items.is_empty() {
            anyhow::bail!("metrics not available yet for pod {n:?}");
        }
    }
    let ns_col = if a.all_namespaces {
        format!("{:<20} ", "NAMESPACE")
    } else {
        String::new()
    };
    if a.containers {
        println!(
            "{ns_col}{:<40} {:<24} {:>10} {:>14}",
            "POD", "NAME", "CPU(cores)", "MEMORY(bytes)"
        );
    } else {
        println!(
            "{ns_col}{:<40} {:>10} {:>14}",
            "NAME", "CPU(cores)", "MEMORY(bytes)"
        );
    }
    for m in items {
        let name = m.metadata.name.clone().unwrap_or_default();
        let ns = if a.all_namespaces {
            format!("{:<20} ", m.metadata.namespace.clone().unwrap_or_default())
        } else {
            String::new()
        };
        if a.containers {
            for c in &m.containers {
                println!(
                    "{ns}{name:<40} {:<24} {:>10} {:>14}",
                    c.name,
                    format!("{}m", milli(c.usage.get("cpu"))),
                    format!("{}Mi", bytes(c.usage.get("memory")) / (1 << 20))
                );
            }
        } else {
            let cpu: i64 = m.containers.iter().map(|c| milli(c.usage.get("cpu"))).sum();
            let mem: i64 = m
                .containers
                .iter()
                .map(|c| bytes(c.usage.get("memory")))
                .sum();
            println!(
                "{ns}{name:<40} {:>10} {:>14}",
                format!("{cpu}m"),
                format!("{}Mi", mem / (1 << 20))
            );
        }
    }
    Ok(())
}
