//! Get, List and Watch, served from the watch cache after a consistent read point.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use futures::Stream;
use rkube_proto::api::{
    GetRequest, ListRequest, ListResponse, Object, TypeRef, WatchEvent, WatchEventType,
    WatchRequest,
};
use serde_json::json;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;

use super::{cached_envelope, envelope, Api};
use crate::auth::UserInfo;
use crate::cache::{Cached, EventKind, Msg};
use crate::error::{Error, Result};
use crate::registry::ResourceType;
use crate::selector::{FieldSelector, LabelSelector};
use crate::storage;

/// Parsed selectors and scope of a list or watch.
pub struct ListOptions {
    pub prefix: String,
    pub labels: LabelSelector,
    pub fields: FieldSelector,
}

impl ListOptions {
    fn new(rt: &ResourceType, ns: &str, labels: &str, fields: &str) -> Result<Self> {
        let fields = FieldSelector::parse(fields)?;
        if let Some(f) = fields.fields().find(|f| !rt.supports_field(f)) {
            return Err(Error::BadRequest(format!(
                "field label not supported: {f} (for {})",
                rt.qualified()
            )));
        }
        Ok(ListOptions {
            prefix: rt.prefix(Some(ns)),
            labels: LabelSelector::parse(labels)?,
            fields,
        })
    }

    pub fn matches(&self, c: &Cached) -> bool {
        self.labels.matches(|k| c.labels.get(k).map(|s| s.as_str()))
            && self.fields.matches(|f| c.field(f))
    }

    fn unfiltered(&self) -> bool {
        self.labels.is_empty() && self.fields.0.is_empty()
    }
}

pub type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchEvent, tonic::Status>> + Send>>;

#[derive(serde::Serialize, serde::Deserialize)]
struct Continue {
    rv: i64,
    start: String,
}

fn encode_continue(rv: i64, last_key: &str) -> String {
    let c = Continue {
        rv,
        start: format!("{last_key}\u{0}"),
    };
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(&c).unwrap_or_default())
}

fn decode_continue(token: &str, prefix: &str) -> Result<Continue> {
    let bad =
        || Error::BadRequest("continue: Invalid value: the continue token is not valid".into());
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| bad())?;
    let c: Continue = serde_json::from_slice(&raw).map_err(|_| bad())?;
    if !c.start.starts_with(prefix) {
        return Err(bad());
    }
    Ok(c)
}

impl Api {
    pub async fn get(&self, user: &UserInfo, req: &GetRequest) -> Result<Object> {
        let rt = self.resolve(req.r#type.as_ref()).await?;
        let ns = Self::namespace_of(&rt, &req.namespace)?;
        self.authorize(user, "get", &rt, "", &ns, &req.name)?;
        match self.fresh(&rt.key(&ns, &req.name)).await? {
            Some(c) => Ok(cached_envelope(&rt, &c)),
            None => Err(Self::not_found(&rt, &req.name)),
        }
    }

    pub async fn list(&self, user: &UserInfo, req: &ListRequest) -> Result<ListResponse> {
        let rt = self.resolve(req.r#type.as_ref()).await?;
        let ns = if rt.namespaced {
            req.namespace.clone()
        } else {
            String::new()
        };
        self.authorize(user, "list", &rt, "", &ns, "")?;
        let opts = ListOptions::new(&rt, &ns, &req.label_selector, &req.field_selector)?;
        let limit = usize::try_from(req.limit.max(0)).unwrap_or(0);
        if !req.continue_token.is_empty() {
            let c = decode_continue(&req.continue_token, &opts.prefix)?;
            return self.list_at(&rt, &opts, c, limit).await;
        }
        self.cache.wait_fresh(&self.store).await?;
        let (rv, all) = self.cache.list(&opts.prefix, None);
        let total = all.len();
        let mut items = Vec::new();
        let mut last = None;
        for (i, c) in all.iter().enumerate() {
            if limit > 0 && items.len() == limit {
                let remaining = if opts.unfiltered() {
                    (total - i) as i64
                } else {
                    0
                };
                return Ok(ListResponse {
                    resource_version: rv.to_string(),
                    continue_token: encode_continue(rv, last.unwrap_or(&c.key)),
                    remaining_item_count: remaining,
                    items,
                });
            }
            if opts.matches(c) {
                items.push(cached_envelope(&rt, c));
                last = Some(&c.key);
            }
        }
        Ok(ListResponse {
            resource_version: rv.to_string(),
            continue_token: String::new(),
            remaining_item_count: 0,
            items,
        })
    }

    /// A list as of store revision `rv` (`resourceVersionMatch=Exact`), read from the
    /// store's history: Expired once that revision is compacted.
    pub async fn list_exact(
        &self,
        user: &UserInfo,
        req: &ListRequest,
        rv: i64,
    ) -> Result<ListResponse> {
        let rt = self.resolve(req.r#type.as_ref()).await?;
        let ns = if rt.namespaced {
            req.namespace.clone()
        } else {
            String::new()
        };
        self.authorize(user, "list", &rt, "", &ns, "")?;
        let opts = ListOptions::new(&rt, &ns, &req.label_selector, &req.field_selector)?;
        if rv > self.cache.revision() {
            self.cache.wait_revision(rv, Duration::from_secs(3)).await?;
        }
        let limit = usize::try_from(req.limit.max(0)).unwrap_or(0);
        let start = Continue {
            rv,
            start: opts.prefix.clone(),
        };
        self.list_at(&rt, &opts, start, limit).await
    }

    /// A continued list: the next page of the snapshot at the first page's revision, read
    /// from the store's history (Expired once that revision is compacted).
    async fn list_at(
        &self,
        rt: &ResourceType,
        opts: &ListOptions,
        c: Continue,
        limit: usize,
    ) -> Result<ListResponse> {
        let mut items = Vec::new();
        let mut start = c.start;
        loop {
            let chunk = if limit > 0 {
                (limit - items.len()).max(16) as i64
            } else {
                0
            };
            let (kvs, more) = storage::range_at(
                &self.store,
                self.encryption.as_ref(),
                &start,
                &opts.prefix,
                c.rv,
                chunk,
            )
            .await?;
            for (key, v) in kvs {
                if limit > 0 && items.len() == limit {
                    return Ok(ListResponse {
                        resource_version: c.rv.to_string(),
                        continue_token: encode_continue(c.rv, &start),
                        remaining_item_count: 0,
                        items,
                    });
                }
                let cached = Cached {
                    key: key.clone(),
                    rv: 0,
                    json: Default::default(),
                    namespace: crate::object::namespace(&v).to_string(),
                    name: crate::object::name(&v).to_string(),
                    labels: crate::object::labels(&v)
                        .map(|(a, b)| (a.to_string(), b.to_string()))
                        .collect(),
                    fields: rt
                        .fields
                        .iter()
                        .map(|f| (f.to_string(), crate::object::field_text(&v, f)))
                        .collect(),
                };
                if opts.matches(&cached) {
                    items.push(envelope(rt, &v)?);
                }
                start = format!("{key}\u{0}");
            }
            if !more {
                return Ok(ListResponse {
                    resource_version: c.rv.to_string(),
                    continue_token: String::new(),
                    remaining_item_count: 0,
                    items,
                });
            }
        }
    }

    pub async fn watch(
        self: &Arc<Self>,
        user: &UserInfo,
        req: &WatchRequest,
        bookmark_every: Duration,
    ) -> Result<WatchStream> {
        let rt = self.resolve(req.r#type.as_ref()).await?;
        let ns = if rt.namespaced {
            req.namespace.clone()
        } else {
            String::new()
        };
        self.authorize(user, "watch", &rt, "", &ns, "")?;
        let opts = ListOptions::new(&rt, &ns, &req.label_selector, &req.field_selector)?;
        let from: i64 = match req.resource_version.as_str() {
            "" | "0" => 0,
            v => v.parse().map_err(|_| {
                Error::BadRequest(format!(
                    "resourceVersion: Invalid value: {v:?}: must be an integer"
                ))
            })?,
        };
        let (initial, sub) = if from == 0 {
            self.cache.wait_fresh(&self.store).await?;
            let (sub, initial) = self.cache.snapshot(&opts.prefix);
            (initial, sub)
        } else {
            if from > self.cache.revision() {
                self.cache
                    .wait_revision(from, Duration::from_secs(3))
                    .await?;
            }
            (Vec::new(), self.cache.subscribe(from)?)
        };
        let (tx, rx) = mpsc::channel(256);
        let bookmarks = req.allow_bookmarks;
        let rt2 = rt.clone();
        tokio::spawn(async move {
            let rt = rt2;
            let seen = if from == 0 { sub.revision } else { from };
            let Some(seen) = catch_up(&rt, &opts, &initial, sub.replay, seen, &tx).await else {
                return;
            };
            follow(&rt, &opts, sub.rx, seen, bookmarks, bookmark_every, &tx).await;
        });
        Ok(Box::pin(ReceiverStream::new(rx)))
    }
}

type EventSender = mpsc::Sender<Result<WatchEvent, tonic::Status>>;

/// Sends a new watcher the objects it starts from, as ADDED, and the events it resumes
/// after. The revision it has seen then, or None when it went away.
async fn catch_up(
    rt: &ResourceType,
    opts: &ListOptions,
    initial: &[Arc<Cached>],
    replay: Vec<Arc<crate::cache::CacheEvent>>,
    mut seen: i64,
    tx: &EventSender,
) -> Option<i64> {
    for c in initial.iter().filter(|c| opts.matches(c)) {
        if send(tx, WatchEventType::Added, cached_envelope(rt, c))
            .await
            .is_err()
        {
            return None;
        }
    }
    for ev in replay {
        if let Some((ty, obj)) = translate(rt, opts, &ev) {
            if send(tx, ty, obj).await.is_err() {
                return None;
            }
        }
        seen = ev.rv;
    }
    Some(seen)
}

/// Sends live events, and a bookmark every `bookmark_every` when `bookmarks`, until the
/// watcher goes away, falls behind or the cache closes.
async fn follow(
    rt: &ResourceType,
    opts: &ListOptions,
    mut rx: broadcast::Receiver<Msg>,
    mut seen: i64,
    bookmarks: bool,
    bookmark_every: Duration,
    tx: &EventSender,
) {
    let mut tick = tokio::time::interval(bookmark_every);
    tick.tick().await;
    loop {
        tokio::select! {
            msg = rx.recv() => match msg {
                Ok(Msg::Event(ev)) => {
                    if let Some((ty, obj)) = translate(rt, opts, &ev) {
                        if send(tx, ty, obj).await.is_err() { return; }
                    }
                    seen = ev.rv;
                }
                Ok(Msg::Progress(rev)) => seen = seen.max(rev),
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    let _ = tx.send(Err(tonic::Status::unavailable(format!(
                        "watch fell behind; resume from resourceVersion {seen}")))).await;
                    return;
                }
                Err(broadcast::error::RecvError::Closed) => {
                    let _ = tx.send(Err(Error::Expired { requested: seen, oldest: 0 }.into())).await;
                    return;
                }
            },
            _ = tick.tick(), if bookmarks => {
                if send(tx, WatchEventType::Bookmark, bookmark(rt, seen)).await.is_err() { return; }
            }
            _ = tx.closed() => return,
        }
    }
}

fn bookmark(rt: &ResourceType, rv: i64) -> Object {
    let obj = json!({"apiVersion": rt.api_version(), "kind": rt.kind,
                     "metadata": {"resourceVersion": rv.to_string()}});
    Object {
        r#type: Some(TypeRef {
            api_version: rt.api_version(),
            kind: rt.kind.clone(),
        }),
        resource_version: rv.to_string(),
        json: serde_json::to_vec(&obj).unwrap_or_default().into(),
        ..Default::default()
    }
}

async fn send(tx: &EventSender, ty: WatchEventType, obj: Object) -> Result<(), ()> {
    tx.send(Ok(WatchEvent {
        r#type: ty.into(),
        object: Some(obj),
    }))
    .await
    .map_err(|_| ())
}

/// The event a watcher with `opts` sees for `ev`: an object that starts matching the
/// selectors is ADDED, one that stops matching is DELETED, as in Kubernetes.
fn translate(
    rt: &ResourceType,
    opts: &ListOptions,
    ev: &crate::cache::CacheEvent,
) -> Option<(WatchEventType, Object)> {
    if !ev.obj.key.starts_with(&opts.prefix) {
        return None;
    }
    let now = opts.matches(&ev.obj);
    let before = ev.prev.as_ref().is_some_and(|p| opts.matches(p));
    let ty = match ev.kind {
        EventKind::Added if now => WatchEventType::Added,
        EventKind::Deleted if before || now => WatchEventType::Deleted,
        EventKind::Modified if now && before => WatchEventType::Modified,
        EventKind::Modified if now => WatchEventType::Added,
        EventKind::Modified if before => WatchEventType::Deleted,
        _ => return None,
    };
    Some((ty, cached_envelope(rt, &ev.obj)))
}
