//! `watcher()`: a stream of changes to a kind that never ends by itself. It lists, then
//! watches from the list's resourceVersion; a broken stream resumes from the last version
//! seen (bookmarks included), and a version that expired leads to a fresh list.

use std::collections::VecDeque;
use std::time::Duration;

use futures::{Stream, StreamExt};
use rkube_proto::api::{WatchEvent, WatchEventType};
use tonic::Streaming;

use crate::api::{decode, Api, ApiObject, ListParams};
use crate::error::{Error, Result};

/// What a watcher yields.
#[derive(Clone, Debug)]
pub enum Event<K> {
    /// An object was added or changed.
    Apply(K),
    /// An object was deleted (its last state).
    Delete(K),
    /// A (re-)list starts: the objects that follow replace everything known.
    Init,
    InitApply(K),
    /// The (re-)list is complete.
    InitDone,
}

#[derive(Clone, Debug)]
pub struct Config {
    pub selectors: ListParams,
    /// Objects per list page.
    pub page_size: i64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            selectors: ListParams::default(),
            page_size: 500,
        }
    }
}

impl Config {
    pub fn labels(mut self, s: &str) -> Self {
        self.selectors.label_selector = Some(s.to_string());
        self
    }
    pub fn fields(mut self, s: &str) -> Self {
        self.selectors.field_selector = Some(s.to_string());
        self
    }
}

struct State<K> {
    api: Api<K>,
    config: Config,
    /// The last resourceVersion seen; `None` until a list has completed.
    rv: Option<String>,
    stream: Option<Streaming<WatchEvent>>,
    buffer: VecDeque<Event<K>>,
    backoff: Duration,
}

const MAX_BACKOFF: Duration = Duration::from_secs(2);

impl<K> State<K>
where
    K: ApiObject,
{
    async fn relist(&mut self) -> Result<()> {
        let mut lp = self.config.selectors.clone();
        lp.limit = Some(self.config.page_size);
        let mut events = vec![Event::Init];
        loop {
            let page = self.api.list(&lp).await?;
            events.extend(page.items.into_iter().map(Event::InitApply));
            match page.continue_token {
                Some(c) => lp.continue_token = Some(c),
                None => {
                    self.rv = Some(page.resource_version);
                    break;
                }
            }
        }
        events.push(Event::InitDone);
        self.buffer.extend(events);
        Ok(())
    }

    async fn pause(&mut self) {
        tokio::time::sleep(self.backoff).await;
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
    }

    /// The next event, handling every failure by resuming or re-listing.
    async fn next_event(&mut self) -> Event<K> {
        loop {
            if let Some(e) = self.buffer.pop_front() {
                return e;
            }
            let Some(rv) = self.rv.clone() else {
                if let Err(e) = self.relist().await {
                    tracing::debug!(kind = K::KIND, error = %e, "watcher: list failed; retrying");
                    self.pause().await;
                }
                continue;
            };
            let Some(stream) = self.stream.as_mut() else {
                match self.api.watch_raw(&self.config.selectors, &rv, true).await {
                    Ok(s) => self.stream = Some(s),
                    Err(e) if e.is_expired() => self.rv = None,
                    Err(e) => {
                        tracing::debug!(kind = K::KIND, error = %e, "watcher: watch failed; retrying");
                        self.pause().await;
                    }
                }
                continue;
            };
            match stream.next().await {
                Some(Ok(ev)) => {
                    self.backoff = Duration::from_millis(50);
                    let ty = ev.r#type();
                    let Some(obj) = ev.object else { continue };
                    if !obj.resource_version.is_empty() {
                        self.rv = Some(obj.resource_version.clone());
                    }
                    if ty == WatchEventType::Bookmark {
                        continue;
                    }
                    match decode::<K>(&obj) {
                        Ok(k) if ty == WatchEventType::Deleted => return Event::Delete(k),
                        Ok(k) => return Event::Apply(k),
                        Err(e) => {
                            tracing::warn!(kind = K::KIND, error = %e, "watcher: undecodable object skipped")
                        }
                    }
                }
                Some(Err(s)) => {
                    self.stream = None;
                    if Error::from_status(&s).is_expired() {
                        self.rv = None;
                    } else {
                        tracing::debug!(kind = K::KIND, error = %s.message(), "watcher: stream broke; resuming");
                        self.pause().await;
                    }
                }
                None => {
                    self.stream = None;
                    self.pause().await;
                }
            }
        }
    }
}

/// Watches `api` with `config`, forever.
pub fn watcher<K>(api: Api<K>, config: Config) -> impl Stream<Item = Event<K>> + Send
where
    K: ApiObject,
{
    let state = State {
        api,
        config,
        rv: None,
        stream: None,
        buffer: VecDeque::new(),
        backoff: Duration::from_millis(50),
    };
    futures::stream::unfold(state, |mut st| async move {
        let ev = st.next_event().await;
        Some((ev, st))
    })
}
