//! `rkube ctl apply|create|delete`: manifests from files, directories or stdin.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::Args;
use rkube_proto::api::{
    ApiResource, CreateRequest, DeleteRequest, GetRequest, Object, PatchRequest, PatchType,
};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::{type_ref, Ctx};

const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

#[derive(Args)]
pub struct FileArgs {
    /// Manifest files or directories (`-` for stdin); repeatable.
    #[arg(short = 'f', long = "filename", required = true)]
    files: Vec<PathBuf>,
}

impl FileArgs {
    pub fn new(files: Vec<PathBuf>) -> Self {
        FileArgs { files }
    }
}

#[derive(Args)]
pub struct DeleteArgs {
    /// `pods web-1`, or `pods/web-1`.
    what: Option<String>,
    names: Vec<String>,
    #[arg(short = 'f', long = "filename")]
    files: Vec<PathBuf>,
    /// Seconds a pod gets to stop; 0 deletes at once.
    #[arg(long)]
    grace_period: Option<i64>,
    /// What happens to dependents: background (deleted after), foreground (deleted
    /// before), orphan (kept, no longer owned).
    #[arg(long, default_value = "background", value_parser = ["background", "foreground", "orphan"])]
    cascade: String,
}

fn collect(path: &Path, out: &mut Vec<(String, String)>) -> anyhow::Result<()> {
    if path == Path::new("-") {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)?;
        out.push(("<stdin>".into(), s));
    } else if path.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
            .with_context(|| path.display().to_string())?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                matches!(
                    p.extension().and_then(|e| e.to_str()),
                    Some("yaml" | "yml" | "json")
                )
            })
            .collect();
        entries.sort();
        for e in entries {
            collect(&e, out)?;
        }
    } else {
        let text = std::fs::read_to_string(path).with_context(|| path.display().to_string())?;
        out.push((path.display().to_string(), text));
    }
    Ok(())
}

/// How kubectl names an object in its output: `deployment.apps/web`.
fn label(r: &ApiResource, name: &str) -> String {
    if r.group.is_empty() {
        format!("{}/{name}", r.kind.to_lowercase())
    } else {
        format!("{}.{}/{name}", r.kind.to_lowercase(), r.group)
    }
}

/// Every object in the manifests, in order; `List` kinds are unpacked.
fn documents(files: &[PathBuf]) -> anyhow::Result<Vec<Value>> {
    let mut texts = Vec::new();
    for f in files {
        collect(f, &mut texts)?;
    }
    let mut docs = Vec::new();
    for (name, text) in texts {
        for (i, d) in serde_yaml_ng::Deserializer::from_str(&text).enumerate() {
            let v = Value::deserialize(d).with_context(|| format!("{name}: document {}", i + 1))?;
            if v.is_null() {
                continue;
            }
            if !v.is_object() {
                bail!("{name}: document {}: not an object", i + 1);
            }
            if v["kind"].as_str().is_some_and(|k| k.ends_with("List")) && v["items"].is_array() {
                docs.extend(v["items"].as_array().cloned().unwrap_or_default());
            } else {
                docs.push(v);
            }
        }
    }
    Ok(docs)
}

/// Nulls for every map key the last applied configuration had and the new one drops, so
/// a merge removes them (a three-way merge on maps).
fn removals(last: &Value, new: &Value) -> Value {
    let (Some(l), Some(n)) = (last.as_object(), new.as_object()) else {
        return new.clone();
    };
    let mut out: Map<String, Value> = n.clone();
    for (k, lv) in l {
        match n.get(k) {
            None => {
                out.insert(k.clone(), Value::Null);
            }
            Some(nv) if nv.is_object() && lv.is_object() => {
                out.insert(k.clone(), removals(lv, nv));
            }
            _ => {}
        }
    }
    Value::Object(out)
}

pub async fn apply(ctx: &mut Ctx, args: &FileArgs, update: bool) -> anyhow::Result<()> {
    for doc in documents(&args.files)? {
        apply_one(ctx, doc, update).await?;
    }
    Ok(())
}

/// Creates one manifest's object, or with `update` patches the live one if there is one.
async fn apply_one(ctx: &mut Ctx, mut doc: Value, update: bool) -> anyhow::Result<()> {
    let r = manifest_resource(ctx, &doc).await?;
    let ns = if r.namespaced {
        doc["metadata"]["namespace"]
            .as_str()
            .map(String::from)
            .unwrap_or_else(|| ctx.namespace())
    } else {
        String::new()
    };
    let name = doc["metadata"]["name"].as_str().unwrap_or("").to_string();
    let label = label(&r, &name);
    let manifest = serde_json::to_string(&doc)?;
    if update {
        doc["metadata"]["annotations"][LAST_APPLIED] = manifest.clone().into();
    }
    let env = Object {
        r#type: Some(type_ref(&r)),
        namespace: ns.clone(),
        name: name.clone(),
        json: serde_json::to_vec(&doc)?.into(),
        ..Default::default()
    };
    let existing = if update && !name.is_empty() {
        live_object(ctx, &r, &ns, &name).await?
    } else {
        None
    };
    match existing {
        None => {
            let created = ctx
                .client
                .create(CreateRequest { object: Some(env) })
                .await?;
            let label = if name.is_empty() {
                format!("{}{}", label, created.name)
            } else {
                label
            };
            println!("{label} created");
        }
        Some(live) => {
            let changed = patch_live(ctx, &r, ns, name, &doc, &live).await?;
            println!(
                "{label} {}",
                if changed { "configured" } else { "unchanged" }
            );
        }
    }
    Ok(())
}

/// The resource a manifest's apiVersion and kind name, re-reading the API's resources
/// once when the kind is unknown.
async fn manifest_resource(ctx: &mut Ctx, doc: &Value) -> anyhow::Result<ApiResource> {
    let api_version = doc["apiVersion"].as_str().unwrap_or("").to_string();
    let kind = doc["kind"].as_str().unwrap_or("").to_string();
    if api_version.is_empty() || kind.is_empty() {
        bail!(
            "a manifest lacks apiVersion or kind: {}",
            doc["metadata"]["name"]
        );
    }
    if ctx.by_kind(&api_version, &kind).is_err() {
        // A CRD applied earlier in the same run registers its kind.
        ctx.refresh().await?;
    }
    Ok(ctx.by_kind(&api_version, &kind)?.clone())
}

/// The object as it is in the cluster, or `None` when there is none.
async fn live_object(
    ctx: &Ctx,
    r: &ApiResource,
    ns: &str,
    name: &str,
) -> anyhow::Result<Option<Object>> {
    let got = ctx
        .client
        .get(GetRequest {
            r#type: Some(type_ref(r)),
            namespace: ns.to_string(),
            name: name.to_string(),
        })
        .await;
    match got {
        Ok(o) => Ok(Some(o)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Custom resources take a JSON merge patch; built-in kinds a strategic merge patch.
fn patch_type(r: &ApiResource) -> PatchType {
    if r.group.contains('.') && !r.group.ends_with("k8s.io") {
        PatchType::Merge
    } else {
        PatchType::Strategic
    }
}

/// Patches `live` towards the manifest `doc`, dropping what the last applied
/// configuration had and `doc` no longer has; whether that changed the object.
async fn patch_live(
    ctx: &Ctx,
    r: &ApiResource,
    ns: String,
    name: String,
    doc: &Value,
    live: &Object,
) -> anyhow::Result<bool> {
    let live: Value = serde_json::from_slice(&live.json)?;
    let last: Value = live["metadata"]["annotations"][LAST_APPLIED]
        .as_str()
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or(json!({}));
    let patch = removals(&last, doc);
    let out = ctx
        .client
        .patch(PatchRequest {
            r#type: Some(type_ref(r)),
            namespace: ns,
            name,
            patch_type: patch_type(r) as i32,
            patch: serde_json::to_vec(&patch)?.into(),
            status: false,
        })
        .await?;
    Ok(out.resource_version != live["metadata"]["resourceVersion"].as_str().unwrap_or(""))
}

pub async fn delete(ctx: &mut Ctx, args: &DeleteArgs) -> anyhow::Result<()> {
    let mut targets = Vec::new();
    if !args.files.is_empty() {
        for doc in documents(&args.files)? {
            let r = ctx.by_kind(
                doc["apiVersion"].as_str().unwrap_or(""),
                doc["kind"].as_str().unwrap_or(""),
            )?;
            let ns = doc["metadata"]["namespace"]
                .as_str()
                .map(String::from)
                .unwrap_or_else(|| ctx.namespace());
            targets.push((
                r.clone(),
                ns,
                doc["metadata"]["name"].as_str().unwrap_or("").to_string(),
            ));
        }
    } else if let Some(what) = &args.what {
        let (t, names) = match what.split_once('/') {
            Some((t, n)) => (t.to_string(), vec![n.to_string()]),
            None => (what.clone(), args.names.clone()),
        };
        if names.is_empty() {
            bail!("name what to delete: `delete {t} NAME` or `delete -f FILE`");
        }
        let r = ctx.resolve(&t)?.clone();
        for n in names {
            targets.push((r.clone(), ctx.namespace(), n));
        }
    } else {
        bail!("name what to delete: `delete TYPE NAME` or `delete -f FILE`");
    }
    for (r, ns, name) in targets {
        let resp = ctx
            .client
            .delete(DeleteRequest {
                r#type: Some(type_ref(&r)),
                namespace: if r.namespaced { ns } else { String::new() },
                name: name.clone(),
                grace_period_seconds: args.grace_period,
                propagation_policy: match args.cascade.as_str() {
                    "foreground" => "Foreground".into(),
                    "orphan" => "Orphan".into(),
                    _ => "Background".into(),
                },
                ..Default::default()
            })
            .await?;
        let label = label(&r, &name);
        println!(
            "{label} deleted{}",
            if resp.deleted {
                ""
            } else {
                " (finishing gracefully)"
            }
        );
    }
    Ok(())
}
