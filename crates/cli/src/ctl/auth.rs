//! `rkube ctl create token` and `rkube ctl auth whoami`.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use rkube_proto::api::CreateTokenRequest;
use serde_json::{json, Value};

use super::Ctx;

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct CreateArgs {
    #[command(subcommand)]
    pub what: Option<CreateWhat>,
    /// Manifest files or directories (`-` for stdin); repeatable.
    #[arg(short = 'f', long = "filename")]
    pub files: Vec<PathBuf>,
}

#[derive(Subcommand)]
pub enum CreateWhat {
    /// Request a token for a ServiceAccount (TokenRequest) and print it.
    Token(TokenArgs),
}

#[derive(Args)]
pub struct TokenArgs {
    /// The ServiceAccount.
    name: String,
    /// Seconds the token is valid (at least 600).
    #[arg(long)]
    duration: Option<i64>,
    /// Audiences of the token; repeatable. Default: the apiserver.
    #[arg(long = "audience")]
    audiences: Vec<String>,
    /// Bind the token to this pod: it dies with the pod.
    #[arg(long)]
    bound_pod: Option<String>,
}

#[derive(Args)]
pub struct AuthArgs {
    #[command(subcommand)]
    what: AuthWhat,
}

#[derive(Subcommand)]
enum AuthWhat {
    /// Who the server says you are (SelfSubjectReview).
    Whoami,
    /// Whether you may do something: `can-i VERB RESOURCE[/NAME]`, or `can-i --list`.
    CanI(super::can_i::CanIArgs),
}

pub async fn create_token(ctx: &Ctx, t: &TokenArgs) -> anyhow::Result<()> {
    let mut spec = json!({ "audiences": t.audiences });
    if let Some(d) = t.duration {
        spec["expirationSeconds"] = d.into();
    }
    if let Some(p) = &t.bound_pod {
        spec["boundObjectRef"] = json!({"kind": "Pod", "apiVersion": "v1", "name": p});
    }
    let resp = ctx
        .client
        .create_token(CreateTokenRequest {
            namespace: ctx.namespace(),
            name: t.name.clone(),
            json: serde_json::to_vec(&json!({ "spec": spec }))?.into(),
            secret_name: String::new(),
        })
        .await?;
    let v: Value = serde_json::from_slice(&resp.json)?;
    println!("{}", v["status"]["token"].as_str().unwrap_or_default());
    Ok(())
}

pub async fn auth(ctx: &Ctx, a: &AuthArgs) -> anyhow::Result<()> {
    match &a.what {
        AuthWhat::CanI(c) => return super::can_i::run(ctx, c).await,
        AuthWhat::Whoami => {
            let v: Value = serde_json::from_slice(&ctx.client.who_am_i().await?.json)?;
            let u = &v["status"]["userInfo"];
            println!("ATTRIBUTE   VALUE");
            println!("Username    {}", u["username"].as_str().unwrap_or_default());
            if let Some(uid) = u["uid"].as_str().filter(|s| !s.is_empty()) {
                println!("UID         {uid}");
            }
            let groups: Vec<&str> = u["groups"]
                .as_array()
                .map(|g| g.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            println!("Groups      [{}]", groups.join(" "));
        }
    }
    Ok(())
}
