//! Strategic merge patch: each directive, with the examples of Kubernetes'
//! strategic-merge-patch document and what `kubectl patch` does.

use serde_json::{json, Value};

use super::{deployment, kind, pod};
use crate::merge::strategic_merge;
use crate::schema::Node;

fn containers(items: Value) -> Value {
    json!({"spec": {"containers": items}})
}

/// (what it shows, schema, original, patch, expected)
fn cases() -> Vec<(&'static str, Node<'static>, Value, Value, Value)> {
    vec![
        (
            "a container with a new name is added; the patch's items come first",
            pod(),
            containers(json!([{"name": "nginx", "image": "nginx-1.0"}])),
            containers(json!([{"name": "log-tailer", "image": "log-tailer-1.0"}])),
            containers(json!([
                {"name": "log-tailer", "image": "log-tailer-1.0"},
                {"name": "nginx", "image": "nginx-1.0"}
            ])),
        ),
        (
            "a container with the same name is merged field by field",
            pod(),
            containers(json!([{"name": "a", "image": "a:1", "args": ["x"]}, {"name": "b"}])),
            containers(json!([{"name": "a", "image": "a:2"}])),
            containers(json!([{"name": "a", "image": "a:2", "args": ["x"]}, {"name": "b"}])),
        ),
        (
            "env merges by name inside the container it names",
            pod(),
            containers(
                json!([{"name": "a", "env": [{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}]}]),
            ),
            containers(json!([{"name": "a", "env": [{"name": "Y", "value": "3"}]}])),
            containers(
                json!([{"name": "a", "env": [{"name": "X", "value": "1"}, {"name": "Y", "value": "3"}]}]),
            ),
        ),
        (
            "server-only items keep their place relative to the patch's items",
            pod(),
            containers(json!([{"name": "a"}, {"name": "b"}, {"name": "c"}])),
            containers(json!([{"name": "d"}, {"name": "b", "image": "b"}])),
            containers(
                json!([{"name": "d"}, {"name": "a"}, {"name": "b", "image": "b"}, {"name": "c"}]),
            ),
        ),
        (
            "$patch: replace in a list replaces the list",
            pod(),
            containers(json!([{"name": "a"}, {"name": "b"}])),
            containers(json!([{"name": "nginx", "image": "nginx-1.0"}, {"$patch": "replace"}])),
            containers(json!([{"name": "nginx", "image": "nginx-1.0"}])),
        ),
        (
            "$patch: replace in a map takes the map literally",
            pod(),
            json!({"metadata": {"labels": {"a": "1", "b": "2"}}}),
            json!({"metadata": {"labels": {"$patch": "replace", "c": "3"}}}),
            json!({"metadata": {"labels": {"c": "3"}}}),
        ),
        (
            "$patch: delete removes every item with the merge key",
            pod(),
            containers(json!([{"name": "nginx"}, {"name": "log-tailer"}])),
            containers(
                json!([{"name": "nginx", "image": "nginx-1.0"}, {"$patch": "delete", "name": "log-tailer"}]),
            ),
            containers(json!([{"name": "nginx", "image": "nginx-1.0"}])),
        ),
        (
            "$patch: delete in a map removes the map",
            deployment(),
            json!({"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}}),
            json!({"spec": {"strategy": {"rollingUpdate": {"$patch": "delete"}}}}),
            json!({"spec": {"strategy": {"type": "RollingUpdate"}}}),
        ),
        (
            "$patch: merge in a map is the default",
            pod(),
            json!({"metadata": {"labels": {"a": "1"}}}),
            json!({"metadata": {"labels": {"$patch": "merge", "b": "2"}}}),
            json!({"metadata": {"labels": {"a": "1", "b": "2"}}}),
        ),
        (
            "null deletes a key",
            pod(),
            json!({"metadata": {"labels": {"a": "1", "b": "2"}}}),
            json!({"metadata": {"labels": {"a": null, "z": null}}}),
            json!({"metadata": {"labels": {"b": "2"}}}),
        ),
        (
            "a list without patch strategy is replaced",
            pod(),
            json!({"spec": {"tolerations": [{"key": "a"}, {"key": "b"}]}}),
            json!({"spec": {"tolerations": [{"key": "c"}]}}),
            json!({"spec": {"tolerations": [{"key": "c"}]}}),
        ),
        (
            "a primitive list with patch strategy merge is a set",
            pod(),
            json!({"metadata": {"finalizers": ["a", "b"]}}),
            json!({"metadata": {"finalizers": ["c", "a", "c"]}}),
            json!({"metadata": {"finalizers": ["c", "a", "b"]}}),
        ),
        (
            "$deleteFromPrimitiveList removes the values it lists",
            pod(),
            json!({"metadata": {"finalizers": ["a", "b", "c", "b"]}}),
            json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["b", "c"]}}),
            json!({"metadata": {"finalizers": ["a"]}}),
        ),
        (
            "$setElementOrder orders a primitive list",
            pod(),
            json!({"metadata": {"finalizers": ["a", "b", "c"]}}),
            json!({"metadata": {"$setElementOrder/finalizers": ["b", "c", "a"]}}),
            json!({"metadata": {"finalizers": ["b", "c", "a"]}}),
        ),
        (
            "$setElementOrder orders a list of maps by merge key, merging the patch list",
            pod(),
            containers(json!([{"name": "a"}, {"name": "b"}, {"name": "c"}])),
            json!({"spec": {
                "$setElementOrder/containers": [{"name": "b"}, {"name": "c"}, {"name": "a"}],
                "containers": [{"name": "c", "image": "c:2"}]
            }}),
            containers(json!([{"name": "b"}, {"name": "c", "image": "c:2"}, {"name": "a"}])),
        ),
        (
            "$setElementOrder keeps server-only items between the items it orders",
            pod(),
            containers(
                json!([{"name": "a", "image": "a"}, {"name": "b"}, {"name": "x"}, {"name": "c"}, {"name": "d"}]),
            ),
            json!({"spec": {"$setElementOrder/containers": [{"name": "b"}, {"name": "a"}, {"name": "d"}, {"name": "c"}]}}),
            containers(
                json!([{"name": "b"}, {"name": "a", "image": "a"}, {"name": "x"}, {"name": "d"}, {"name": "c"}]),
            ),
        ),
        (
            "with $setElementOrder, items the patch adds take the places of those it deletes",
            pod(),
            containers(
                json!([{"name": "a"}, {"name": "b", "image": "b"}, {"name": "d", "image": "d"}]),
            ),
            json!({"spec": {
                "$setElementOrder/containers": [{"name": "b"}, {"name": "c"}],
                "containers": [{"name": "c"}, {"$patch": "delete", "name": "a"}]
            }}),
            containers(
                json!([{"name": "b", "image": "b"}, {"name": "d", "image": "d"}, {"name": "c"}]),
            ),
        ),
        (
            "$setElementOrder with an added value of a primitive list",
            pod(),
            json!({"metadata": {"finalizers": ["a", "d", "b"]}}),
            json!({"metadata": {"$setElementOrder/finalizers": ["c", "a", "b"], "finalizers": ["c"]}}),
            json!({"metadata": {"finalizers": ["c", "a", "d", "b"]}}),
        ),
        (
            "$retainKeys clears the union members it does not list",
            deployment(),
            json!({"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}}),
            json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}),
            json!({"spec": {"strategy": {"type": "Recreate"}}}),
        ),
        (
            "$retainKeys on volumes keeps one volume source",
            pod(),
            json!({"spec": {"volumes": [{"name": "v", "emptyDir": {}}]}}),
            json!({"spec": {"volumes": [{"name": "v", "$retainKeys": ["name", "hostPath"], "hostPath": {"path": "/x"}}]}}),
            json!({"spec": {"volumes": [{"name": "v", "hostPath": {"path": "/x"}}]}}),
        ),
        (
            "ports merge by containerPort",
            pod(),
            containers(json!([{"name": "a", "ports": [{"containerPort": 80, "name": "http"}]}])),
            containers(
                json!([{"name": "a", "ports": [{"containerPort": 80, "name": "web"}, {"containerPort": 443}]}]),
            ),
            containers(
                json!([{"name": "a", "ports": [{"containerPort": 80, "name": "web"}, {"containerPort": 443}]}]),
            ),
        ),
        (
            "a field with patch strategy replace is replaced, not merged",
            kind("policy/v1", "PodDisruptionBudget"),
            json!({"spec": {"selector": {"matchLabels": {"a": "1"}}}}),
            json!({"spec": {"selector": {"matchExpressions": []}}}),
            json!({"spec": {"selector": {"matchExpressions": []}}}),
        ),
        (
            "new values carry no directives or nulls",
            pod(),
            json!({}),
            json!({"metadata": {"labels": {"a": "1", "b": null}}, "spec": {"containers": [{"name": "x", "env": [{"name": "E", "value": null}, {"$patch": "delete", "name": "F"}]}]}}),
            json!({"metadata": {"labels": {"a": "1"}}, "spec": {"containers": [{"name": "x", "env": [{"name": "E"}]}]}}),
        ),
        (
            "$patch: delete of the whole object empties it",
            pod(),
            json!({"metadata": {"name": "a"}}),
            json!({"$patch": "delete"}),
            json!({}),
        ),
        (
            "a list of a field the schema does not know is replaced",
            pod(),
            json!({"spec": {"custom": [1, 2]}}),
            json!({"spec": {"custom": [3]}}),
            json!({"spec": {"custom": [3]}}),
        ),
    ]
}

#[test]
fn directives_follow_kubernetes() {
    for (name, schema, original, patch, want) in cases() {
        let got =
            strategic_merge(&original, &patch, schema).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(got, want, "{name}");
    }
}

/// (what it shows, schema, original, patch, error path, start of the message)
fn errors() -> Vec<(
    &'static str,
    Node<'static>,
    Value,
    Value,
    &'static str,
    &'static str,
)> {
    vec![
        (
            "an item without the merge key",
            pod(),
            containers(json!([{"name": "a"}])),
            containers(json!([{"image": "x"}])),
            "spec.containers[0]",
            "map: {\"image\":\"x\"} does not contain declared merge key: name",
        ),
        (
            "an unknown $patch in a map",
            pod(),
            json!({}),
            json!({"metadata": {"$patch": "sideways"}}),
            "metadata",
            "unknown patch type: sideways in map:",
        ),
        (
            "$patch: merge on a list item",
            pod(),
            containers(json!([{"name": "a"}])),
            containers(json!([{"$patch": "merge", "name": "a"}])),
            "spec.containers[0]",
            "merging lists cannot yet be specified in the patch",
        ),
        (
            "a patch list out of the $setElementOrder order",
            pod(),
            json!({"metadata": {"finalizers": ["a", "b"]}}),
            json!({"metadata": {"$setElementOrder/finalizers": ["a", "b"], "finalizers": ["b", "a"]}}),
            "metadata.finalizers",
            "The order in patch list:",
        ),
        (
            "a patch key outside $retainKeys",
            deployment(),
            json!({}),
            json!({"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {}}}}),
            "spec.strategy",
            "invalid patch format of retainKeys",
        ),
        (
            "$deleteFromPrimitiveList with maps",
            pod(),
            json!({}),
            json!({"metadata": {"$deleteFromPrimitiveList/finalizers": [{"a": 1}]}}),
            "metadata.finalizers",
            "invalid patch format of primitive list",
        ),
        (
            "lists of lists",
            pod(),
            json!({"metadata": {"finalizers": ["a"]}}),
            json!({"metadata": {"finalizers": [["a"]]}}),
            "metadata.finalizers",
            "lists of lists are not supported",
        ),
        (
            "a patch that is not an object",
            pod(),
            json!({}),
            json!([1]),
            "",
            "a strategic merge patch must be a JSON object",
        ),
    ]
}

#[test]
fn errors_name_the_field_and_the_reason() {
    for (name, schema, original, patch, path, message) in errors() {
        let e = strategic_merge(&original, &patch, schema).expect_err(name);
        assert_eq!(e.path, path, "{name}");
        assert!(e.message.starts_with(message), "{name}: {}", e.message);
        let shown = e.to_string();
        assert!(
            shown.contains(message) && shown.starts_with(path),
            "{name}: {shown}"
        );
    }
}

#[test]
fn merging_does_not_touch_the_original() {
    let original = containers(json!([{"name": "a", "image": "a:1"}]));
    let before = original.clone();
    let patch = containers(json!([{"name": "a", "image": "a:2"}]));
    let out = strategic_merge(&original, &patch, pod()).unwrap();
    assert_eq!(original, before);
    assert_ne!(out, before);
}
