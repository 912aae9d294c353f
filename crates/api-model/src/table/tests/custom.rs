//! Custom resources' printer columns, the JSONPath they are read with, and durations.

use serde_json::{json, Value};

use super::*;

fn printer_columns() -> Value {
    json!([
        {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas",
         "description": "Desired replicas"},
        {"name": "Ready", "type": "string",
         "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"},
        {"name": "Version", "type": "string", "jsonPath": ".spec.version", "priority": 1},
        {"name": "Ratio", "type": "number", "jsonPath": ".status.ratio", "format": "double"},
        {"name": "Paused", "type": "boolean", "jsonPath": ".spec.paused"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        {"name": "Broken", "type": "string", "jsonPath": ".spec..x"},
    ])
}

fn database() -> Value {
    json!({
        "apiVersion": "example.com/v1", "kind": "Database",
        "metadata": {"name": "orders", "namespace": "shop", "creationTimestamp": ago(3 * 3600 + 65)},
        "spec": {"replicas": 3, "version": 15, "paused": false},
        "status": {"ratio": 1, "conditions": [
            {"type": "Progressing", "status": "True"},
            {"type": "Ready", "status": "False"},
        ]},
    })
}

#[test]
fn printer_columns_follow_the_name_column_with_their_types_and_priorities() {
    let cols = custom_columns(&printer_columns());
    let summary: Vec<(&str, &str, i32)> = cols
        .iter()
        .map(|c| (c.name.as_str(), c.type_.as_str(), c.priority))
        .collect();
    assert_eq!(
        summary,
        [
            ("Name", "string", 0),
            ("Replicas", "integer", 0),
            ("Ready", "string", 0),
            ("Version", "string", 1),
            ("Ratio", "number", 0),
            ("Paused", "boolean", 0),
            ("Age", "date", 0),
            ("Broken", "string", 0),
        ]
    );
    assert_eq!(cols[0].format, "name");
    assert_eq!(cols[1].description, "Desired replicas");
    assert_eq!(cols[4].format, "double");
}

#[test]
fn printer_column_cells_are_read_with_their_paths_and_typed() {
    let cells = custom_cells(&printer_columns(), &database(), NOW);
    assert_eq!(
        cells,
        [
            json!("orders"),
            json!(3),
            json!("False"),
            json!("15"),
            json!(1.0),
            json!(false),
            json!("3h1m"),
            Value::Null,
        ]
    );
}

#[test]
fn missing_values_and_values_of_another_type_leave_the_cell_empty() {
    let printer = CustomPrinter::new(&printer_columns());
    let mut db = database();
    db["spec"] = json!({"replicas": "three", "paused": "no", "version": {"major": 15}});
    db["status"] = Value::Null;
    db["metadata"]["creationTimestamp"] = "yesterday".into();
    let cells = printer.cells(&db, NOW);
    assert_eq!(
        cells,
        [
            json!("orders"),
            Value::Null,
            Value::Null,
            json!("{\"major\":15}"),
            Value::Null,
            Value::Null,
            json!("<invalid>"),
            Value::Null,
        ]
    );
    assert_eq!(printer.columns().len(), cells.len());
}

#[test]
fn without_printer_columns_a_custom_resource_shows_name_and_age() {
    for none in [Value::Null, json!([])] {
        let cols = custom_columns(&none);
        let names: Vec<(&str, ColumnType)> =
            cols.iter().map(|c| (c.name.as_str(), c.type_)).collect();
        assert_eq!(
            names,
            [("Name", ColumnType::String), ("Age", ColumnType::Date)]
        );
        assert_eq!(
            custom_cells(&none, &database(), NOW),
            [json!("orders"), json!("3h1m")]
        );
    }
}

#[test]
fn json_paths_read_fields_indexes_wildcards_and_filters() {
    let obj = json!({
        "metadata": {"labels": {"app.kubernetes.io/name": "orders"}},
        "spec": {"items": [{"n": 1, "tag": "a"}, {"n": 2, "tag": "b"}, {"n": 3}]},
        "status": {"conditions": [
            {"type": "Ready", "status": "True", "reason": "Up"},
            {"type": "Synced", "status": "False"},
        ]},
    });
    let read = |p: &str| -> Option<Value> {
        JsonPath::parse(p)
            .unwrap_or_else(|e| panic!("{e}"))
            .first(&obj)
            .cloned()
    };
    assert_eq!(
        read(r".metadata.labels.app\.kubernetes\.io/name"),
        Some(json!("orders"))
    );
    assert_eq!(
        read(".metadata.labels['app.kubernetes.io/name']"),
        Some(json!("orders"))
    );
    assert_eq!(read("{.spec.items[1].n}"), Some(json!(2)));
    assert_eq!(read("$.spec.items[-1].n"), Some(json!(3)));
    assert_eq!(read(".spec.items[*].tag"), Some(json!("a")));
    assert_eq!(read(".spec.items[?(@.n > 1)].tag"), Some(json!("b")));
    assert_eq!(read(".spec.items[?(@.n >= 3)].n"), Some(json!(3)));
    assert_eq!(read(".spec.items[?(@.tag)].n"), Some(json!(1)));
    assert_eq!(read(".spec.items[?(@.tag != 'a')].n"), Some(json!(2)));
    assert_eq!(
        read(".status.conditions[?(@.type=='Synced')].status"),
        Some(json!("False"))
    );
    assert_eq!(read(".status.conditions[?(@.type==\"Gone\")].status"), None);
    assert_eq!(read(".spec.items[7].n"), None);
    assert_eq!(read(".spec.missing.deeper"), None);
    assert_eq!(read(".spec.items.n"), None);
}

#[test]
fn malformed_json_paths_are_rejected_with_the_reason() {
    for (path, reason) in [
        ("", "empty path"),
        (".spec..x", "recursive descent is not supported"),
        (
            ".spec.items[",
            "expected an index, '*', a quoted name or a filter",
        ),
        (".spec.items[0", "expected ']'"),
        (
            ".spec.items[?(@.n ~ 1)]",
            "expected a comparison (==, !=, <, <=, >, >=)",
        ),
        (
            ".spec.items[?(@.n == nope)]",
            "expected a quoted string, a number or a boolean",
        ),
        (".spec['open", "unterminated string"),
    ] {
        let err = JsonPath::parse(path).expect_err(path);
        assert_eq!(err.reason, reason, "{path}");
        assert!(err.to_string().contains(reason), "{err}");
    }
}

#[test]
fn durations_read_as_kubernetes_writes_them() {
    let cases = [
        (-5, "<invalid>"),
        (-1, "0s"),
        (0, "0s"),
        (5, "5s"),
        (119, "119s"),
        (120, "2m"),
        (200, "3m20s"),
        (599, "9m59s"),
        (600, "10m"),
        (179 * 60, "179m"),
        (3 * 3600, "3h"),
        (7 * 3600 + 59 * 60, "7h59m"),
        (47 * 3600, "47h"),
        (51 * 3600, "2d3h"),
        (8 * 86_400, "8d"),
        (729 * 86_400, "729d"),
        (730 * 86_400, "2y"),
        (800 * 86_400, "2y70d"),
        (9 * 365 * 86_400, "9y"),
    ];
    for (secs, want) in cases {
        assert_eq!(human_duration(secs), want, "{secs}s");
    }
    let short = [
        (-2, "<invalid>"),
        (59, "59s"),
        (3599, "59m"),
        (86_399, "23h"),
        (364 * 86_400, "364d"),
        (800 * 86_400, "2y"),
    ];
    for (secs, want) in short {
        assert_eq!(short_human_duration(secs), want, "{secs}s");
    }
}

#[test]
fn timestamps_parse_with_fractions_and_offsets_and_format_in_utc() {
    let t = parse_rfc3339("2024-05-01T12:00:00Z").expect("plain");
    assert_eq!((t.secs, t.nanos), (NOW, 0));
    let t = parse_rfc3339("2024-05-01T13:30:00.25+01:30").expect("offset");
    assert_eq!((t.secs, t.nanos), (NOW, 250_000_000));
    assert_eq!(format_rfc3339(NOW), "2024-05-01T12:00:00Z");
    assert_eq!(format_rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    assert_eq!(
        parse_rfc3339("0001-01-01T00:00:00Z").map(|t| format_rfc3339(t.secs)),
        Some("0001-01-01T00:00:00Z".to_string())
    );
    for bad in [
        "2024-02-30T00:00:00Z",
        "2024-05-01 12:00",
        "2024-05-01T12:00:00",
        "yesterday",
    ] {
        assert_eq!(parse_rfc3339(bad), None, "{bad}");
    }
}
