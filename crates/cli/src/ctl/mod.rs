//! `rkube ctl`: kubectl's everyday commands over the rkube API.

mod apply;
mod auth;
mod can_i;
mod certificate;
mod cluster;
mod get;
mod logs;
mod rollout;
mod rollout_sets;
mod top;

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use client::{Client, ClientConfig};
use rkube_proto::api::{ApiResource, TypeRef};

#[derive(Args)]
pub struct CtlArgs {
    /// Apiserver endpoints, comma-separated (or RKUBE_SERVER).
    #[arg(long, env = "RKUBE_SERVER", global = true)]
    server: Option<String>,
    /// Client configuration file (or RKUBE_CONFIG; default ~/.rkube/config).
    #[arg(long, env = "RKUBE_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// Bearer token (or RKUBE_TOKEN).
    #[arg(long, env = "RKUBE_TOKEN", global = true)]
    token: Option<String>,
    /// Namespace of namespaced objects.
    #[arg(short, long, global = true)]
    namespace: Option<String>,
    /// Act as this user (the credentials must be allowed to impersonate it).
    #[arg(long = "as", global = true)]
    as_user: Option<String>,
    /// Act as a member of this group too (with `--as`); repeatable.
    #[arg(long = "as-group", global = true)]
    as_groups: Vec<String>,
    #[command(subcommand)]
    command: CtlCommand,
}

#[derive(Subcommand)]
enum CtlCommand {
    /// List or show objects: `get pods`, `get deploy/web -o yaml`.
    Get(get::GetArgs),
    /// Show an object in detail.
    Describe(get::DescribeArgs),
    /// Create or update objects from manifests (files or directories, multi-document YAML).
    Apply(apply::FileArgs),
    /// Create objects from manifests (existing ones are an error), or `create token SA`.
    Create(auth::CreateArgs),
    /// Delete objects by name, or those in manifests.
    Delete(apply::DeleteArgs),
    /// The control-plane members.
    Cluster(cluster::ClusterArgs),
    /// The kinds the server serves.
    ApiResources,
    /// Manage the rollout of a Deployment, StatefulSet or DaemonSet.
    Rollout(rollout::RolloutArgs),
    /// Set the replica count of a Deployment, ReplicaSet or StatefulSet.
    Scale(rollout::ScaleArgs),
    /// Inspect authentication: `auth whoami`.
    Auth(auth::AuthArgs),
    /// Resource usage: `top pods [NAME] [--containers]`.
    Top(top::TopArgs),
    /// A container's logs: `logs POD [-c C] [-f] [--previous] [--tail N]`.
    Logs(logs::LogsArgs),
    /// Run a command in a container: `exec POD [-c C] -- CMD ARGS…`.
    Exec(logs::ExecArgs),
    /// Approve or deny CertificateSigningRequests: `certificate approve NAME…`.
    Certificate(certificate::CertificateArgs),
}

pub struct Ctx {
    pub client: Client,
    pub namespace: Option<String>,
    resources: Vec<ApiResource>,
}

impl Ctx {
    pub fn namespace(&self) -> String {
        self.namespace.clone().unwrap_or_else(|| "default".into())
    }

    /// The kind a user means by `pods`, `po`, `pod`, `Pod`, `deployments.apps`…
    pub fn resolve(&self, what: &str) -> anyhow::Result<&ApiResource> {
        let w = what.to_lowercase();
        let (name, group) = match w.split_once('.') {
            Some((n, g)) => (n.to_string(), Some(g.to_string())),
            None => (w.clone(), None),
        };
        let mut found: Vec<&ApiResource> = self
            .resources
            .iter()
            .filter(|r| {
                (r.name == name
                    || r.singular_name == name
                    || r.kind.to_lowercase() == name
                    || r.short_names.contains(&name))
                    && group.as_ref().is_none_or(|g| r.group == *g)
            })
            .collect();
        // The core group wins over others (`events` is core/v1 before events.k8s.io).
        found.sort_by_key(|r| !r.group.is_empty());
        found
            .first()
            .copied()
            .with_context(|| format!("the server doesn't have a resource type {what:?}"))
    }

    pub fn by_kind(&self, api_version: &str, kind: &str) -> anyhow::Result<&ApiResource> {
        self.resources
            .iter()
            .find(|r| type_ref(r).api_version == api_version && r.kind == kind)
            .with_context(|| format!("no kind {kind:?} is registered for version {api_version:?}"))
    }

    pub async fn refresh(&mut self) -> anyhow::Result<()> {
        self.resources = self.client.discovery().await?;
        Ok(())
    }
}

pub fn type_ref(r: &ApiResource) -> TypeRef {
    TypeRef {
        api_version: if r.group.is_empty() {
            r.version.clone()
        } else {
            format!("{}/{}", r.group, r.version)
        },
        kind: r.kind.clone(),
    }
}

fn client_config(args: &CtlArgs) -> anyhow::Result<ClientConfig> {
    let mut cfg = resolve_client_config(
        args.server.as_deref(),
        args.config.as_deref(),
        args.token.as_deref(),
    )?;
    cfg.impersonate_user = args.as_user.clone();
    cfg.impersonate_groups = args.as_groups.clone();
    Ok(cfg)
}

/// The client configuration from `--server`, else `--config`, else ~/.rkube/config; a
/// `--token` overrides the file's.
pub fn resolve_client_config(
    server: Option<&str>,
    config: Option<&std::path::Path>,
    token: Option<&str>,
) -> anyhow::Result<ClientConfig> {
    let mut cfg = if let Some(s) = server {
        ClientConfig::from_servers(s)
    } else {
        let path = config
            .map(|p| p.to_path_buf())
            .or_else(ClientConfig::default_path)
            .context("no --server, RKUBE_SERVER or config file")?;
        if !path.exists() {
            bail!(
                "no apiserver given: pass --server, set RKUBE_SERVER, or write {}",
                path.display()
            );
        }
        ClientConfig::load(&path)?
    };
    if let Some(t) = token {
        cfg.token = Some(t.to_string());
    }
    Ok(cfg)
}

pub async fn run(args: CtlArgs) -> anyhow::Result<()> {
    let client = Client::new(client_config(&args)?)?;
    // As kubectl: admission warnings go to standard error.
    client.on_warning(std::sync::Arc::new(|w: &str| eprintln!("Warning: {w}")));
    let mut ctx = Ctx {
        client,
        namespace: args.namespace.clone(),
        resources: Vec::new(),
    };
    if let CtlCommand::Cluster(c) = &args.command {
        return cluster::run(&ctx, c).await;
    }
    ctx.refresh().await?;
    match &args.command {
        CtlCommand::Get(g) => get::get(&ctx, g).await,
        CtlCommand::Describe(d) => get::describe(&ctx, d).await,
        CtlCommand::Apply(f) => apply::apply(&mut ctx, f, true).await,
        CtlCommand::Create(c) => match &c.what {
            Some(auth::CreateWhat::Token(t)) => auth::create_token(&ctx, t).await,
            None if c.files.is_empty() => {
                bail!("create: give manifests with -f, or a subcommand (token)")
            }
            None => apply::apply(&mut ctx, &apply::FileArgs::new(c.files.clone()), false).await,
        },
        CtlCommand::Auth(a) => auth::auth(&ctx, a).await,
        CtlCommand::Top(t) => top::top(&ctx, t).await,
        CtlCommand::Logs(l) => logs::logs(&ctx, l).await,
        CtlCommand::Exec(e) => logs::exec(&ctx, e).await,
        CtlCommand::Certificate(c) => certificate::run(&ctx, c).await,
        CtlCommand::Delete(d) => apply::delete(&mut ctx, d).await,
        CtlCommand::ApiResources => {
            println!(
                "{:<32} {:<12} {:<32} {:<11} KIND",
                "NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED"
            );
            for r in &ctx.resources {
                println!(
                    "{:<32} {:<12} {:<32} {:<11} {}",
                    r.name,
                    r.short_names.join(","),
                    type_ref(r).api_version,
                    r.namespaced,
                    r.kind
                );
            }
            Ok(())
        }
        CtlCommand::Rollout(r) => rollout::rollout(&ctx, r).await,
        CtlCommand::Scale(s) => rollout::scale(&ctx, s).await,
        CtlCommand::Cluster(_) => unreachable!("handled above"),
    }
}
