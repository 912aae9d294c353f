//! temporary
use serde_json::{json, Value};
use crate::merge::strategic_merge;
use crate::schema::{Definitions, Node};

pub(super) fn merge_item_defs() -> Definitions {
    let item = json!({"type": "object", "properties": {
        "name": {"type": "string"}, "value": {"type": "string"}, "other": {"type": "string"},
        "mergingList": {"type": "array", "items": {"$ref": "#/definitions/MergeItem"}, "x-kubernetes-patch-strategy": "merge", "x-kubernetes-patch-merge-key": "name"},
        "nonMergingList": {"type": "array", "items": {"$ref": "#/definitions/MergeItem"}},
        "mergingIntList": {"type": "array", "items": {"type": "integer"}, "x-kubernetes-patch-strategy": "merge"},
        "nonMergingIntList": {"type": "array", "items": {"type": "integer"}},
        "mergeItemPtr": {"type": "array", "items": {"$ref": "#/definitions/MergeItem"}, "x-kubernetes-patch-strategy": "merge", "x-kubernetes-patch-merge-key": "name"},
        "simpleMap": {"type": "object", "additionalProperties": {"type": "string"}},
        "replacingItem": {"type": "object", "x-kubernetes-patch-strategy": "replace"},
        "retainKeysMap": {"$ref": "#/definitions/RetainKeysMergeItem", "x-kubernetes-patch-strategy": "retainKeys"},
        "retainKeysMergingList": {"type": "array", "items": {"$ref": "#/definitions/MergeItem"}, "x-kubernetes-patch-strategy": "merge,retainKeys", "x-kubernetes-patch-merge-key": "name"}
    }});
    let rk = json!({"type": "object", "properties": {
        "name": {"type": "string"}, "value": {"type": "string"}, "other": {"type": "string"},
        "simpleMap": {"type": "object", "additionalProperties": {"type": "string"}},
        "mergingIntList": {"type": "array", "items": {"type": "integer"}, "x-kubernetes-patch-strategy": "merge"},
        "mergingList": {"type": "array", "items": {"$ref": "#/definitions/MergeItem"}, "x-kubernetes-patch-strategy": "merge", "x-kubernetes-patch-merge-key": "name"},
        "nonMergingList": {"type": "array", "items": {"$ref": "#/definitions/MergeItem"}}
    }});
    let mut d = Definitions::default();
    d.defs.insert("MergeItem".into(), item);
    d.defs.insert("RetainKeysMergeItem".into(), rk);
    d
}

#[test]
#[ignore]
fn k8s_vectors() {
    let defs = merge_item_defs();
    let node = Node::new(&defs, &defs.defs["MergeItem"]);
    let cases: Vec<(String, Value, Value, Value)> = serde_json::from_str(&std::fs::read_to_string("/tmp/smp/smp_cases.json").unwrap()).unwrap();
    let mut fails = 0;
    for (desc, cur, patch, want) in &cases {
        match strategic_merge(cur, patch, node) {
            Ok(got) if &got == want => {}
            Ok(got) => { fails += 1; println!("FAIL {desc}\n  cur {cur}\n  patch {patch}\n  want {want}\n  got  {got}"); }
            Err(e) => { fails += 1; println!("ERR {desc}: {e}\n  patch {patch}"); }
        }
    }
    println!("{} cases, {fails} failed", cases.len());
}
