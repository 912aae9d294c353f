//! `rkube ctl get` and `describe`: tables like kubectl's, or the objects as YAML/JSON.

mod table;

use anyhow::bail;
use clap::Args;
use futures::StreamExt;
use rkube_proto::api::{ApiResource, GetRequest, ListRequest, Object, WatchRequest};
use serde_json::{json, Value};

use self::table::print_table;
use super::{type_ref, Ctx};

#[derive(Args)]
pub struct GetArgs {
    /// `pods`, `pods/web-1`, or `pods web-1 web-2`.
    what: String,
    names: Vec<String>,
    /// Output: yaml, json, wide or name.
    #[arg(short, long)]
    output: Option<String>,
    /// Label selector.
    #[arg(short = 'l', long)]
    selector: Option<String>,
    #[arg(long)]
    field_selector: Option<String>,
    /// Every namespace.
    #[arg(short = 'A', long)]
    all_namespaces: bool,
    /// After listing, watch for changes.
    #[arg(short, long)]
    watch: bool,
}

#[derive(Args)]
pub struct DescribeArgs {
    what: String,
    names: Vec<String>,
}

fn split(what: &str, names: &[String]) -> (String, Vec<String>) {
    match what.split_once('/') {
        Some((t, n)) => (t.to_string(), vec![n.to_string()]),
        None => (what.to_string(), names.to_vec()),
    }
}

fn parse(o: &Object) -> Value {
    serde_json::from_slice(&o.json).unwrap_or(Value::Null)
}

async fn fetch(
    ctx: &Ctx,
    r: &ApiResource,
    names: &[String],
    args: Option<&GetArgs>,
    ns: &str,
) -> anyhow::Result<(Vec<Value>, String)> {
    if names.is_empty() {
        let resp = ctx
            .client
            .list(ListRequest {
                r#type: Some(type_ref(r)),
                namespace: ns.to_string(),
                label_selector: args.and_then(|a| a.selector.clone()).unwrap_or_default(),
                field_selector: args
                    .and_then(|a| a.field_selector.clone())
                    .unwrap_or_default(),
                ..Default::default()
            })
            .await?;
        return Ok((
            resp.items.iter().map(parse).collect(),
            resp.resource_version,
        ));
    }
    let mut out = Vec::new();
    for n in names {
        let o = ctx
            .client
            .get(GetRequest {
                r#type: Some(type_ref(r)),
                namespace: ns.to_string(),
                name: n.clone(),
            })
            .await?;
        out.push(parse(&o));
    }
    Ok((out, String::new()))
}

pub async fn get(ctx: &Ctx, args: &GetArgs) -> anyhow::Result<()> {
    if args.what.contains(',') && !args.what.contains('/') {
        for (i, w) in args.what.split(',').enumerate() {
            if i > 0 {
                println!();
            }
            get_one(ctx, args, w).await?;
        }
        return Ok(());
    }
    get_one(ctx, args, &args.what).await
}

async fn get_one(ctx: &Ctx, args: &GetArgs, what: &str) -> anyhow::Result<()> {
    let (what, names) = split(what, &args.names);
    let r = ctx.resolve(&what)?;
    let ns = if !r.namespaced || (args.all_namespaces && names.is_empty()) {
        String::new()
    } else {
        ctx.namespace()
    };
    let (items, rv) = fetch(ctx, r, &names, Some(args), &ns).await?;
    let all_ns = r.namespaced && ns.is_empty();
    match args.output.as_deref() {
        Some("yaml") | Some("json") => {
            let doc = if items.len() == 1 && !names.is_empty() {
                items[0].clone()
            } else {
                json!({"apiVersion": "v1", "kind": "List", "items": items, "metadata": {"resourceVersion": ""}})
            };
            if args.output.as_deref() == Some("yaml") {
                print!("{}", serde_yaml_ng::to_string(&doc)?);
            } else {
                println!("{}", serde_json::to_string_pretty(&doc)?);
            }
        }
        Some("name") => {
            for i in &items {
                println!(
                    "{}/{}",
                    r.singular_name,
                    i["metadata"]["name"].as_str().unwrap_or("")
                );
            }
        }
        Some("wide") | None => {
            let wide = args.output.as_deref() == Some("wide");
            if items.is_empty() && !args.watch {
                eprintln!(
                    "No resources found{}.",
                    if ns.is_empty() {
                        String::new()
                    } else {
                        format!(" in {ns} namespace")
                    }
                );
            } else {
                print_table(&r.kind, &items, all_ns, wide, true);
            }
        }
        Some(other) => bail!("unknown output format {other:?}: use yaml, json, wide or name"),
    }
    if args.watch && names.is_empty() {
        let mut s = ctx
            .client
            .watch(WatchRequest {
                r#type: Some(type_ref(r)),
                namespace: ns.clone(),
                label_selector: args.selector.clone().unwrap_or_default(),
                field_selector: args.field_selector.clone().unwrap_or_default(),
                resource_version: rv,
                allow_bookmarks: false,
            })
            .await?;
        while let Some(ev) = s.next().await {
            let ev = ev?;
            if let Some(o) = ev.object {
                print_table(
                    &r.kind,
                    &[parse(&o)],
                    all_ns,
                    args.output.as_deref() == Some("wide"),
                    false,
                );
            }
        }
    }
    Ok(())
}

/// How long ago an RFC 3339 timestamp was, as kubectl prints it: 5s, 3m, 2h, 4d.
pub fn age(ts: &Value) -> String {
    let Some(t) = ts
        .as_str()
        .and_then(|s| s.parse::<k8s_openapi::jiff::Timestamp>().ok())
    else {
        return "<unknown>".into();
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let s = (now - t.as_second()).max(0);
    match s {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

pub async fn describe(ctx: &Ctx, args: &DescribeArgs) -> anyhow::Result<()> {
    let (what, names) = split(&args.what, &args.names);
    let r = ctx.resolve(&what)?;
    let ns = if r.namespaced {
        ctx.namespace()
    } else {
        String::new()
    };
    let (items, _) = fetch(ctx, r, &names, None, &ns).await?;
    for (i, o) in items.iter().enumerate() {
        if i > 0 {
            println!();
        }
        let m = &o["metadata"];
        println!("Name:         {}", m["name"].as_str().unwrap_or(""));
        if r.namespaced {
            println!("Namespace:    {}", m["namespace"].as_str().unwrap_or(""));
        }
        println!("Kind:         {} ({})", r.kind, type_ref(r).api_version);
        let kv = |v: &Value| -> String {
            v.as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "<none>".into())
        };
        println!("Labels:       {}", kv(&m["labels"]));
        println!("Annotations:  {}", kv(&m["annotations"]));
        println!("UID:          {}", m["uid"].as_str().unwrap_or(""));
        println!(
            "Created:      {} ({} ago)",
            m["creationTimestamp"].as_str().unwrap_or(""),
            age(&m["creationTimestamp"])
        );
        println!(
            "Version:      {} (generation {})",
            m["resourceVersion"].as_str().unwrap_or(""),
            m["generation"]
        );
        if let Some(d) = m["deletionTimestamp"].as_str() {
            println!("Deleting:     since {d}");
        }
        for part in ["spec", "status", "data"] {
            if !o[part].is_null() {
                println!("{}{}:", part[..1].to_uppercase(), &part[1..]);
                for line in serde_yaml_ng::to_string(&o[part])?.lines() {
                    println!("  {line}");
                }
            }
        }
    }
    Ok(())
}
