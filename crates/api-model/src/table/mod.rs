//! Server-side printing: the `meta.k8s.io/v1` Table that `kubectl get` asks for with
//! `Accept: application/json;as=Table;v=v1;g=meta.k8s.io`.
//!
//! For each built-in kind, the columns Kubernetes' printers declare and the cells they
//! compute from an object ([`Printer`]); for custom kinds, the columns a CRD version
//! declares in `additionalPrinterColumns`, read with a small JSONPath ([`CustomPrinter`]);
//! for any other kind, Kubernetes' default table (Name, Created At). As the apiserver does,
//! every row carries the cells of every column, wide ones (priority 1) included: the client
//! decides which it shows.
//!
//! Ages are measured against a `now` (unix seconds) the caller passes, so that one list is
//! printed against one clock. Printing reads the object in place; nothing is cloned.

mod apps;
mod autoscaling;
mod batch;
mod cluster;
mod core;
mod custom;
mod event;
mod format;
mod jsonpath;
mod pod;
mod storage;
mod time;

#[cfg(test)]
mod tests;

use serde_json::{json, Map, Value};

pub use custom::{custom_cells, custom_columns, CustomPrinter};
pub use jsonpath::{JsonPath, JsonPathError};
pub use time::{format_rfc3339, human_duration, parse_rfc3339, short_human_duration, Timestamp};

/// The type of a column's cells, as a TableColumnDefinition names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColumnType {
    String,
    Integer,
    Number,
    Boolean,
    Date,
}

impl ColumnType {
    /// The name Kubernetes gives the type (`string`, `integer`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            ColumnType::String => "string",
            ColumnType::Integer => "integer",
            ColumnType::Number => "number",
            ColumnType::Boolean => "boolean",
            ColumnType::Date => "date",
        }
    }

    /// The type named `name`, as a CRD's printer column spells it.
    pub fn parse(name: &str) -> Option<ColumnType> {
        Some(match name {
            "string" => ColumnType::String,
            "integer" => ColumnType::Integer,
            "number" => ColumnType::Number,
            "boolean" => ColumnType::Boolean,
            "date" => ColumnType::Date,
            _ => return None,
        })
    }
}

/// One column of a Table: a `TableColumnDefinition`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    pub type_: ColumnType,
    /// An OpenAPI format hint (`name` for the column that names the object).
    pub format: String,
    pub description: String,
    /// 0 for the columns `kubectl get` shows, 1 for those only `-o wide` shows.
    pub priority: i32,
}

impl Column {
    /// The column as TableColumnDefinition JSON.
    pub fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "type": self.type_.as_str(),
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        })
    }
}

/// One row of a Table: the cells, and the object (or its metadata) they were printed from.
#[derive(Clone, Debug, PartialEq)]
pub struct TableRow {
    pub cells: Vec<Value>,
    /// `TableRowCondition`s (a finished pod's row is marked `Completed`); `None` for none.
    pub conditions: Option<Value>,
    /// The row's `object`; `Null` leaves it out (`includeObject=None`).
    pub object: Value,
}

impl TableRow {
    pub fn new(cells: Vec<Value>, object: Value) -> Self {
        TableRow {
            cells,
            conditions: None,
            object,
        }
    }

    fn into_json(self) -> Value {
        let mut row = Map::with_capacity(3);
        row.insert("cells".into(), Value::Array(self.cells));
        if let Some(c) = self.conditions {
            row.insert("conditions".into(), c);
        }
        if !self.object.is_null() {
            row.insert("object".into(), self.object);
        }
        Value::Object(row)
    }
}

impl From<(Vec<Value>, Value)> for TableRow {
    fn from((cells, object): (Vec<Value>, Value)) -> Self {
        TableRow::new(cells, object)
    }
}

/// The whole `meta.k8s.io/v1` Table. An empty `resource_version` or `continue_token` is
/// left out of its metadata, as Kubernetes leaves them out.
pub fn table(
    columns: &[Column],
    rows: Vec<TableRow>,
    resource_version: &str,
    continue_token: &str,
) -> Value {
    let mut metadata = Map::new();
    if !resource_version.is_empty() {
        metadata.insert("resourceVersion".into(), resource_version.into());
    }
    if !continue_token.is_empty() {
        metadata.insert("continue".into(), continue_token.into());
    }
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": columns.iter().map(Column::to_json).collect::<Vec<_>>(),
        "rows": rows.into_iter().map(TableRow::into_json).collect::<Vec<_>>(),
    })
}

/// Where a column's description comes from.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Doc {
    Text(&'static str),
    /// The description of property `.1` of OpenAPI definition `.0`, as Kubernetes takes
    /// its column descriptions from the API's field documentation.
    Field(&'static str, &'static str),
}

/// A built-in column, declared once as a constant.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Spec {
    name: &'static str,
    ty: ColumnType,
    format: &'static str,
    doc: Doc,
    priority: i32,
}

pub(crate) const fn col(name: &'static str, ty: ColumnType, doc: Doc) -> Spec {
    Spec {
        name,
        ty,
        format: "",
        doc,
        priority: 0,
    }
}

/// A column only `-o wide` shows.
pub(crate) const fn wide(name: &'static str, ty: ColumnType, doc: Doc) -> Spec {
    Spec {
        name,
        ty,
        format: "",
        doc,
        priority: 1,
    }
}

const META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";

/// The column that names the object.
pub(crate) const NAME: Spec = Spec {
    name: "Name",
    ty: ColumnType::String,
    format: "name",
    doc: Doc::Field(META, "name"),
    priority: 0,
};

/// The object's age.
pub(crate) const AGE: Spec = col(
    "Age",
    ColumnType::String,
    Doc::Field(META, "creationTimestamp"),
);

/// The template's containers and images, which the controllers show in wide output.
pub(crate) const CONTAINERS: Spec = wide(
    "Containers",
    ColumnType::String,
    Doc::Text("Names of each container in the template."),
);
pub(crate) const IMAGES: Spec = wide(
    "Images",
    ColumnType::String,
    Doc::Text("Images referenced by each container in the template."),
);

impl Spec {
    fn column(&self) -> Column {
        let description = match self.doc {
            Doc::Text(t) => t,
            Doc::Field(def, prop) => crate::schema::builtin()
                .defs
                .get(def)
                .and_then(|d| d["properties"][prop]["description"].as_str())
                .unwrap_or(""),
        };
        Column {
            name: self.name.to_string(),
            type_: self.ty,
            format: self.format.to_string(),
            description: description.to_string(),
            priority: self.priority,
        }
    }
}

type CellsFn = fn(&Value, i64) -> Vec<Value>;

/// How one built-in kind is printed: its columns and the function computing a row's cells.
pub struct Printer {
    columns: &'static [Spec],
    cells: CellsFn,
    conditions: Option<fn(&Value) -> Option<Value>>,
}

impl Printer {
    /// The printer of kind `kind` in API group `group` (`""` for the core group); the
    /// default one (Name, Created At) for a kind Kubernetes has no printer for. Look it up
    /// once per list and print every row with it.
    pub fn for_kind(group: &str, kind: &str) -> &'static Printer {
        match (group, kind) {
            ("", "Pod") => &pod::POD,
            ("", "Node") => &core::NODE,
            ("", "Namespace") => &core::NAMESPACE,
            ("", "Service") => &core::SERVICE,
            ("", "Endpoints") => &core::ENDPOINTS,
            ("", "ConfigMap") => &core::CONFIG_MAP,
            ("", "Secret") => &core::SECRET,
            ("", "ServiceAccount") => &core::SERVICE_ACCOUNT,
            ("", "ReplicationController") => &core::REPLICATION_CONTROLLER,
            ("", "ResourceQuota") => &core::RESOURCE_QUOTA,
            ("", "Event") => &event::EVENT,
            ("events.k8s.io", "Event") => &event::EVENTS_EVENT,
            ("", "PersistentVolume") => &storage::PERSISTENT_VOLUME,
            ("", "PersistentVolumeClaim") => &storage::PERSISTENT_VOLUME_CLAIM,
            ("apps", "ReplicaSet") => &apps::REPLICA_SET,
            ("apps", "Deployment") => &apps::DEPLOYMENT,
            ("apps", "DaemonSet") => &apps::DAEMON_SET,
            ("apps", "StatefulSet") => &apps::STATEFUL_SET,
            ("apps", "ControllerRevision") => &apps::CONTROLLER_REVISION,
            ("batch", "Job") => &batch::JOB,
            ("batch", "CronJob") => &batch::CRON_JOB,
            ("autoscaling", "HorizontalPodAutoscaler") => &autoscaling::HPA,
            ("policy", "PodDisruptionBudget") => &autoscaling::PDB,
            ("coordination.k8s.io", "Lease") => &cluster::LEASE,
            ("discovery.k8s.io", "EndpointSlice") => &cluster::ENDPOINT_SLICE,
            ("rbac.authorization.k8s.io", "RoleBinding" | "ClusterRoleBinding") => {
                &cluster::ROLE_BINDING
            }
            ("certificates.k8s.io", "CertificateSigningRequest") => &cluster::CSR,
            (
                "admissionregistration.k8s.io",
                "ValidatingWebhookConfiguration" | "MutatingWebhookConfiguration",
            ) => &cluster::WEBHOOK_CONFIGURATION,
            ("scheduling.k8s.io", "PriorityClass") => &cluster::PRIORITY_CLASS,
            // Role, ClusterRole, LimitRange, CustomResourceDefinition and the rest have no
            // printer in Kubernetes either.
            _ => &DEFAULT,
        }
    }

    /// The column definitions.
    pub fn columns(&self) -> Vec<Column> {
        self.columns.iter().map(Spec::column).collect()
    }

    /// The cells of `obj`'s row, one per column.
    pub fn cells(&self, obj: &Value, now: i64) -> Vec<Value> {
        (self.cells)(obj, now)
    }

    /// The row's `conditions`, for the kinds that mark rows.
    pub fn conditions(&self, obj: &Value) -> Option<Value> {
        self.conditions.and_then(|f| f(obj))
    }

    /// The row for `obj`, with `object` as the row's object.
    pub fn row(&self, obj: &Value, object: Value, now: i64) -> TableRow {
        TableRow {
            cells: self.cells(obj, now),
            conditions: self.conditions(obj),
            object,
        }
    }
}

/// The columns of kind `kind` in API group `group`.
pub fn columns(group: &str, kind: &str) -> Vec<Column> {
    Printer::for_kind(group, kind).columns()
}

/// The cells of `obj`, of kind `kind` in API group `group`, with ages measured at `now`.
pub fn cells(group: &str, kind: &str, obj: &Value, now: i64) -> Vec<Value> {
    Printer::for_kind(group, kind).cells(obj, now)
}

/// Kubernetes' default table for a kind without a printer.
static DEFAULT: Printer = Printer {
    columns: &[
        NAME,
        col(
            "Created At",
            ColumnType::Date,
            Doc::Field(META, "creationTimestamp"),
        ),
    ],
    cells: default_cells,
    conditions: None,
};

fn default_cells(obj: &Value, _now: i64) -> Vec<Value> {
    let created = parse_rfc3339(format::text(&obj["metadata"]["creationTimestamp"]))
        .map_or(time::ZERO_SECS, |t| t.secs);
    vec![format::name(obj), format_rfc3339(created).into()]
}
