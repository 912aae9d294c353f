//! `rkube ctl logs` and `rkube ctl exec`, through the apiserver to the pod's node.

use std::io::Write;

use clap::Args;
use futures::StreamExt;
use rkube_proto::api::{ExecRequest, LogsRequest};

use super::Ctx;

#[derive(Args)]
pub struct LogsArgs {
    /// The pod (or `pod/NAME`).
    pod: String,
    /// The container (needed when the pod has more than one).
    #[arg(short = 'c', long)]
    container: Option<String>,
    /// Keep streaming new output.
    #[arg(short = 'f', long)]
    follow: bool,
    /// The previous container's logs (before its last restart).
    #[arg(short = 'p', long)]
    previous: bool,
    /// Only the last N lines.
    #[arg(long)]
    tail: Option<i64>,
    #[arg(long)]
    timestamps: bool,
}

#[derive(Args)]
pub struct ExecArgs {
    /// The pod (or `pod/NAME`).
    pod: String,
    #[arg(short = 'c', long)]
    container: Option<String>,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

fn pod_name(s: &str) -> String {
    s.strip_prefix("pod/")
        .or_else(|| s.strip_prefix("pods/"))
        .unwrap_or(s)
        .to_string()
}

pub async fn logs(ctx: &Ctx, a: &LogsArgs) -> anyhow::Result<()> {
    let mut s = ctx
        .client
        .pod_logs(LogsRequest {
            namespace: ctx.namespace(),
            pod: pod_name(&a.pod),
            container: a.container.clone().unwrap_or_default(),
            follow: a.follow,
            previous: a.previous,
            tail_lines: a.tail.unwrap_or(0),
            timestamps: a.timestamps,
            since_seconds: 0,
        })
        .await?;
    let mut out = std::io::stdout();
    while let Some(chunk) = s.next().await {
        let chunk = chunk.map_err(|e| anyhow::anyhow!("{}", e.message()))?;
        out.write_all(&chunk.data)?;
        out.flush()?;
    }
    Ok(())
}

/// Runs the command; the exit code of `rkube ctl` is the command's.
pub async fn exec(ctx: &Ctx, a: &ExecArgs) -> anyhow::Result<()> {
    let r = ctx
        .client
        .pod_exec(ExecRequest {
            namespace: ctx.namespace(),
            pod: pod_name(&a.pod),
            container: a.container.clone().unwrap_or_default(),
            command: a.command.clone(),
            timeout_seconds: 0,
        })
        .await?;
    std::io::stdout().write_all(&r.stdout)?;
    std::io::stderr().write_all(&r.stderr)?;
    if r.exit_code != 0 {
        std::process::exit(r.exit_code);
    }
    Ok(())
}
