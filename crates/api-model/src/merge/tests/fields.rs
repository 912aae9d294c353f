//! FieldsV1: reading and writing the managedFields encoding, set operations, and the set of
//! fields an object sets by its schema.

use serde_json::{json, Value};

use super::{deployment, pod};
use crate::merge::walk::field_set;
use crate::merge::{FieldSet, PathElement, Shape};

fn set(v: Value) -> FieldSet {
    FieldSet::from_json(&v).unwrap_or_else(|e| panic!("{v}: {e}"))
}

/// What a `kubectl apply --server-side` of a small Deployment records.
fn applied_deployment() -> (Value, Value) {
    let obj = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{
                    "name": "nginx",
                    "image": "nginx:1.25",
                    "ports": [{"containerPort": 80}],
                    "args": ["-g", "daemon off;"]
                }]}
            }
        }
    });
    let fields = json!({
        "f:apiVersion": {},
        "f:kind": {},
        "f:metadata": {"f:labels": {"f:app": {}}, "f:name": {}},
        "f:spec": {
            "f:replicas": {},
            "f:selector": {},
            "f:template": {
                "f:metadata": {"f:labels": {"f:app": {}}},
                "f:spec": {"f:containers": {"k:{\"name\":\"nginx\"}": {
                    ".": {},
                    "f:args": {},
                    "f:image": {},
                    "f:name": {},
                    "f:ports": {"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {
                        ".": {},
                        "f:containerPort": {}
                    }}
                }}}
            }
        }
    });
    (obj, fields)
}

#[test]
fn an_object_sets_its_leaves_keyed_items_and_atomic_values() {
    let (obj, want) = applied_deployment();
    let got = field_set(&obj, Shape(Some(deployment())));
    assert_eq!(got.to_json(), want);
}

#[test]
fn sets_and_maps_and_untyped_objects() {
    // (schema, object, FieldsV1)
    let cases = [
        (
            Some(pod()),
            json!({"metadata": {"finalizers": ["a", "b"]}}),
            json!({"f:metadata": {"f:finalizers": {"v:\"a\"": {}, "v:\"b\"": {}}}}),
        ),
        (
            Some(pod()),
            json!({"spec": {"nodeSelector": {"a": "1"}, "tolerations": [{"key": "k"}]}}),
            json!({"f:spec": {"f:nodeSelector": {}, "f:tolerations": {}}}),
        ),
        (
            Some(pod()),
            json!({"spec": {"securityContext": {}, "containers": []}}),
            json!({"f:spec": {"f:securityContext": {}}}),
        ),
        (
            None,
            json!({"spec": {"a": {"b": 1}, "list": [{"name": "x"}]}}),
            json!({"f:spec": {".": {}, "f:a": {".": {}, "f:b": {}}, "f:list": {}}}),
        ),
    ];
    for (schema, obj, want) in cases {
        assert_eq!(field_set(&obj, Shape(schema)).to_json(), want, "{obj}");
    }
}

#[test]
fn fields_v1_round_trips() {
    let (_, doc) = applied_deployment();
    let docs = [
        doc,
        json!({}),
        json!({"f:metadata": {"f:finalizers": {".": {}, "v:\"a\"": {}}, "f:labels": {}}}),
        json!({"f:spec": {"f:list": {"i:0": {}, "i:10": {"f:x": {}}}}}),
    ];
    for d in docs {
        assert_eq!(set(d.clone()).to_json(), d);
    }
    // A lone "." marks a member, as an empty object does; it is written the short way.
    let lone = set(json!({"f:labels": {".": {}}}));
    assert!(lone.has(&[PathElement::field("labels")]));
    assert_eq!(lone.to_json(), json!({"f:labels": {}}));
}

#[test]
fn invalid_fields_v1_is_refused_with_the_element() {
    let cases = [
        (json!([]), ""),
        (json!({"x:a": {}}), "x:a"),
        (json!({"k:[1]": {}}), "k:[1]"),
        (json!({"i:one": {}}), "i:one"),
        (json!({"f:a": 1}), "f:a"),
        (json!({"f:a": {"v:{": {}}}), "f:a/v:{"),
    ];
    for (doc, path) in cases {
        let e = FieldSet::from_json(&doc).expect_err(&doc.to_string());
        assert_eq!(e.path, path, "{doc}");
    }
}

#[test]
fn union_difference_intersection() {
    let a = set(json!({"f:spec": {"f:replicas": {}, "f:template": {".": {}, "f:x": {}}}}));
    let b = set(json!({"f:spec": {"f:template": {"f:x": {}, "f:y": {}}}, "f:status": {}}));
    assert_eq!(
        a.union(&b).to_json(),
        json!({"f:spec": {"f:replicas": {}, "f:template": {".": {}, "f:x": {}, "f:y": {}}}, "f:status": {}})
    );
    assert_eq!(
        a.difference(&b).to_json(),
        json!({"f:spec": {"f:replicas": {}, "f:template": {}}})
    );
    assert_eq!(
        a.intersection(&b).to_json(),
        json!({"f:spec": {"f:template": {"f:x": {}}}})
    );
    assert!(a.difference(&a).is_empty());
    assert_eq!(a.union(&FieldSet::new()), a);
    assert!(a.intersection(&FieldSet::new()).is_empty());
}

#[test]
fn paths_print_as_kubernetes_does() {
    let mut s = FieldSet::new();
    let c = PathElement::key([("name", &json!("nginx"))]);
    let port = PathElement::key([("protocol", &json!("TCP")), ("containerPort", &json!(80))]);
    s.insert(&[PathElement::field("spec"), PathElement::field("replicas")]);
    s.insert(&[
        PathElement::field("spec"),
        PathElement::field("containers"),
        c.clone(),
    ]);
    s.insert(&[
        PathElement::field("c"),
        c,
        PathElement::field("ports"),
        port,
    ]);
    s.insert(&[PathElement::field("f"), PathElement::value(&json!("x"))]);
    s.insert(&[PathElement::field("l"), PathElement::index(3)]);
    assert_eq!(
        s.paths(),
        [
            ".c[name=\"nginx\"].ports[containerPort=80,protocol=\"TCP\"]",
            ".f[=\"x\"]",
            ".l[3]",
            ".spec.containers[name=\"nginx\"]",
            ".spec.replicas",
        ]
    );
    assert!(s.has(&[PathElement::field("spec"), PathElement::field("replicas")]));
    assert!(!s.has(&[PathElement::field("spec")]));
}
