//! `rkube ctl auth can-i`: asks the apiserver's authorizers, through a
//! SelfSubjectAccessReview (or a SelfSubjectRulesReview with `--list`), as kubectl does.
//! Exits with status 1 on "no".

use clap::Args;
use rkube_proto::api::{CreateRequest, Object, TypeRef};
use serde_json::{json, Value};

use super::Ctx;

#[derive(Args)]
pub struct CanIArgs {
    /// The verb: get, list, create, delete, impersonate, … (not with `--list`).
    verb: Option<String>,
    /// The resource (`pods`, `deploy`, `pods/log`, `secrets/NAME`) or a path (`/metrics`).
    resource: Option<String>,
    /// In every namespace.
    #[arg(short = 'A', long)]
    all_namespaces: bool,
    /// The subresource (`log`, `status`, …).
    #[arg(long, default_value = "")]
    subresource: String,
    /// Every rule you hold in the namespace.
    #[arg(long)]
    list: bool,
}

fn review(kind: &str, spec: Value) -> anyhow::Result<Object> {
    Ok(Object {
        r#type: Some(TypeRef {
            api_version: "authorization.k8s.io/v1".into(),
            kind: kind.into(),
        }),
        json: serde_json::to_vec(&json!({"metadata": {}, "spec": spec}))?.into(),
        ..Default::default()
    })
}

async fn ask(ctx: &Ctx, kind: &str, spec: Value) -> anyhow::Result<Value> {
    let o = ctx
        .client
        .create(CreateRequest {
            object: Some(review(kind, spec)?),
        })
        .await?;
    Ok(serde_json::from_slice::<Value>(&o.json)?["status"].take())
}

pub async fn run(ctx: &Ctx, a: &CanIArgs) -> anyhow::Result<()> {
    if a.list {
        let st = ask(
            ctx,
            "SelfSubjectRulesReview",
            json!({"namespace": ctx.namespace()}),
        )
        .await?;
        print_rules(&st);
        return Ok(());
    }
    let (Some(verb), Some(what)) = (&a.verb, &a.resource) else {
        anyhow::bail!("auth can-i: give VERB and RESOURCE, or --list");
    };
    let spec = if what.starts_with('/') {
        json!({"nonResourceAttributes": {"verb": verb, "path": what}})
    } else {
        let (res, name) = what.split_once('/').unwrap_or((what, ""));
        let r = ctx.resolve(res)?;
        // `pods/log` names a subresource; `secrets/s1` a name.
        let (name, sub) = if r.subresources.iter().any(|s| s == name) {
            ("", name)
        } else {
            (name, a.subresource.as_str())
        };
        let ns = if a.all_namespaces || !r.namespaced {
            String::new()
        } else {
            ctx.namespace()
        };
        json!({"resourceAttributes": {"verb": verb, "group": r.group, "resource": r.name,
            "subresource": sub, "name": name, "namespace": ns}})
    };
    let st = ask(ctx, "SelfSubjectAccessReview", spec).await?;
    if st["allowed"] == true {
        println!("yes");
        Ok(())
    } else {
        println!("no");
        std::process::exit(1)
    }
}

fn print_rules(st: &Value) {
    let list = |v: &Value| -> String {
        let items: Vec<&str> = v
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        format!("[{}]", items.join(" "))
    };
    println!(
        "{:<48} {:<24} {:<20} VERBS",
        "RESOURCES", "NON-RESOURCE URLS", "RESOURCE NAMES"
    );
    for r in st["resourceRules"].as_array().into_iter().flatten() {
        let groups: Vec<&str> = r["apiGroups"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let resources: Vec<String> = r["resources"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .flat_map(|res| {
                groups.iter().map(move |g| {
                    if g.is_empty() {
                        res.to_string()
                    } else {
                        format!("{res}.{g}")
                    }
                })
            })
            .collect();
        println!(
            "{:<48} {:<24} {:<20} {}",
            resources.join(", "),
            "[]",
            list(&r["resourceNames"]),
            list(&r["verbs"])
        );
    }
    for r in st["nonResourceRules"].as_array().into_iter().flatten() {
        println!(
            "{:<48} {:<24} {:<20} {}",
            "",
            list(&r["nonResourceURLs"]),
            "[]",
            list(&r["verbs"])
        );
    }
    if st["incomplete"] == true {
        println!("(incomplete: the Node authorizer's decisions are not rules)");
    }
}
