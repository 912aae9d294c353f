//! `rkube ctl rollout status|history|undo|restart|pause|resume` and `rkube ctl scale`, as
//! kubectl has them: for Deployments, StatefulSets (their part in [`super::rollout_sets`])
//! and, for status and restart, DaemonSets.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use client::{Api, PatchParams};
use controllers::deployment::history::{self, HASH_LABEL};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::json;

use super::rollout_sets;
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
        /// `deployment/NAME`, `statefulset/NAME`, `daemonset/NAME` or `KIND NAME`.
        target: Vec<String>,
        /// Give up after this many seconds (0: wait forever).
        #[arg(long, default_value_t = 0)]
        timeout: u64,
    },
    /// The revisions of a Deployment or StatefulSet.
    History { target: Vec<String> },
    /// Roll back to the previous revision, or to --to-revision.
    Undo {
        target: Vec<String>,
        #[arg(long, default_value_t = 0)]
        to_revision: i64,
    },
    /// Replace every pod, by stamping the pod template with the time.
    Restart { target: Vec<String> },
    /// Stop rolling out template changes.
    Pause { target: Vec<String> },
    /// Roll out template changes again.
    Resume { target: Vec<String> },
}

#[derive(Args)]
pub struct ScaleArgs {
    /// `deployment/NAME`, `rs/NAME`, `sts/NAME`, or `deployment NAME`.
    target: Vec<String>,
    #[arg(long)]
    replicas: i32,
}

/// What a rollout command works on.
enum Target {
    Deployment(String),
    StatefulSet(String),
    DaemonSet(String),
}

impl Target {
    fn parse(target: &[String]) -> anyhow::Result<Target> {
        let (kind, name) = split_target(target)?;
        let kind = kind.strip_suffix(".apps").unwrap_or(&kind);
        Ok(match kind {
            "deployment" | "deployments" | "deploy" => Target::Deployment(name),
            "statefulset" | "statefulsets" | "sts" => Target::StatefulSet(name),
            "daemonset" | "daemonsets" | "ds" => Target::DaemonSet(name),
            other => {
                bail!("rollout works on deployments, statefulsets and daemonsets, not {other:?}")
            }
        })
    }
}

/// The Deployment a target names.
fn deployment_name(target: &[String]) -> anyhow::Result<String> {
    match Target::parse(target)? {
        Target::Deployment(name) => Ok(name),
        _ => bail!("this works on deployments only"),
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
            wait_rolled_out(ctx, Target::parse(target)?, *timeout).await
        }
        RolloutCommand::History { target } => match Target::parse(target)? {
            Target::Deployment(name) => print_history(ctx, &api, &name).await,
            Target::StatefulSet(name) => rollout_sets::statefulset_history(ctx, &name).await,
            Target::DaemonSet(_) => bail!("rollout history works on deployments and statefulsets"),
        },
        RolloutCommand::Undo {
            target,
            to_revision,
        } => match Target::parse(target)? {
            Target::Deployment(name) => undo(ctx, &api, &name, *to_revision).await,
            Target::StatefulSet(name) => {
                rollout_sets::statefulset_undo(ctx, &name, *to_revision).await
            }
            Target::DaemonSet(_) => bail!("rollout undo works on deployments and statefulsets"),
        },
        RolloutCommand::Restart { target } => restart(ctx, Target::parse(target)?).await,
        RolloutCommand::Pause { target } | RolloutCommand::Resume { target } => {
            let name = deployment_name(target)?;
            let pause = matches!(args.command, RolloutCommand::Pause { .. });
            set_paused(&api, &name, pause).await
        }
    }
}

/// Whether the rollout `target` names is done, and kubectl's words for where it stands.
async fn rollout_status(ctx: &Ctx, target: &Target) -> anyhow::Result<(bool, String)> {
    let (c, ns) = (ctx.client.clone(), ctx.namespace());
    match target {
        Target::Deployment(name) => {
            status_message(&Api::<Deployment>::namespaced(c, &ns).get(name).await?)
        }
        Target::StatefulSet(name) => rollout_sets::statefulset_status(
            &Api::<StatefulSet>::namespaced(c, &ns).get(name).await?,
        ),
        Target::DaemonSet(name) => {
            rollout_sets::daemonset_status(&Api::<DaemonSet>::namespaced(c, &ns).get(name).await?)
        }
    }
}

/// `rollout status`: prints each new status line until the rollout is done; `timeout`
/// seconds (0: none) bound the wait.
async fn wait_rolled_out(ctx: &Ctx, target: Target, timeout: u64) -> anyhow::Result<()> {
    let start = Instant::now();
    let mut last = String::new();
    loop {
        let (done, msg) = rollout_status(ctx, &target).await?;
        if msg != last {
            println!("{msg}");
            last = msg;
        }
        if done {
            return Ok(());
        }
        if timeout > 0 && start.elapsed() > Duration::from_secs(timeout) {
            bail!("timed out waiting for the rollout to finish");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// `rollout history`: the revisions of the Deployment with their change causes.
async fn print_history(ctx: &Ctx, api: &Api<Deployment>, name: &str) -> anyhow::Result<()> {
    let d = api.get(name).await?;
    let rss = owned_replicasets(ctx, &d).await?;
    print_revisions(
        &format!("deployment.apps/{name}"),
        rss.iter().map(|rs| (history::revision(rs), &rs.metadata)),
    );
    Ok(())
}

/// `rollout history`'s table: each revision with its change cause.
pub(super) fn print_revisions<'a>(
    what: &str,
    revisions: impl IntoIterator<Item = (i64, &'a ObjectMeta)>,
) {
    println!("{what}");
    println!("REVISION  CHANGE-CAUSE");
    for (n, meta) in revisions {
        let cause = meta
            .annotations
            .as_ref()
            .and_then(|a| a.get("kubernetes.io/change-cause"))
            .map_or("<none>", String::as_str);
        println!("{n:<9} {cause}");
    }
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

/// `rollout restart`: a new template annotation, so that every pod is replaced as in a
/// rollout.
async fn restart(ctx: &Ctx, target: Target) -> anyhow::Result<()> {
    let (c, ns) = (ctx.client.clone(), ctx.namespace());
    let now = client::events::now();
    // RFC 3339 to the second, as kubectl writes it.
    let at = k8s_openapi::jiff::Timestamp::from_second(now.as_second())
        .unwrap_or(now)
        .to_string();
    let patch = json!({"spec": {"template": {"metadata": {"annotations": {
        "kubectl.kubernetes.io/restartedAt": at}}}}});
    let name = match target {
        Target::Deployment(name) => {
            let api = Api::<Deployment>::namespaced(c, &ns);
            if api.get(&name).await?.spec.paused == Some(true) {
                bail!("can't restart paused deployment (run rollout resume first)");
            }
            api.patch(&name, PatchParams::Merge, &patch).await?;
            format!("deployment.apps/{name}")
        }
        Target::StatefulSet(name) => {
            Api::<StatefulSet>::namespaced(c, &ns)
                .patch(&name, PatchParams::Merge, &patch)
                .await?;
            format!("statefulset.apps/{name}")
        }
        Target::DaemonSet(name) => {
            Api::<DaemonSet>::namespaced(c, &ns)
                .patch(&name, PatchParams::Merge, &patch)
                .await?;
            format!("daemonset.apps/{name}")
        }
    };
    println!("{name} restarted");
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
        "statefulset" | "statefulsets" | "sts" => {
            Api::<StatefulSet>::namespaced(ctx.client.clone(), &ns)
                .patch(&name, PatchParams::Merge, &patch)
                .await?;
            println!("statefulset.apps/{name} scaled");
        }
        other => bail!("scale works on deployments, replicasets and statefulsets, not {other:?}"),
    }
    Ok(())
}
