//! Ownership taken by ordinary writes: what a create, update or patch changed moves to its
//! manager's `Update` entry.

use serde_json::{json, Value};

use super::deployment;
use crate::merge::{apply, conflict_cause_message, record_update, FieldSet};

const T1: &str = "2026-01-01T00:00:00Z";
const T2: &str = "2026-01-02T00:00:00Z";

fn deploy(spec: Value) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "uid": "u1", "resourceVersion": "5", "labels": {"app": "web"}},
        "spec": spec
    })
}

fn write(old: Option<&Value>, mut new: Value, manager: &str, sub: &str, now: &str) -> Value {
    record_update(
        old,
        &mut new,
        manager,
        sub,
        Some(deployment()),
        "apps/v1",
        now,
    );
    new
}

/// (manager, operation, subresource, owned paths) of every entry, in order.
fn summary(obj: &Value) -> Vec<(String, String, String, Vec<String>)> {
    obj["metadata"]["managedFields"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| {
                    let s = |k: &str| e[k].as_str().unwrap_or("").to_string();
                    let paths = FieldSet::from_json(&e["fieldsV1"]).unwrap().paths();
                    (s("manager"), s("operation"), s("subresource"), paths)
                })
                .collect()
        })
        .unwrap_or_default()
}

fn paths(p: &[&str]) -> Vec<String> {
    p.iter().map(|s| s.to_string()).collect()
}

#[test]
fn a_create_owns_everything_it_set_but_the_identity() {
    let out = write(
        None,
        deploy(json!({"replicas": 1})),
        "kubectl-create",
        "",
        T1,
    );
    assert_eq!(
        summary(&out),
        [(
            "kubectl-create".into(),
            "Update".into(),
            String::new(),
            paths(&[
                ".metadata.labels",
                ".metadata.labels.app",
                ".spec",
                ".spec.replicas"
            ])
        )]
    );
    assert_eq!(out["metadata"]["managedFields"][0]["time"], T1);
    assert_eq!(out["metadata"]["managedFields"][0]["apiVersion"], "apps/v1");
}

#[test]
fn an_update_takes_the_fields_it_changed_from_their_owners() {
    let created = write(
        None,
        deploy(json!({"replicas": 1, "paused": false})),
        "a",
        "",
        T1,
    );
    let mut next = created.clone();
    next["spec"]["replicas"] = json!(3);
    next["metadata"]["resourceVersion"] = json!("6");
    let out = write(Some(&created), next, "b", "", T2);
    let s = summary(&out);
    assert_eq!(s.len(), 2);
    assert_eq!(s[0].0, "a");
    assert!(!s[0].3.contains(&".spec.replicas".to_string()));
    assert!(s[0].3.contains(&".spec.paused".to_string()));
    assert_eq!(
        s[1],
        (
            "b".into(),
            "Update".into(),
            String::new(),
            paths(&[".spec.replicas"])
        )
    );
}

#[test]
fn a_write_that_changes_nothing_keeps_managed_fields() {
    let created = write(None, deploy(json!({"replicas": 1})), "a", "", T1);
    let mut same = created.clone();
    same["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("managedFields");
    same["metadata"]["resourceVersion"] = json!("9");
    let out = write(Some(&created), same, "b", "", T2);
    assert_eq!(
        out["metadata"]["managedFields"],
        created["metadata"]["managedFields"]
    );
}

#[test]
fn removed_fields_leave_every_owner_and_empty_entries_go() {
    let created = write(None, deploy(json!({"replicas": 1})), "a", "", T1);
    let mut labelled = created.clone();
    labelled["metadata"]["labels"]["team"] = json!("x");
    let labelled = write(Some(&created), labelled, "b", "", T2);
    let mut gone = labelled.clone();
    gone["metadata"]["labels"]
        .as_object_mut()
        .unwrap()
        .remove("team");
    let out = write(Some(&labelled), gone, "c", "", T2);
    let managers: Vec<String> = summary(&out).into_iter().map(|e| e.0).collect();
    assert_eq!(
        managers,
        ["a"],
        "b owned only the removed label; c changed nothing it keeps"
    );
}

#[test]
fn subresources_and_versions_have_their_own_entries() {
    let created = write(None, deploy(json!({"replicas": 1})), "ctl", "", T1);
    let mut status = created.clone();
    status["status"] = json!({"replicas": 1});
    let out = write(Some(&created), status, "ctl", "status", T2);
    let s = summary(&out);
    assert_eq!(s.len(), 2);
    assert_eq!(
        s[1],
        (
            "ctl".into(),
            "Update".into(),
            "status".into(),
            paths(&[".status", ".status.replicas"])
        )
    );
    assert_eq!(out["metadata"]["managedFields"][1]["subresource"], "status");

    let mut v1beta = out.clone();
    v1beta["spec"]["paused"] = json!(true);
    let mut v1beta_out = v1beta.clone();
    record_update(
        Some(&out),
        &mut v1beta_out,
        "ctl",
        "",
        Some(deployment()),
        "apps/v1beta2",
        T2,
    );
    assert_eq!(summary(&v1beta_out).len(), 3);
}

#[test]
fn untracked_objects_stay_untracked_and_sent_managed_fields_reset() {
    let old = deploy(json!({"replicas": 1}));
    let mut new = old.clone();
    new["spec"]["replicas"] = json!(2);
    let out = write(Some(&old), new, "a", "", T1);
    assert!(out["metadata"].get("managedFields").is_none());

    let created = write(None, deploy(json!({"replicas": 1})), "a", "", T1);
    let mut reset = created.clone();
    reset["metadata"]["managedFields"] = json!([{}]);
    reset["spec"]["paused"] = json!(true);
    let mut only_reset = created.clone();
    only_reset["metadata"]["managedFields"] = json!([{}]);
    let cleared = write(Some(&created), only_reset, "b", "", T2);
    assert!(cleared["metadata"].get("managedFields").is_none());

    let out = write(Some(&created), reset, "b", "", T2);
    assert_eq!(
        summary(&out),
        [(
            "b".into(),
            "Update".into(),
            String::new(),
            paths(&[".spec.paused"])
        )]
    );
}

#[test]
fn entries_are_ordered_apply_first_then_by_time() {
    let created = write(None, deploy(json!({"replicas": 1})), "z-creator", "", T2);
    let cfg = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"paused": true}});
    let applied = apply(
        Some(&created),
        &cfg,
        "a-applier",
        false,
        Some(deployment()),
        "apps/v1",
        T1,
    )
    .unwrap();
    let managers: Vec<String> = summary(&applied).into_iter().map(|e| e.0).collect();
    assert_eq!(managers, ["a-applier", "z-creator"]);

    let mut older = applied.clone();
    older["spec"]["minReadySeconds"] = json!(1);
    let out = write(Some(&applied), older, "m-updater", "", T1);
    let managers: Vec<String> = summary(&out).into_iter().map(|e| e.0).collect();
    assert_eq!(managers, ["a-applier", "m-updater", "z-creator"]);
}

#[test]
fn conflict_causes_read_as_kubernetes_writes_them() {
    let created = write(
        None,
        deploy(json!({"replicas": 1})),
        "kube-controller-manager",
        "",
        T1,
    );
    let cfg = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 2}});
    let Err(crate::merge::ApplyError::Conflicts(c)) = apply(
        Some(&created),
        &cfg,
        "kubectl",
        false,
        Some(deployment()),
        "apps/v1",
        T2,
    ) else {
        panic!("expected a conflict");
    };
    assert_eq!(
        conflict_cause_message(&c[0]),
        format!("conflict with \"kube-controller-manager\" using apps/v1 at {T1}")
    );
}
