//! Bad input gets the right gRPC code and a message naming the field, and writes nothing.

use rkube_proto::api::{CreateRequest, ListRequest, Object, TypeRef, UpdateRequest};
use rkube_tests::{api_object as obj, Cluster, Flavor};
use serde_json::{json, Value};
use tonic::Code;

fn pod(name: &str, extra: Value) -> Value {
    let mut p = json!({"metadata": {"name": name}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}});
    json_patch::merge(&mut p, &extra);
    p
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_is_rejected_with_the_field_and_nothing_is_written() {
    let cluster = Cluster::start(Flavor::Apiserver, 3, &[]).await;
    let c = cluster.api_client();
    let big = "x".repeat(2 * 1024 * 1024);
    let cases: Vec<(&str, Object, Code, &str)> = vec![
        (
            "invalid name",
            obj("v1", "Pod", "default", pod("Bad_Name", json!({}))),
            Code::InvalidArgument,
            "metadata.name: Invalid value",
        ),
        (
            "unknown kind",
            obj("v1", "Gizmo", "default", json!({"metadata": {"name": "g"}})),
            Code::NotFound,
            "no kind \"Gizmo\"",
        ),
        (
            "missing namespace",
            obj("v1", "Pod", "", pod("p1", json!({}))),
            Code::InvalidArgument,
            "metadata.namespace: Required value",
        ),
        (
            "namespace that does not exist",
            obj("v1", "Pod", "ghost", pod("p2", json!({}))),
            Code::NotFound,
            "namespaces \"ghost\" not found",
        ),
        (
            "oversized object",
            obj(
                "v1",
                "ConfigMap",
                "default",
                json!({"metadata": {"name": "big"}, "data": {"k": big}}),
            ),
            Code::ResourceExhausted,
            "limit",
        ),
        (
            "wrong type in a field",
            obj(
                "v1",
                "Pod",
                "default",
                pod(
                    "p3",
                    json!({"spec": {"containers": [{"name": "c", "image": "i", "ports": [{"containerPort": "eighty"}]}]}}),
                ),
            ),
            Code::InvalidArgument,
            "spec.containers[0].ports[0].containerPort",
        ),
        (
            "required field missing",
            obj(
                "v1",
                "Pod",
                "default",
                json!({"metadata": {"name": "p4"}, "spec": {"containers": [{"name": "c"}]}}),
            ),
            Code::InvalidArgument,
            "spec.containers[0].image: Required value",
        ),
    ];
    for (what, o, code, msg) in cases {
        let err = c
            .create(CreateRequest { object: Some(o) })
            .await
            .expect_err(what);
        assert_eq!(err.code(), code, "{what}: {err}");
        assert!(
            err.to_string().contains(msg),
            "{what}: {err:?} lacks {msg:?}"
        );
    }
    // Nothing of the above was written.
    for kind in ["Pod", "ConfigMap"] {
        let l = c
            .list(ListRequest {
                r#type: Some(TypeRef {
                    api_version: "v1".into(),
                    kind: kind.into(),
                }),
                ..Default::default()
            })
            .await
            .unwrap();
        assert!(
            l.items.is_empty(),
            "{kind}s were written: {:?}",
            l.items.iter().map(|i| &i.name).collect::<Vec<_>>()
        );
    }

    // Stale resourceVersion and an immutable field, on updates.
    let dep = json!({"metadata": {"name": "web"}, "spec": {"selector": {"matchLabels": {"app": "web"}},
        "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}});
    let made = c
        .create(CreateRequest {
            object: Some(obj("apps/v1", "Deployment", "default", dep.clone())),
        })
        .await
        .unwrap();
    let mut stale = dep.clone();
    stale["metadata"]["resourceVersion"] = "1".into();
    let err = c
        .update(
            UpdateRequest {
                object: Some(obj("apps/v1", "Deployment", "default", stale)),
                ..Default::default()
            },
            false,
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Aborted, "stale resourceVersion: {err}");
    assert!(
        err.to_string().contains("the object has been modified"),
        "{err}"
    );
    let mut changed = dep.clone();
    changed["metadata"]["resourceVersion"] = made.resource_version.clone().into();
    changed["spec"]["selector"]["matchLabels"]["app"] = "other".into();
    changed["spec"]["template"]["metadata"]["labels"]["app"] = "other".into();
    let err = c
        .update(
            UpdateRequest {
                object: Some(obj("apps/v1", "Deployment", "default", changed)),
                ..Default::default()
            },
            false,
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "immutable field: {err}");
    assert!(
        err.to_string().contains("spec.selector") && err.to_string().contains("field is immutable"),
        "{err}"
    );
    let now = c
        .get(rkube_proto::api::GetRequest {
            r#type: Some(TypeRef {
                api_version: "apps/v1".into(),
                kind: "Deployment".into(),
            }),
            namespace: "default".into(),
            name: "web".into(),
        })
        .await
        .unwrap();
    assert_eq!(
        now.resource_version, made.resource_version,
        "a rejected update wrote something"
    );
}
