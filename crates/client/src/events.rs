//! Events for the transitions users look for (`rkube ctl describe`): best effort, off the
//! caller's path. Controllers and kubelets record through [`Recorder`], whose one writer
//! task ends once every clone of it is gone and what it holds is written.

use crate::state::EventType;
use crate::{Api, ApiObject, Client};
use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

/// Events waiting to be written at most; beyond that, new ones are dropped.
const QUEUE: usize = 1024;

#[derive(Clone)]
pub struct Recorder {
    tx: tokio::sync::mpsc::Sender<Event>,
    component: String,
}

/// An Event about `obj` as `component` reports it.
pub fn event_for<K: ApiObject>(
    obj: &K,
    component: &str,
    type_: EventType,
    reason: &str,
    message: String,
) -> Event {
    let meta = obj.metadata();
    let ns = meta.namespace.clone().unwrap_or_else(|| "default".into());
    let name = meta.name.clone().unwrap_or_default();
    let now = Time(now());
    Event {
        metadata: ObjectMeta {
            generate_name: Some(format!("{name}.")),
            namespace: Some(ns),
            ..Default::default()
        },
        involved_object: ObjectReference {
            api_version: Some(K::API_VERSION.into()),
            kind: Some(K::KIND.into()),
            namespace: meta.namespace.clone(),
            name: Some(name),
            uid: meta.uid.clone(),
            ..Default::default()
        },
        reason: Some(reason.into()),
        message: Some(message),
        type_: Some(type_.as_str().into()),
        source: Some(EventSource {
            component: Some(component.into()),
            host: None,
        }),
        reporting_component: Some(component.into()),
        first_timestamp: Some(now.clone()),
        last_timestamp: Some(now),
        count: Some(1),
        ..Default::default()
    }
}

impl Recorder {
    /// A recorder writing through `client`; call within a Tokio runtime.
    pub fn new(client: Client, component: &str) -> Self {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Event>(QUEUE);
        tokio::spawn(async move {
            while let Some(ev) = rx.recv().await {
                let ns = ev.metadata.namespace.clone().unwrap_or_default();
                let api = Api::<Event>::namespaced(client.clone(), &ns);
                if let Err(e) = api.create(&ev).await {
                    tracing::debug!(error = %e, "recording an event failed");
                }
            }
        });
        Recorder {
            tx,
            component: component.into(),
        }
    }

    /// Records an event about `obj` without waiting for it to be written (dropped when
    /// the queue is full).
    pub fn record<K: ApiObject>(&self, obj: &K, type_: EventType, reason: &str, message: String) {
        let ev = event_for(obj, &self.component, type_, reason, message);
        if self.tx.try_send(ev).is_err() {
            tracing::debug!(reason, "the event queue is full; an event was dropped");
        }
    }
}

/// Now, with microseconds, as Event and condition times are written. The clock is read
/// through std (jiff's clock feature is off in k8s-openapi).
pub fn now() -> k8s_openapi::jiff::Timestamp {
    let us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64);
    k8s_openapi::jiff::Timestamp::from_microsecond(us)
        .unwrap_or(k8s_openapi::jiff::Timestamp::UNIX_EPOCH)
}
