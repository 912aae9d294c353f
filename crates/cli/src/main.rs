//! The `rkube` binary: every rkube component behind one command.
//!
//! `main` only parses options and calls the component's library `run`; tests start the
//! same binary.

mod apiserver_cmd;
mod cloud_cmd;
mod connect;
mod controller_manager_cmd;
mod ctl;
mod dns_flags;
mod join;
mod node_cmd;
mod proxy_cmd;
mod scheduler_cmd;
mod secure_port;
mod security;
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
    /// Run the loops that need a cloud provider (node initialization and lifecycle).
    CloudControllerManager(cloud_cmd::CloudControllerManagerArgs),
    /// Run a cloud provider plugin built into rkube.
    #[command(subcommand)]
    CloudProvider(cloud_cmd::ProviderCommand),
    /// Talk to a cluster, as kubectl does.
    Ctl(ctl::CtlArgs),
    /// Run a node agent: the kubelet with a container runtime.
    Node(node_cmd::NodeArgs),
    /// Start a local cluster: control-plane members and worker nodes, one process each.
    Up(up::UpArgs),
    /// Run the service proxy of a node on its own (`rkube node` runs it too).
    Proxy(proxy_cmd::ProxyArgs),
    /// Cluster tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// The per-container shim of the process runtime (started by `rkube node`).
    #[command(hide = true)]
    NodeShim(node_cmd::ShimArgs),
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Print a new cluster token (`K10<CA hash>::<secret>`) for `rkube server --token`.
    Generate,
    /// Make a bootstrap token and print the join token for `rkube node --token`.
    Create(join::CreateArgs),
    /// Write a node's client configuration (`system:node:<name>`), signed with the CA the
    /// cluster token yields, for `rkube node --config`.
    NodeConfig(security::NodeConfigArgs),
}

/// A member whose Raft core stopped on a fatal error serves nothing: it exits, so that its
/// supervisor restarts it from its durable state.
pub(crate) fn exit_on_fatal(error: &str) -> ! {
    tracing::error!(%error, "Raft stopped on a fatal error; exiting");
    eprintln!("rkube: Raft stopped on a fatal error: {error}");
    std::process::exit(70)
}

/// A panic inside openraft leaves the member's Raft stopped for good while the rest of the
/// process would run on; the process aborts instead, so a supervisor restarts it.
fn abort_on_raft_panic() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default(info);
        if info
            .location()
            .is_some_and(|l| l.file().contains("openraft"))
        {
            eprintln!("rkube: panic in the Raft core; aborting");
            std::process::abort();
        }
    }));
}

fn main() -> anyhow::Result<()> {
    up::exit_with_parent();
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
    abort_on_raft_panic();
    if matches!(
        cli.command,
        Command::Store(_) | Command::Apiserver(_) | Command::Server(_)
    ) {
        // Everything a member writes (data, keys, credentials) is its owner's alone. Node
        // agents set modes per file: pods' volumes must stay usable by their containers.
        rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    }
    let rt = tokio::runtime::Runtime::new()?;
    match cli.command {
        Command::Token(TokenCommand::Generate) => security::generate(),
        Command::Token(TokenCommand::Create(a)) => rt.block_on(join::create(&a)),
        Command::Token(TokenCommand::NodeConfig(a)) => security::node_config(&a),
        Command::Store(args) => rt.block_on(store_cmd::run(args)),
        Command::Apiserver(args) => rt.block_on(apiserver_cmd::run(args, None)),
        Command::Server(args) => rt.block_on(apiserver_cmd::run_server(*args)),
        Command::Scheduler(args) => rt.block_on(scheduler_cmd::run(args)),
        Command::ControllerManager(args) => rt.block_on(controller_manager_cmd::run(args)),
        Command::CloudControllerManager(args) => rt.block_on(cloud_cmd::run(args)),
        Command::CloudProvider(cmd) => rt.block_on(cloud_cmd::run_provider(cmd)),
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
