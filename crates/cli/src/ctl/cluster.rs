//! `rkube ctl cluster members|status|add-member|remove-member`.

use clap::{Args, Subcommand};
use rkube_proto::api::{AddMemberRequest, RemoveMemberRequest};

use super::Ctx;

#[derive(Args)]
pub struct ClusterArgs {
    #[command(subcommand)]
    cmd: ClusterCmd,
}

#[derive(Subcommand)]
enum ClusterCmd {
    /// Every member, and which one leads.
    Members,
    /// Each member's own view: leader, term, revision.
    Status,
    /// Add a member by the address of its Raft listener; then start it with
    /// --initial-cluster-state existing.
    AddMember {
        name: String,
        /// host:port of its Raft listener.
        peer_url: String,
    },
    /// Remove a member by name or hex id.
    RemoveMember { name: String },
}

pub async fn run(ctx: &Ctx, args: &ClusterArgs) -> anyhow::Result<()> {
    let print = |m: rkube_proto::api::MembersResponse| {
        println!(
            "{:<18} {:<12} {:<8} {:<30} PEER",
            "ID", "NAME", "LEADER", "CLIENT"
        );
        for x in m.members {
            println!(
                "{:<18} {:<12} {:<8} {:<30} {}",
                format!("{:x}", x.id),
                x.name,
                if x.id == m.leader_id { "*" } else { "" },
                x.client_urls.join(","),
                x.peer_urls.join(",")
            );
        }
    };
    match &args.cmd {
        ClusterCmd::Members => print(ctx.client.members().await?),
        ClusterCmd::Status => {
            let m = ctx.client.members().await?;
            println!(
                "{:<12} {:<30} {:<8} {:<8} {:<10} {:<8}",
                "NAME", "ENDPOINT", "LEADER", "TERM", "REVISION", "OBJECTS"
            );
            for x in m.members {
                for ep in &x.client_urls {
                    match ctx.client.member_status(ep).await {
                        Ok(s) => println!(
                            "{:<12} {:<30} {:<8} {:<8} {:<10} {:<8}",
                            s.name,
                            ep,
                            if s.leader_id == s.member_id {
                                "yes"
                            } else {
                                "no"
                            },
                            s.raft_term,
                            s.revision,
                            s.cached_objects
                        ),
                        Err(e) => println!("{:<12} {:<30} unreachable: {e}", x.name, ep),
                    }
                }
            }
        }
        ClusterCmd::AddMember { name, peer_url } => print(
            ctx.client
                .add_member(AddMemberRequest {
                    name: name.clone(),
                    peer_url: peer_url.clone(),
                })
                .await?,
        ),
        ClusterCmd::RemoveMember { name } => {
            let id = u64::from_str_radix(name, 16).unwrap_or(0);
            let m = ctx.client.members().await?;
            let id = m
                .members
                .iter()
                .find(|x| x.name == *name || (id != 0 && x.id == id))
                .map(|x| x.id)
                .ok_or_else(|| anyhow::anyhow!("no member {name:?}"))?;
            print(
                ctx.client
                    .remove_member(RemoveMemberRequest {
                        id,
                        name: String::new(),
                    })
                    .await?,
            )
        }
    }
    Ok(())
}
