//! Server-side apply: create, merge between managers, conflicts, force, and removal of what
//! an applier stops applying, as Kubernetes documents them.

use serde_json::{json, Value};

use super::deployment;
use crate::merge::{
    apply, apply_to, conflict_message, record_update, ApplyError, Conflict, FieldSet, Target,
};

const T1: &str = "2026-01-01T00:00:00Z";
const T2: &str = "2026-01-02T00:00:00Z";

fn deploy(spec: Value) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": spec
    })
}

fn with_labels(mut obj: Value, labels: Value) -> Value {
    obj["metadata"]["labels"] = labels;
    obj
}

fn containers(items: Value) -> Value {
    deploy(json!({"template": {"spec": {"containers": items}}}))
}

fn apply_as(
    live: Option<&Value>,
    cfg: &Value,
    manager: &str,
    force: bool,
) -> Result<Value, ApplyError> {
    apply(live, cfg, manager, force, Some(deployment()), "apps/v1", T1)
}

fn ok(live: Option<&Value>, cfg: &Value, manager: &str) -> Value {
    apply_as(live, cfg, manager, false).unwrap_or_else(|e| panic!("{manager}: {e}"))
}

/// The managedFields entries of `obj` for `manager`.
fn entries<'a>(obj: &'a Value, manager: &str) -> Vec<&'a Value> {
    obj["metadata"]["managedFields"]
        .as_array()
        .map(|a| a.iter().filter(|e| e["manager"] == manager).collect())
        .unwrap_or_default()
}

/// The fields `manager` owns in `obj`, printed as paths.
fn owned(obj: &Value, manager: &str) -> Vec<String> {
    let mut out = Vec::new();
    for e in entries(obj, manager) {
        out.extend(FieldSet::from_json(&e["fieldsV1"]).unwrap().paths());
    }
    out
}

fn without_managed(mut obj: Value) -> Value {
    if let Some(m) = obj["metadata"].as_object_mut() {
        m.remove("managedFields");
    }
    obj
}

#[test]
fn create_records_an_apply_entry_for_what_was_applied() {
    let cfg = with_labels(
        deploy(json!({"replicas": 2, "paused": null})),
        json!({"app": "web"}),
    );
    let out = ok(None, &cfg, "kubectl");
    assert_eq!(
        without_managed(out.clone()),
        with_labels(deploy(json!({"replicas": 2})), json!({"app": "web"}))
    );
    let e = entries(&out, "kubectl");
    assert_eq!(e.len(), 1);
    assert_eq!(
        *e[0],
        json!({
            "manager": "kubectl", "operation": "Apply", "apiVersion": "apps/v1", "time": T1,
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:metadata": {"f:labels": {"f:app": {}}}, "f:spec": {"f:paused": {}, "f:replicas": {}}}
        })
    );
}

#[test]
fn managers_merge_and_share_fields_with_equal_values() {
    let a = deploy(json!({"replicas": 2, "minReadySeconds": 5}));
    let live = ok(None, &a, "a");
    let b = deploy(json!({"replicas": 2, "revisionHistoryLimit": 3}));
    let out = ok(Some(&live), &b, "b");
    assert_eq!(
        out["spec"],
        json!({"replicas": 2, "minReadySeconds": 5, "revisionHistoryLimit": 3})
    );
    assert_eq!(
        owned(&out, "a"),
        [".spec.minReadySeconds", ".spec.replicas"]
    );
    assert_eq!(
        owned(&out, "b"),
        [".spec.replicas", ".spec.revisionHistoryLimit"]
    );
}

#[test]
fn changing_another_managers_field_conflicts_unless_forced() {
    let live = ok(None, &deploy(json!({"replicas": 2, "paused": false})), "a");
    let cfg = deploy(json!({"replicas": 5, "paused": true}));
    let Err(ApplyError::Conflicts(c)) = apply_as(Some(&live), &cfg, "b", false) else {
        panic!("expected conflicts");
    };
    let fields: Vec<&str> = c.iter().map(|c| c.field.as_str()).collect();
    assert_eq!(fields, [".spec.paused", ".spec.replicas"]);
    assert!(c.iter().all(|c| c.manager == "a"));
    assert_eq!(
        conflict_message(&c),
        "Apply failed with 2 conflicts: conflicts with \"a\":\n- .spec.paused\n- .spec.replicas"
    );

    let out = apply_as(Some(&live), &cfg, "b", true).unwrap();
    assert_eq!(out["spec"], json!({"replicas": 5, "paused": true}));
    assert!(
        entries(&out, "a").is_empty(),
        "a owned nothing else and is dropped"
    );
    assert_eq!(owned(&out, "b"), [".spec.paused", ".spec.replicas"]);
}

#[test]
fn a_conflict_with_an_update_names_its_version_and_time() {
    let created = ok(None, &deploy(json!({"replicas": 1})), "kubectl");
    let mut scaled = created.clone();
    scaled["spec"]["replicas"] = json!(4);
    record_update(
        Some(&created),
        &mut scaled,
        "hpa",
        "",
        Some(deployment()),
        "apps/v1",
        T2,
    );
    assert_eq!(owned(&scaled, "hpa"), [".spec.replicas"]);
    assert!(entries(&scaled, "kubectl").is_empty());

    let err = apply_as(
        Some(&scaled),
        &deploy(json!({"replicas": 1})),
        "kubectl",
        false,
    )
    .unwrap_err();
    let ApplyError::Conflicts(c) = &err else {
        panic!("{err}")
    };
    assert_eq!(
        c,
        &[Conflict {
            manager: "hpa".into(),
            field: ".spec.replicas".into(),
            described: format!("\"hpa\" using apps/v1 at {T2}"),
        }]
    );
    assert_eq!(
        err.to_string(),
        format!("Apply failed with 1 conflict: conflict with \"hpa\" using apps/v1 at {T2}: .spec.replicas")
    );
}

#[test]
fn what_an_applier_stops_applying_is_removed_unless_someone_else_owns_it() {
    let first = with_labels(
        deploy(json!({"replicas": 2, "minReadySeconds": 5})),
        json!({"a": "1", "b": "2"}),
    );
    let live = ok(None, &first, "a");
    let live = ok(
        Some(&live),
        &with_labels(deploy(json!({})), json!({"b": "2"})),
        "other",
    );
    let second = deploy(json!({"replicas": 2}));
    let out = ok(Some(&live), &second, "a");
    assert_eq!(out["spec"], json!({"replicas": 2}));
    assert_eq!(
        out["metadata"]["labels"],
        json!({"b": "2"}),
        "b stays: other owns it"
    );
    assert_eq!(owned(&out, "a"), [".spec.replicas"]);
}

#[test]
fn a_struct_the_applier_left_goes_with_its_unowned_fields() {
    let cfg = deploy(json!({"strategy": {"rollingUpdate": {"maxSurge": 1}}}));
    let mut live = ok(None, &cfg, "a");
    // A default nobody applied, as the server's defaulting would add.
    live["spec"]["strategy"]["type"] = json!("RollingUpdate");
    let out = ok(Some(&live), &deploy(json!({"replicas": 1})), "a");
    assert_eq!(out["spec"], json!({"replicas": 1}));
}

#[test]
fn list_map_items_merge_by_key_and_leave_with_their_applier() {
    let a =
        containers(json!([{"name": "app", "image": "app:1"}, {"name": "side", "image": "side:1"}]));
    let live = ok(None, &a, "a");
    let b = containers(json!([{"name": "debug", "image": "busybox"}]));
    let live = ok(Some(&live), &b, "b");
    let names = |o: &Value| -> Vec<String> {
        o["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names(&live), ["app", "side", "debug"]);
    assert!(owned(&live, "b")
        .contains(&".spec.template.spec.containers[name=\"debug\"].image".to_string()));

    let a2 = containers(json!([{"name": "app", "image": "app:2"}]));
    let out = ok(Some(&live), &a2, "a");
    assert_eq!(names(&out), ["app", "debug"]);
    assert_eq!(
        out["spec"]["template"]["spec"]["containers"][0]["image"],
        "app:2"
    );
}

#[test]
fn sets_merge_by_value_and_atomic_lists_conflict_whole() {
    let fin = |f: Value| json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "finalizers": f}});
    let live = ok(None, &fin(json!(["x"])), "a");
    let live = ok(Some(&live), &fin(json!(["y"])), "b");
    assert_eq!(live["metadata"]["finalizers"], json!(["x", "y"]));
    let out = ok(Some(&live), &fin(json!([])), "a");
    assert_eq!(out["metadata"]["finalizers"], json!(["y"]));

    let args = |a: Value| containers(json!([{"name": "app", "args": a}]));
    let live = ok(None, &args(json!(["1"])), "a");
    let err = apply_as(Some(&live), &args(json!(["2"])), "b", false).unwrap_err();
    let ApplyError::Conflicts(c) = err else {
        panic!()
    };
    assert_eq!(
        c[0].field,
        ".spec.template.spec.containers[name=\"app\"].args"
    );
}

#[test]
fn without_a_schema_every_list_is_atomic() {
    let obj = |items: Value| json!({"apiVersion": "x.io/v1", "kind": "Thing", "metadata": {"name": "t"}, "spec": {"items": items}});
    let live = apply(
        None,
        &obj(json!([{"name": "a"}])),
        "a",
        false,
        None,
        "x.io/v1",
        T1,
    )
    .unwrap();
    let err = apply(
        Some(&live),
        &obj(json!([{"name": "b"}])),
        "b",
        false,
        None,
        "x.io/v1",
        T1,
    )
    .unwrap_err();
    let ApplyError::Conflicts(c) = err else {
        panic!()
    };
    assert_eq!(c[0].field, ".spec.items");
    let out = apply(
        Some(&live),
        &obj(json!([{"name": "b"}])),
        "b",
        true,
        None,
        "x.io/v1",
        T1,
    )
    .unwrap();
    assert_eq!(out["spec"]["items"], json!([{"name": "b"}]));
    assert_eq!(owned(&out, "b"), [".spec", ".spec.items"]);
}

#[test]
fn an_untracked_object_is_owned_by_before_first_apply() {
    let live = deploy(json!({"replicas": 1}));
    let err = apply_as(
        Some(&live),
        &deploy(json!({"replicas": 3})),
        "kubectl",
        false,
    )
    .unwrap_err();
    let ApplyError::Conflicts(c) = err else {
        panic!()
    };
    assert_eq!(c[0].manager, "before-first-apply");
}

#[test]
fn reapplying_the_same_configuration_keeps_the_entry_and_its_time() {
    let cfg = deploy(json!({"replicas": 2}));
    let live = ok(None, &cfg, "a");
    let again = apply(
        Some(&live),
        &cfg,
        "a",
        false,
        Some(deployment()),
        "apps/v1",
        T2,
    )
    .unwrap();
    assert_eq!(again, live);
}

#[test]
fn invalid_configurations_are_refused() {
    let mut managed = deploy(json!({}));
    managed["metadata"]["managedFields"] = json!([]);
    let no_key = containers(json!([{"image": "x"}]));
    let twice = containers(json!([{"name": "a"}, {"name": "a"}]));
    let cases = [
        (managed, "metadata.managedFields", "must be nil"),
        (
            no_key,
            "spec.template.spec.containers",
            "element 0: associative list with keys has an element that omits key field \"name\"",
        ),
        (
            twice,
            "spec.template.spec.containers",
            "duplicate entries for key [name=\"a\"]",
        ),
    ];
    for (cfg, path, msg) in cases {
        let Err(ApplyError::Invalid { path: p, message }) = apply_as(None, &cfg, "a", false) else {
            panic!("{path}: expected invalid");
        };
        assert_eq!(p, path);
        assert!(message.contains(msg), "{message}");
    }
}

#[test]
fn an_apply_to_status_has_its_own_entry() {
    let live = ok(None, &deploy(json!({"replicas": 2})), "kubectl");
    let status = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "status": {"replicas": 2}});
    let to = Target {
        manager: "kubectl",
        subresource: "status",
        api_version: "apps/v1",
        now: T2,
    };
    let out = apply_to(Some(&live), &status, &to, false, Some(deployment())).unwrap();
    let e = entries(&out, "kubectl");
    assert_eq!(e.len(), 2);
    assert_eq!(e[1]["subresource"], "status");
    assert_eq!(
        owned(&out, "kubectl"),
        [".spec.replicas", ".status.replicas"]
    );
    assert_eq!(out["spec"]["replicas"], 2, "the main entry's fields stay");
}

#[test]
fn an_invalid_whole_configuration_reads_without_a_path() {
    let e = apply_as(None, &json!([1]), "a", false).unwrap_err();
    assert_eq!(
        e.to_string(),
        "the applied configuration must be a JSON object"
    );
}

#[test]
fn set_items_an_update_added_stay_in_place_between_applies() {
    let fin = |f: Value| json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "finalizers": f}});
    let live = ok(None, &fin(json!(["a", "c"])), "default");
    let mut updated = live.clone();
    updated["metadata"]["finalizers"] = json!(["a", "b", "c", "d"]);
    record_update(
        Some(&live),
        &mut updated,
        "controller",
        "",
        Some(deployment()),
        "apps/v1",
        T2,
    );

    let out = ok(
        Some(&updated),
        &fin(json!(["a", "aprime", "c", "cprime"])),
        "default",
    );
    assert_eq!(
        out["metadata"]["finalizers"],
        json!(["a", "b", "aprime", "c", "d", "cprime"])
    );
    let v = |s: &str| format!(".metadata.finalizers[=\"{s}\"]");
    assert_eq!(
        owned(&out, "default"),
        [v("a"), v("aprime"), v("c"), v("cprime")]
    );
    assert_eq!(owned(&out, "controller"), [v("b"), v("d")]);

    let shared = ok(Some(&updated), &fin(json!(["a", "b", "c"])), "default");
    assert_eq!(
        shared["metadata"]["finalizers"],
        json!(["a", "b", "c", "d"])
    );
    assert_eq!(owned(&shared, "default"), [v("a"), v("b"), v("c")]);
    assert_eq!(owned(&shared, "controller"), [v("b"), v("d")]);
}
