//! The garbage collector's decisions, one table row per case Kubernetes' garbage
//! collector tests cover: background collection, dropping references to gone owners,
//! orphaning, and foreground deletion blocked by `blockOwnerDeletion`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::{json, Value};

use super::*;

fn meta(v: Value) -> ObjectMeta {
    serde_json::from_value(v).unwrap()
}

fn owner_ref(uid: &str, block: bool) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": uid, "uid": uid,
        "blockOwnerDeletion": block})
}

fn dependent(name: &str, owners: Value, deleting: bool) -> (&'static str, ObjectMeta) {
    let mut v = json!({"name": name, "ownerReferences": owners});
    if deleting {
        v["deletionTimestamp"] = json!("2023-11-14T22:13:20Z");
    }
    (name.to_string().leak(), meta(v))
}

fn deleting_owner(finalizers: &[&str]) -> ObjectMeta {
    meta(
        json!({"name": "o", "uid": "o", "deletionTimestamp": "2023-11-14T22:13:20Z",
        "finalizers": finalizers}),
    )
}

#[test]
fn dependents_follow_their_owners() {
    let two = json!({"ownerReferences": [owner_ref("a", false), owner_ref("b", false)]});
    let uids = |o: &Owners| match o {
        Owners::Keep(refs) => refs.iter().map(|r| r.uid.clone()).collect(),
        _ => Vec::<String>::new(),
    };
    let rows = [
        (
            "every owner alive: nothing",
            two.clone(),
            vec![true, true],
            "nothing",
        ),
        (
            "every owner gone: collected",
            two.clone(),
            vec![false, false],
            "collect",
        ),
        (
            "one owner gone: its reference goes",
            two.clone(),
            vec![true, false],
            "keep",
        ),
        ("no owners: nothing", json!({}), vec![], "nothing"),
    ];
    for (name, m, alive, want) in rows {
        let got = owners(&meta(m), &alive);
        let kind = match got {
            Owners::Collect => "collect",
            Owners::Keep(_) => "keep",
            Owners::Nothing => "nothing",
        };
        assert_eq!(kind, want, "{name}");
        if want == "keep" {
            assert_eq!(uids(&got), ["a"], "{name}");
        }
    }
    let mut m = meta(two);
    m.deletion_timestamp =
        meta(json!({"deletionTimestamp": "2023-11-14T22:13:20Z"})).deletion_timestamp;
    assert_eq!(
        owners(&m, &[false, false]),
        Owners::Nothing,
        "already going"
    );
}

#[test]
fn an_orphaning_owner_releases_its_dependents_then_its_finalizer() {
    let deps = vec![
        dependent("d1", json!([owner_ref("o", true)]), false),
        dependent(
            "d2",
            json!([owner_ref("o", true), owner_ref("other", false)]),
            false,
        ),
    ];
    let got = finalizing(&deleting_owner(&["orphan", "example.com/keep"]), &deps).unwrap();
    let Finalizing::Orphan {
        dependents,
        finalizers,
    } = got
    else {
        panic!("{got:?}");
    };
    let kept: Vec<(&str, Vec<String>)> = dependents
        .iter()
        .map(|(k, refs)| (*k, refs.iter().map(|r| r.uid.clone()).collect()))
        .collect();
    assert_eq!(
        kept,
        vec![("d1", vec![]), ("d2", vec!["other".to_string()])]
    );
    assert_eq!(finalizers, ["example.com/keep"]);
}

#[test]
fn foreground_deletion_waits_for_blocking_dependents() {
    type Row = (
        &'static str,
        Vec<(&'static str, ObjectMeta)>,
        Vec<&'static str>,
        bool,
    );
    let rows: Vec<Row> = vec![
        (
            "dependents are deleted and block the owner",
            vec![dependent("d1", json!([owner_ref("o", true)]), false)],
            vec!["d1"],
            false,
        ),
        (
            "one already going is not deleted again but still blocks",
            vec![dependent("d1", json!([owner_ref("o", true)]), true)],
            vec![],
            false,
        ),
        (
            "a dependent without blockOwnerDeletion does not block",
            vec![dependent("d1", json!([owner_ref("o", false)]), false)],
            vec!["d1"],
            true,
        ),
        (
            "no dependents left: the finalizer goes",
            vec![],
            vec![],
            true,
        ),
    ];
    for (name, deps, want_delete, released) in rows {
        let got = finalizing(&deleting_owner(&["foregroundDeletion"]), &deps).unwrap();
        let Finalizing::Foreground { delete, finalizers } = got else {
            panic!("{name}: {got:?}");
        };
        assert_eq!(delete, want_delete, "{name}: deletes");
        assert_eq!(finalizers.is_some(), released, "{name}: finalizer released");
    }
    let live = meta(json!({"name": "o", "uid": "o", "finalizers": ["foregroundDeletion"]}));
    assert!(
        finalizing::<&str>(&live, &[]).is_none(),
        "not being deleted"
    );
}
