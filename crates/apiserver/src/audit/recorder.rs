//! The audit record of one request: its event, emitted once per stage the policy keeps,
//! with object bodies only at the levels that carry them.

use std::sync::{Arc, Mutex};

use serde_json::Value;

use super::event::{Event, MicroTime, ResponseStatus};
use super::policy::Decision;
use super::{Auditor, Level, RequestInfo, Stage};

/// The audit record of a request whose level is above None.
pub struct Recorder {
    auditor: Arc<Auditor>,
    event: Event,
    omit: Vec<Stage>,
    omit_managed_fields: bool,
}

impl Recorder {
    pub(super) fn new(auditor: Arc<Auditor>, decision: Decision, info: RequestInfo) -> Self {
        Recorder {
            auditor,
            event: Event::new(decision.level, info),
            omit: decision.omit_stages,
            omit_managed_fields: decision.omit_managed_fields,
        }
    }

    pub fn level(&self) -> Level {
        self.event.level
    }

    pub fn audit_id(&self) -> &str {
        &self.event.audit_id
    }

    /// Whether the request body is recorded (level Request and up).
    pub fn wants_request_object(&self) -> bool {
        self.event.level >= Level::Request
    }

    /// Whether the response body is recorded (level RequestResponse).
    pub fn wants_response_object(&self) -> bool {
        self.event.level >= Level::RequestResponse
    }

    /// Records the request body, if the level carries it.
    pub fn set_request_object(&mut self, obj: impl FnOnce() -> Option<Value>) {
        if self.wants_request_object() {
            self.event.request_object = obj().map(|v| self.trim(v));
        }
    }

    pub fn annotate(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.event.annotations.insert(key.into(), value.into());
    }

    /// The RequestReceived stage.
    pub fn received(&mut self) {
        self.emit(Stage::RequestReceived);
    }

    /// The ResponseComplete stage, with the response body if the level carries it.
    pub fn complete(mut self, status: ResponseStatus, response: impl FnOnce() -> Option<Value>) {
        self.event.response_status = Some(status);
        if self.wants_response_object() {
            self.event.response_object = response().map(|v| self.trim(v));
        }
        self.emit(Stage::ResponseComplete);
    }

    /// For a long-running request: the ResponseStarted stage now, and ResponseComplete
    /// when the returned guard is dropped (the stream ends or the client goes away).
    pub fn started(mut self, status: ResponseStatus) -> Completion {
        self.event.response_status = Some(status);
        self.emit(Stage::ResponseStarted);
        Completion(Some(self))
    }

    fn emit(&mut self, stage: Stage) {
        if self.omit.contains(&stage) {
            return;
        }
        self.event.stage = stage;
        self.event.stage_timestamp = MicroTime::now();
        self.auditor.process(&self.event);
    }

    /// Leaves out `metadata.managedFields` (of the object and of list items) when the
    /// policy says so.
    fn trim(&self, mut v: Value) -> Value {
        if self.omit_managed_fields {
            strip_managed_fields(&mut v);
            if let Some(items) = v.get_mut("items").and_then(Value::as_array_mut) {
                items.iter_mut().for_each(strip_managed_fields);
            }
        }
        v
    }
}

fn strip_managed_fields(v: &mut Value) {
    if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("managedFields");
    }
}

/// Records ResponseComplete of a long-running request when dropped.
pub struct Completion(Option<Recorder>);

impl Drop for Completion {
    fn drop(&mut self) {
        if let Some(mut r) = self.0.take() {
            r.emit(Stage::ResponseComplete);
        }
    }
}

/// Keeps a long-running request's ResponseComplete until every holder has let go: its
/// response body, and the session of an upgraded connection (exec, attach, port-forward),
/// which finds its clone among the request's extensions.
#[derive(Clone, Default)]
pub struct Hold(Arc<Mutex<Option<Completion>>>);

impl Hold {
    /// Hands over the completion to record once the last holder lets go.
    pub fn keep(&self, done: Completion) {
        if let Ok(mut slot) = self.0.lock() {
            *slot = Some(done);
        }
    }
}
