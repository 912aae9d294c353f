//! `rkube ctl certificate approve|deny NAME…`: an administrator's decision on
//! CertificateSigningRequests, written through the `approval` subresource.

use anyhow::bail;
use clap::{Args, Subcommand};
use client::Api;
use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestCondition,
};

use super::Ctx;

#[derive(Args)]
pub struct CertificateArgs {
    #[command(subcommand)]
    decision: Decision,
}

#[derive(Subcommand)]
enum Decision {
    /// Approve requests: the signer then signs them.
    Approve(Names),
    /// Deny requests: they are never signed.
    Deny(Names),
}

#[derive(Args)]
struct Names {
    #[arg(required = true)]
    names: Vec<String>,
}

pub async fn run(ctx: &Ctx, a: &CertificateArgs) -> anyhow::Result<()> {
    let (type_, reason, names) = match &a.decision {
        Decision::Approve(n) => ("Approved", "KubectlApprove", &n.names),
        Decision::Deny(n) => ("Denied", "KubectlDeny", &n.names),
    };
    let api = Api::<CertificateSigningRequest>::all(ctx.client.clone());
    for name in names {
        let mut csr = api.get(name).await?;
        let st = csr.status.get_or_insert_with(Default::default);
        let conds = st.conditions.get_or_insert_with(Vec::new);
        let decided = |t: &str| conds.iter().any(|c| c.type_ == t && c.status == "True");
        if decided(type_) {
            println!(
                "certificatesigningrequest/{name} already {}",
                type_.to_lowercase()
            );
            continue;
        }
        if decided("Approved") || decided("Denied") {
            bail!("certificatesigningrequest/{name} is already decided the other way");
        }
        conds.push(CertificateSigningRequestCondition {
            type_: type_.into(),
            status: "True".into(),
            reason: Some(reason.into()),
            message: Some(format!(
                "This CSR was {} by rkube ctl certificate",
                type_.to_lowercase()
            )),
            last_update_time: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                client::events::now(),
            )),
            ..Default::default()
        });
        api.replace_approval(&csr).await?;
        println!("certificatesigningrequest/{name} {}", type_.to_lowercase());
    }
    Ok(())
}
