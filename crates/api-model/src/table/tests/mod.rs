//! Table tests: realistic objects of each kind, printed against a fixed clock.

mod cluster;
mod core;
mod custom;
mod pod;
mod workloads;

use serde_json::Value;

use super::*;

/// The clock every test prints against: 2024-05-01T12:00:00Z.
const NOW: i64 = 1_714_564_800;

/// A timestamp `secs` seconds before [`NOW`].
fn ago(secs: i64) -> String {
    format_rfc3339(NOW - secs)
}

/// The cells of `obj`, by column name.
fn row(group: &str, kind: &str, obj: &Value) -> Vec<(String, Value)> {
    let cols = columns(group, kind);
    let cells = cells(group, kind, obj, NOW);
    assert_eq!(cols.len(), cells.len(), "one cell per column of {kind}");
    cols.into_iter().map(|c| c.name).zip(cells).collect()
}

/// The cell of column `name`.
fn cell<'a>(row: &'a [(String, Value)], name: &str) -> &'a Value {
    &row.iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no column {name}"))
        .1
}
