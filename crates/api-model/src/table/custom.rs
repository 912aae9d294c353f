//! Tables of custom resources: the Name column, then the `additionalPrinterColumns` of the
//! CRD version (or, without any, an Age column), each cell read from the object with the
//! column's JSONPath and typed as the column says. A `date` column prints how long ago its
//! timestamp was.

use serde_json::Value;

use super::jsonpath::JsonPath;
use super::time::{parse_rfc3339, since_timestamp};
use super::{Column, ColumnType, NAME};

/// The printer of one CRD version, with its JSONPaths parsed once: build it once per list.
#[derive(Clone, Debug)]
pub struct CustomPrinter {
    columns: Vec<Column>,
    /// The path of each column after Name; `None` for one that does not parse, whose cells
    /// are left empty.
    paths: Vec<Option<JsonPath>>,
}

const CREATION_TIMESTAMP: &str = ".metadata.creationTimestamp";

impl CustomPrinter {
    /// The printer for `printer_columns`, a CRD version's `additionalPrinterColumns`
    /// (`null` or `[]` for none).
    pub fn new(printer_columns: &Value) -> CustomPrinter {
        let declared = printer_columns.as_array().map_or(&[][..], Vec::as_slice);
        let mut columns = Vec::with_capacity(declared.len() + 1);
        let mut paths = Vec::with_capacity(declared.len());
        columns.push(NAME.column());
        if declared.is_empty() {
            let mut age = super::AGE.column();
            age.type_ = ColumnType::Date;
            columns.push(age);
            paths.push(JsonPath::parse(CREATION_TIMESTAMP).ok());
        }
        for c in declared {
            let text = |k: &str| c[k].as_str().unwrap_or("").to_string();
            columns.push(Column {
                name: text("name"),
                type_: ColumnType::parse(c["type"].as_str().unwrap_or(""))
                    .unwrap_or(ColumnType::String),
                format: text("format"),
                description: text("description"),
                priority: c["priority"]
                    .as_i64()
                    .and_then(|p| i32::try_from(p).ok())
                    .unwrap_or(0),
            });
            // v1beta1 spelled the key JSONPath.
            let path = c["jsonPath"].as_str().or_else(|| c["JSONPath"].as_str());
            paths.push(path.and_then(|p| JsonPath::parse(p).ok()));
        }
        CustomPrinter { columns, paths }
    }

    /// The column definitions, Name first.
    pub fn columns(&self) -> &[Column] {
        &self.columns
    }

    /// The cells of `obj`: its name, then each column's value (`null` where the path finds
    /// nothing or a value of another type).
    pub fn cells(&self, obj: &Value, now: i64) -> Vec<Value> {
        let mut cells = Vec::with_capacity(self.columns.len());
        cells.push(super::format::name(obj));
        for (column, path) in self.columns[1..].iter().zip(&self.paths) {
            let found = path.as_ref().and_then(|p| p.first(obj));
            cells.push(found.map_or(Value::Null, |v| cell(column.type_, v, now)));
        }
        cells
    }
}

/// The columns of a custom resource whose CRD version declares `printer_columns`.
pub fn custom_columns(printer_columns: &Value) -> Vec<Column> {
    CustomPrinter::new(printer_columns).columns
}

/// The cells of custom resource `obj`. Parses the paths on every call: for a list, build a
/// [`CustomPrinter`] once instead.
pub fn custom_cells(printer_columns: &Value, obj: &Value, now: i64) -> Vec<Value> {
    CustomPrinter::new(printer_columns).cells(obj, now)
}

/// `v` as a cell of type `ty`, or `null` when it is not of that type.
fn cell(ty: ColumnType, v: &Value, now: i64) -> Value {
    match (ty, v) {
        (_, Value::Null) => Value::Null,
        (ColumnType::String, Value::String(_)) => v.clone(),
        (ColumnType::String, Value::Number(n)) => n.to_string().into(),
        (ColumnType::String, Value::Bool(b)) => b.to_string().into(),
        // Maps and lists print as compact JSON.
        (ColumnType::String, _) => v.to_string().into(),
        (ColumnType::Integer, Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().map(|f| f as i64))
            .map_or(Value::Null, Value::from),
        (ColumnType::Number, Value::Number(n)) => n.as_f64().map_or(Value::Null, Value::from),
        (ColumnType::Boolean, Value::Bool(_)) => v.clone(),
        (ColumnType::Date, Value::String(s)) => date(s, now).into(),
        _ => Value::Null,
    }
}

/// How long ago timestamp `s` was: `<unknown>` for an unset one, `<invalid>` for one that
/// does not parse.
fn date(s: &str, now: i64) -> String {
    if s.is_empty() || s == "null" {
        return "<unknown>".to_string();
    }
    match parse_rfc3339(s) {
        Some(t) => since_timestamp(t, now),
        None => "<invalid>".to_string(),
    }
}
