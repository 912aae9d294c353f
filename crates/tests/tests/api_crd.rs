//! A CustomResourceDefinition registers a kind at once: objects of it are created, listed
//! and watched through every member, discovery lists it, and its schema is enforced.

use std::time::Duration;

use futures::StreamExt;
use rkube_proto::api::{CreateRequest, ListRequest, TypeRef, WatchEventType, WatchRequest};
use rkube_tests::{api_object as obj, Cluster, Flavor};
use serde_json::{json, Value};
use tonic::Code;

#[tokio::test(flavor = "multi_thread")]
async fn a_crd_serves_its_kind_at_once_on_every_member() {
    let cluster = Cluster::start(Flavor::Apiserver, 3, &[]).await;
    let crd = json!({
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wg"]},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "required": ["size"],
                             "properties": {"size": {"type": "integer", "minimum": 1}}}}}}}]}});
    let c0 = cluster.api_client_of(0);
    let made = c0
        .create(CreateRequest {
            object: Some(obj(
                "apiextensions.k8s.io/v1",
                "CustomResourceDefinition",
                "",
                crd,
            )),
        })
        .await
        .expect("create the CRD");
    let stored: Value = serde_json::from_slice(&made.json).unwrap();
    assert!(stored["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["type"] == "Established" && c["status"] == "True"));

    // Served at once, through another member, without waiting.
    let c1 = cluster.api_client_of(1);
    let widget = |name: &str, size: Value| {
        obj(
            "example.com/v1",
            "Widget",
            "default",
            json!({"metadata": {"name": name}, "spec": {"size": size}}),
        )
    };
    let w = c1
        .create(CreateRequest {
            object: Some(widget("w1", json!(3))),
        })
        .await
        .expect("create a Widget");
    assert_eq!(w.r#type.unwrap().kind, "Widget");

    let c2 = cluster.api_client_of(2);
    let resources = c2.discovery().await.unwrap();
    let r = resources
        .iter()
        .find(|r| r.kind == "Widget")
        .expect("discovery lists Widget");
    assert_eq!(
        (
            r.group.as_str(),
            r.version.as_str(),
            r.name.as_str(),
            r.namespaced
        ),
        ("example.com", "v1", "widgets", true)
    );
    assert_eq!(r.short_names, vec!["wg"]);
    assert!(r.subresources.contains(&"status".to_string()));

    let t = TypeRef {
        api_version: "example.com/v1".into(),
        kind: "Widget".into(),
    };
    let mut watch = c2
        .watch(WatchRequest {
            r#type: Some(t.clone()),
            namespace: "default".into(),
            resource_version: "0".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let first = tokio::time::timeout(Duration::from_secs(10), watch.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(
        (first.r#type(), first.object.unwrap().name.as_str()),
        (WatchEventType::Added, "w1")
    );
    c0.create(CreateRequest {
        object: Some(widget("w2", json!(5))),
    })
    .await
    .unwrap();
    let second = tokio::time::timeout(Duration::from_secs(10), watch.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(
        (second.r#type(), second.object.unwrap().name.as_str()),
        (WatchEventType::Added, "w2")
    );
    let list = c2
        .list(ListRequest {
            r#type: Some(t.clone()),
            namespace: "default".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(list.items.len(), 2);

    // The schema holds: wrong type and missing required field name the field.
    let err = c1
        .create(CreateRequest {
            object: Some(widget("bad", json!("big"))),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.to_string().contains("spec.size"), "{err}");
    let err = c1
        .create(CreateRequest {
            object: Some(obj(
                "example.com/v1",
                "Widget",
                "default",
                json!({"metadata": {"name": "bad2"}, "spec": {}}),
            )),
        })
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("spec.size: Required value"),
        "{err}"
    );
}
