//! The `rkube` binary: every rkube component behind one command.
//!
//! `main` only parses options and calls the component's library `run`; tests start the
//! same binary.

mod apiserver_cmd;
mod connect;
mod controller_manager_cmd;
mod ctl;
mod node_cmd;
mod proxy_cmd;
mod scheduler_cmd;
mod store_cmd;
mod up;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "rkube",
    version,
    about = "A Kubernetes-style control plane with a built-in Raft store"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one member of the replicated store, serving the etcd v3 API.
    Store(store_cmd::StoreArgs),
    /// Run one control-plane member: the store and the API server.
    Apiserver(apiserver_cmd::ApiServerArgs),
    /// Run one control-plane member with every control-plane component (as k3s does).
    Server(Box<apiserver_cmd::ServerArgs>),
    /// Run the scheduler: place pending pods on nodes.
    Scheduler(scheduler_cmd::SchedulerArgs),
    /// Run every controller (ReplicaSet, Deployment, Endpoints, ServiceAccount, …).
    ControllerManager(controller_manager_cmd::ControllerManagerArgs),
    /// Talk to a cluster, as kubectl does.
    Ctl(ctl::CtlArgs),
    /// Run a node agent: the kubelet with a container runtime.
    Node(node_cmd::NodeArgs),
    /// Start a local cluster: control-plane members and worker nodes, one process each.
    Up(up::UpArgs),
    /// Run the service proxy of a node on its own (`rkube node` runs it too).
    Proxy(proxy_cmd::ProxyArgs),
    /// The per-container shim of the process runtime (started by `rkube node`).
    #[command(hide = true)]
    NodeShim(node_cmd::ShimArgs),
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,openraft=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    if let Command::NodeShim(args) = cli.command {
        return node_cmd::shim(args);
    }
    let rt = tokio::runtime::Runtime::new()?;
    match cli.command {
        Command::Store(args) => rt.block_on(store_cmd::run(args)),
        Command::Apiserver(args) => rt.block_on(apiserver_cmd::run(args, None)),
        Command::Server(args) => rt.block_on(apiserver_cmd::run_server(*args)),
        Command::Scheduler(args) => rt.block_on(scheduler_cmd::run(args)),
        Command::ControllerManager(args) => rt.block_on(controller_manager_cmd::run(args)),
        Command::Ctl(args) => rt.block_on(ctl::run(args)),
        Command::Node(args) => {
            let stop_pods = rt.block_on(node_cmd::run(&args))?;
            // Every task of the agent goes with its runtime; then the pods are stopped.
            rt.shutdown_timeout(std::time::Duration::from_secs(2));
            if stop_pods {
                tokio::runtime::Runtime::new()?.block_on(node_cmd::stop_pods(
                    &args,
                    std::time::Duration::from_secs(5),
                ))?;
            }
            Ok(())
        }
        Command::Proxy(args) => rt.block_on(proxy_cmd::run(args)),
        Command::Up(args) => rt.block_on(up::run(args)),
        Command::NodeShim(_) => unreachable!("handled above"),
    }
}
