//! `rkube ctl rollout status|history|undo|pause|resume` and `rkube ctl scale`, as kubectl
//! has them for Deployments.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use client::{Api, PatchParams};
use controllers::deployment::history::{self, HASH_LABEL};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use serde_json::json;

use super::Ctx;

#[derive(Args)]
pub struct RolloutArgs {
    #[command(subcommand)]
    command: RolloutCommand,
}

#[derive(Subcommand)]
enum RolloutCommand {
    /// Wait until the rollout finishes (or fails).
    Status {
        /// `deployment/NAME`, `deploy/NAME` or `deployment NAME`.
        target: Vec<String>,
        /// Give up after this many seconds (0: wait forever).
        #[arg(long, default_value_t = 0)]
        timeout: u64,
    },
    /// The revisions of a Deployment.
    History { target: Vec<String> },
    /// Roll back to the previous revision, or to --to-revision.
    Undo {
        target: Vec<String>,
        #[arg(long, default_value_t = 0)]
        to_revision: i64,
    },
    /// Stop rolling out template changes.
    Pause { target: Vec<String> },
    /// Roll out template changes again.
    Resume { target: Vec<String> },
}

#[derive(Args)]
pub struct ScaleArgs {
    /// `deployment/NAME`, `rs/NAME`, or `deployment NAME`.
    target: Vec<String>,
    #[arg(long)]
    replicas: i32,
}

/// The Deployment a target names.
fn deployment_name(target: &[String]) -> anyhow::Result<String> {
    let (kind, name) = split_target(target)?;
    match kind.as_str() {
        "deployment" | "deployments" | "deploy" | "deployment.apps" | "deployments.apps" => {
            Ok(name)
        }
        other => bail!("rollout works on deployments, not {other:?}"),
    }
}

fn split_target(target: &[String]) -> anyhow::Result<(String, String)> {
    match target {
        [one] => one
            .split_once('/')
            .map(|(k, n)| (k.to_lowercase(), n.to_string()))
            .with_context(|| format!("{one:?}: expected KIND/NAME")),
        [kind, name] => Ok((kind.to_lowercase(), name.clone())),
        _ => bail!("expected KIND/NAME or KIND NAME"),
    }
}

async fn owned_replicasets(ctx: &Ctx, d: &Deployment) -> anyhow::Result<Vec<ReplicaSet>> {
    let rss = Api::<ReplicaSet>::namespaced(ctx.client.clone(), &ctx.namespace())
        .list(&Default::default())
        .await?
        .items;
    let uid = d.metadata.uid.clone().unwrap_or_default();
    let mut owned: Vec<ReplicaSet> = rss
        .into_iter()
        .filter(|rs| {
            rs.metadata
                .owner_references
                .iter()
                .flatten()
                .any(|r| r.uid == uid && r.controller == Some(true))
        })
        .collect();
    owned.sort_by_key(history::revision);
    Ok(owned)
}

pub async fn rollout(ctx: &Ctx, args: &RolloutArgs) -> anyhow::Result<()> {
    let api = Api::<Deployment>::namespaced(ctx.client.clone(), &ctx.namespace());
    match &args.command {
        RolloutCommand::Status { target, timeout } => {
            wait_rolled_out(&api, &deployment_name(target)?, *timeout).await
        }
        RolloutCommand::History { target } => {
            print_history(ctx, &api, &deployment_name(target)?).await
        }
        RolloutCommand::Undo {
            target,
            to_revision,
        } => undo(ctx, &api, &deployment_name(target)?, *to_revision).await,
        RolloutCommand::Pause { target } | RolloutCommand::Resume { target } => {
            let name = deployment_name(target)?;
            let pause = matches!(args.command, RolloutCommand::Pause { .. });
            set_paused(&api, &name, pause).await
        }
    }
}

/// `rollout status`: prints each new status line until the rollout is done; `timeout`
/// seconds (0: none) bound the wait.
async fn wait_rolled_out(api: &Api<Deployment>, name: &str, timeout: u64) -> anyhow::Result<()> {
    let start = Instant::now();
    let mut last = String::new();
    loop {
        let d = api.get(name).await?;
        let (done, msg) = status_message(&d)?;
        if msg != last {
            println!("{msg}");
            last = msg;
        }
        if done {
            return Ok(());
        }
        if timeout > 0 && start.elapsed() > Duration::from_secs(timeout) {
            bail!("timed out waiting for the rollout of deployment {name:?}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// `rollout history`: the revisions of the Deployment with their change causes.
async fn print_history(ctx: &Ctx, api: &Api<Deployment>, name: &str) -> anyhow::Result<()> {
    let d = api.get(name).await?;
    println!("deployment.apps/{name}");
    println!("REVISION  CHANGE-CAUSE");
    for rs in owned_replicasets(ctx, &d).await? {
        let cause = rs
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("kubernetes.io/change-cause"))
            .cloned()
            .unwrap_or_else(|| "<none>".into());
        println!("{:<9} {cause}", history::revision(&rs));
    }
    Ok(())
}

/// The revision to roll back to (`to_revision`, or the one before the current when 0)
/// and its pod template, without the pod-template-hash label.
fn rollback_target(rss: &[ReplicaSet], to_revision: i64) -> anyhow::Result<(i64, PodTemplateSpec)> {
    let current = rss.iter().map(history::revision).max().unwrap_or(0);
    let wanted = if to_revision > 0 {
        to_revision
    } else {
        rss.iter()
            .map(history::revision)
            .filter(|r| *r < current)
            .max()
            .context("no rollout history found")?
    };
    let rs = rss
        .iter()
        .find(|rs| history::revision(rs) == wanted)
        .with_context(|| format!("unable to find the specified revision {wanted}"))?;
    let mut template = rs
        .spec
        .template
        .clone()
        .context("the revision has no template")?;
    if let Some(l) = template.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        l.remove(HASH_LABEL);
    }
    Ok((wanted, template))
}

/// `rollout undo`: puts the template of an earlier revision back.
async fn undo(
    ctx: &Ctx,
    api: &Api<Deployment>,
    name: &str,
    to_revision: i64,
) -> anyhow::Result<()> {
    let d = api.get(name).await?;
    let rss = owned_replicasets(ctx, &d).await?;
    let (wanted, template) = rollback_target(&rss, to_revision)?;
    let patch = json!([{"op": "replace", "path": "/spec/template",
        "value": serde_json::to_value(&template)?}]);
    api.patch(name, PatchParams::Json, &patch).await?;
    println!("deployment.apps/{name} rolled back (to revision {wanted})");
    Ok(())
}

/// `rollout pause` and `rollout resume`.
async fn set_paused(api: &Api<Deployment>, name: &str, pause: bool) -> anyhow::Result<()> {
    api.patch(
        name,
        PatchParams::Merge,
        &json!({"spec": {"paused": pause}}),
    )
    .await?;
    println!(
        "deployment.apps/{name} {}",
        if pause { "paused" } else { "resumed" }
    );
    Ok(())
}

/// Whether the rollout is done, and kubectl's words for where it stands.
fn status_message(d: &Deployment) -> anyhow::Result<(bool, String)> {
    let name = d.metadata.name.clone().unwrap_or_default();
    let spec = d.spec.clone();
    let st = d.status.clone().unwrap_or_default();
    let want = spec.replicas.unwrap_or(1);
    if st.observed_generation.unwrap_or(0) < d.metadata.generation.unwrap_or(0) {
        return Ok((
            false,
            "Waiting for deployment spec update to be observed...".into(),
        ));
    }
    let deadline = st.conditions.iter().flatten().any(|c| {
        c.type_.as_deref() == Some("Progressing")
            && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
    });
    if deadline {
        bail!("deployment {name:?} exceeded its progress deadline");
    }
    let updated = st.updated_replicas.unwrap_or(0);
    let total = st.replicas.unwrap_or(0);
    let available = st.available_replicas.unwrap_or(0);
    if updated < want {
        return Ok((false, format!("Waiting for deployment {name:?} rollout to finish: {updated} out of {want} new replicas have been updated...")));
    }
    if total > updated {
        return Ok((false, format!("Waiting for deployment {name:?} rollout to finish: {} old replicas are pending termination...", total - updated)));
    }
    if available < updated {
        return Ok((false, format!("Waiting for deployment {name:?} rollout to finish: {available} of {updated} updated replicas are available...")));
    }
    Ok((true, format!("deployment {name:?} successfully rolled out")))
}

pub async fn scale(ctx: &Ctx, args: &ScaleArgs) -> anyhow::Result<()> {
    let (kind, name) = split_target(&args.target)?;
    let patch = json!({"spec": {"replicas": args.replicas}});
    let ns = ctx.namespace();
    match kind.as_str() {
        "deployment" | "deployments" | "deploy" => {
            Api::<Deployment>::namespaced(ctx.client.clone(), &ns)
                .patch(&name, PatchParams::Merge, &patch)
                .await?;
            println!("deployment.apps/{name} scaled");
        }
        "replicaset" | "replicasets" | "rs" => {
            Api::<ReplicaSet>::namespaced(ctx.client.clone(), &ns)
                .patch(&name, PatchParams::Merge, &patch)
                .await?;
            println!("replicaset.apps/{name} scaled");
        }
        other => bail!("scale works on deployments and replicasets, not {other:?}"),
    }
    Ok(())
}
