//! The Event row, for core/v1 Events and for events.k8s.io/v1 ones (whose fields carry
//! other names): when it was last and first seen, how often, about which object, from
//! which source.

use serde_json::Value;

use super::format::{int, name, text};
use super::time::since;
use super::ColumnType::String as S;
use super::{col, wide, Doc, Printer, Spec, NAME};

const EVENT_DEF: &str = "io.k8s.api.core.v1.Event";
const REFERENCE: &str = "io.k8s.api.core.v1.ObjectReference";

const COLUMNS: &[Spec] = &[
    col("Last Seen", S, Doc::Field(EVENT_DEF, "lastTimestamp")),
    col("Type", S, Doc::Field(EVENT_DEF, "type")),
    col("Reason", S, Doc::Field(EVENT_DEF, "reason")),
    col("Object", S, Doc::Field(EVENT_DEF, "involvedObject")),
    wide("Subobject", S, Doc::Field(REFERENCE, "fieldPath")),
    wide("Source", S, Doc::Field(EVENT_DEF, "source")),
    col("Message", S, Doc::Field(EVENT_DEF, "message")),
    wide("First Seen", S, Doc::Field(EVENT_DEF, "firstTimestamp")),
    wide("Count", S, Doc::Field(EVENT_DEF, "count")),
    Spec {
        priority: 1,
        ..NAME
    },
];

pub(super) static EVENT: Printer = Printer {
    columns: COLUMNS,
    cells: |e, now| cells(e, &CORE, now),
    conditions: None,
};

pub(super) static EVENTS_EVENT: Printer = Printer {
    columns: COLUMNS,
    cells: |e, now| cells(e, &EVENTS, now),
    conditions: None,
};

/// Where an Event version keeps each field the row shows.
struct Fields {
    involved: &'static str,
    message: &'static str,
    source: &'static str,
    first: &'static str,
    last: &'static str,
    count: &'static str,
}

const CORE: Fields = Fields {
    involved: "involvedObject",
    message: "message",
    source: "source",
    first: "firstTimestamp",
    last: "lastTimestamp",
    count: "count",
};

const EVENTS: Fields = Fields {
    involved: "regarding",
    message: "note",
    source: "deprecatedSource",
    first: "deprecatedFirstTimestamp",
    last: "deprecatedLastTimestamp",
    count: "deprecatedCount",
};

fn cells(e: &Value, f: &Fields, now: i64) -> Vec<Value> {
    // Events of the newer API have only an eventTime, and a series once they repeat.
    let first = if e[f.first].is_null() {
        since(&e["eventTime"], now)
    } else {
        since(&e[f.first], now)
    };
    let mut last = if e[f.last].is_null() {
        first.clone()
    } else {
        since(&e[f.last], now)
    };
    let series = &e["series"];
    let count = if series.is_object() {
        last = since(&series["lastObservedTime"], now);
        int(&series["count"])
    } else {
        match int(&e[f.count]) {
            // A singleton event of the newer API has no count.
            0 => 1,
            n => n,
        }
    };
    let involved = &e[f.involved];
    let kind = text(&involved["kind"]).to_lowercase();
    let object = match text(&involved["name"]) {
        "" => kind,
        n => format!("{kind}/{n}"),
    };
    vec![
        last.into(),
        text(&e["type"]).into(),
        text(&e["reason"]).into(),
        object.into(),
        text(&involved["fieldPath"]).into(),
        source(e, f).into(),
        text(&e[f.message]).trim().into(),
        first.into(),
        count.into(),
        name(e),
    ]
}

/// `component, host`, falling back to the reporting controller and instance.
fn source(e: &Value, f: &Fields) -> String {
    let first_of = |a: &str, b: &str| -> String { if a.is_empty() { b } else { a }.to_string() };
    let component = first_of(
        text(&e[f.source]["component"]),
        text(&e["reportingController"]),
    );
    let host = first_of(text(&e[f.source]["host"]), text(&e["reportingInstance"]));
    if host.is_empty() {
        component
    } else {
        format!("{component}, {host}")
    }
}
