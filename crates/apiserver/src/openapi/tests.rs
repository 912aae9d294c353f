//! The documents as kubectl reads them: decoding the v2 protobuf, following every reference,
//! finding each kind's PATCH parameters and its schema by group-version-kind.

use std::collections::BTreeSet;

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use prost::Message;
use rkube_proto::openapi_v2 as pb;
use serde_json::{json, Value};

use super::serve::{negotiate, Format, V2_PROTOBUF};
use super::OpenApi;
use crate::registry::{Registry, ResourceType, Schema};

fn crontab() -> ResourceType {
    ResourceType {
        group: "stable.example.com".into(),
        version: "v1".into(),
        kind: "CronTab".into(),
        plural: "crontabs".into(),
        singular: "crontab".into(),
        namespaced: true,
        short_names: vec![],
        categories: vec![],
        has_status: true,
        fields: &[],
        schema: Schema::Custom(Some(json!({
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "properties": {
                        "cronSpec": {"type": "string"},
                        "image": {"type": "string", "nullable": true},
                        "replicas": {"type": "integer", "minimum": 1},
                    },
                },
            },
        }))),
    }
}

fn decode_v2(openapi: &OpenApi, registry: &Registry) -> pb::Document {
    let bytes = openapi.v2_protobuf(registry);
    pb::Document::decode(bytes).expect("the v2 protobuf decodes as openapi.v2.Document")
}

fn definition<'a>(doc: &'a pb::Document, name: &str) -> Option<&'a pb::Schema> {
    let defs = doc.definitions.as_ref()?;
    let named = defs.additional_properties.iter().find(|d| d.name == name)?;
    named.value.as_ref()
}

fn extension(exts: &[pb::NamedAny], name: &str) -> Option<Value> {
    let e = exts.iter().find(|e| e.name == name)?;
    let yaml = &e.value.as_ref()?.yaml;
    Some(serde_yaml_ng::from_str(yaml).expect("extension values are YAML"))
}

fn property<'a>(s: &'a pb::Schema, name: &str) -> Option<&'a pb::Schema> {
    let props = s.properties.as_ref()?;
    let named = props
        .additional_properties
        .iter()
        .find(|p| p.name == name)?;
    named.value.as_ref()
}

fn v3(openapi: &OpenApi, registry: &Registry, path: &str) -> Value {
    let (body, _) = openapi
        .v3_document(registry, path)
        .unwrap_or_else(|| panic!("a v3 document at {path}"));
    serde_json::from_slice(&body).expect("v3 documents are JSON")
}

#[test]
fn v2_protobuf_holds_deployment_with_its_group_version_kind() {
    let registry = Registry::with_builtins();
    let doc = decode_v2(&OpenApi::new(), &registry);
    assert_eq!(doc.swagger, "2.0");
    let deployment =
        definition(&doc, "io.k8s.api.apps.v1.Deployment").expect("the Deployment definition");
    let gvk = extension(
        &deployment.vendor_extension,
        "x-kubernetes-group-version-kind",
    );
    assert_eq!(
        gvk,
        Some(json!([{"group": "apps", "kind": "Deployment", "version": "v1"}]))
    );
    // As Kubernetes publishes them, though the k8s-openapi types hold both without Option.
    let required = &deployment.required;
    assert!(
        !required.iter().any(|f| f == "metadata" || f == "spec"),
        "{required:?}"
    );
    let event = definition(&doc, "io.k8s.api.core.v1.Event").expect("Event");
    assert!(
        event.required.contains(&"metadata".to_string()),
        "{:?}",
        event.required
    );
    let spec = property(deployment, "spec").expect("Deployment.spec");
    assert_eq!(
        spec.r#ref,
        "#/definitions/io.k8s.api.apps.v1.DeploymentSpec"
    );
    assert!(
        !spec.description.is_empty(),
        "a described reference keeps its description"
    );
}

#[test]
fn patch_metadata_is_on_pod_spec_containers() {
    let registry = Registry::with_builtins();
    let doc = decode_v2(&OpenApi::new(), &registry);
    let pod_spec = definition(&doc, "io.k8s.api.core.v1.PodSpec").expect("PodSpec");
    let containers = property(pod_spec, "containers").expect("PodSpec.containers");
    let ext = |n| extension(&containers.vendor_extension, n);
    assert_eq!(ext("x-kubernetes-patch-merge-key"), Some(json!("name")));
    assert_eq!(ext("x-kubernetes-patch-strategy"), Some(json!("merge")));
    assert_eq!(ext("x-kubernetes-list-type"), Some(json!("map")));
    assert_eq!(ext("x-kubernetes-list-map-keys"), Some(json!(["name"])));

    let core = v3(&OpenApi::new(), &registry, "api/v1");
    let containers =
        &core["components"]["schemas"]["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"];
    assert_eq!(containers["x-kubernetes-patch-merge-key"], json!("name"));
}

/// The rules kubectl's v2 model parser enforces (k8s.io/kube-openapi/pkg/util/proto): every
/// reference names a definition and carries no type or properties, an array has one item
/// schema, a schema has at most one type.
fn check_v2_schema(doc: &pb::Document, s: &pb::Schema, at: &str, errors: &mut Vec<String>) {
    if !s.r#ref.is_empty() {
        let name = s.r#ref.strip_prefix("#/definitions/").unwrap_or_default();
        if definition(doc, name).is_none() {
            errors.push(format!("{at}: dangling reference {}", s.r#ref));
        }
        if s.properties.is_some() || s.r#type.is_some() {
            errors.push(format!("{at}: a reference with a type or properties"));
        }
        return;
    }
    let types = s
        .r#type
        .as_ref()
        .map(|t| t.value.clone())
        .unwrap_or_default();
    if types.len() > 1 {
        errors.push(format!("{at}: more than one type"));
    }
    if types.first().map(String::as_str) == Some("array")
        && s.items.as_ref().map(|i| i.schema.len()) != Some(1)
    {
        errors.push(format!("{at}: an array without exactly one item schema"));
    }
    let props = s.properties.iter().flat_map(|p| &p.additional_properties);
    for p in props {
        if let Some(v) = &p.value {
            check_v2_schema(doc, v, &format!("{at}.{}", p.name), errors);
        }
    }
    for item in s.items.iter().flat_map(|i| &i.schema) {
        check_v2_schema(doc, item, &format!("{at}[]"), errors);
    }
    use pb::additional_properties_item::Oneof;
    if let Some(Oneof::Schema(v)) = s
        .additional_properties
        .as_ref()
        .and_then(|a| a.oneof.as_ref())
    {
        check_v2_schema(doc, v, &format!("{at}{{}}"), errors);
    }
}

#[test]
fn v2_definitions_parse_as_kubectl_parses_them() {
    let registry = Registry::with_builtins();
    registry.add(crontab());
    let doc = decode_v2(&OpenApi::new(), &registry);
    let mut errors = Vec::new();
    let defs = doc.definitions.as_ref().expect("definitions");
    for d in &defs.additional_properties {
        if let Some(s) = &d.value {
            check_v2_schema(&doc, s, &d.name, &mut errors);
        }
    }
    assert!(errors.is_empty(), "{errors:#?}");
}

/// kubectl's v2 field-validation check: the PATCH operation carrying the kind's
/// group-version-kind lists `fieldValidation`, itself or through `#/parameters/`.
fn v2_patch_has_field_validation(doc: &pb::Document, gvk: &Value) -> bool {
    use pb::non_body_parameter::Oneof as NonBody;
    use pb::parameters_item::Oneof as Item;
    let global = |r: &str| {
        let params = doc.parameters.as_ref()?;
        let name = r.strip_prefix("#/parameters/")?;
        let p = params
            .additional_properties
            .iter()
            .find(|p| p.name == name)?;
        p.value.clone()
    };
    let query_name = |p: &pb::Parameter| match &p.oneof {
        Some(pb::parameter::Oneof::NonBodyParameter(nb)) => match &nb.oneof {
            Some(NonBody::QueryParameterSubSchema(q)) => q.name.clone(),
            _ => String::new(),
        },
        _ => String::new(),
    };
    let paths = doc.paths.iter().flat_map(|p| &p.path);
    for item in paths.filter_map(|p| p.value.as_ref()) {
        let Some(patch) = &item.patch else { continue };
        if extension(&patch.vendor_extension, "x-kubernetes-group-version-kind").as_ref()
            != Some(gvk)
        {
            continue;
        }
        return patch.parameters.iter().any(|p| match &p.oneof {
            Some(Item::Parameter(p)) => query_name(p) == "fieldValidation",
            Some(Item::JsonReference(r)) => {
                global(&r.r#ref).is_some_and(|p| query_name(&p) == "fieldValidation")
            }
            None => false,
        });
    }
    false
}

/// kubectl's v3 field-validation check (QueryParamVerifierV3), on the kind's group-version
/// document.
fn v3_patch_has_field_validation(doc: &Value, gvk: &Value) -> bool {
    let paths = doc["paths"].as_object().expect("paths");
    for item in paths.values() {
        let patch = &item["patch"];
        if patch.is_null() || &patch["x-kubernetes-group-version-kind"] != gvk {
            continue;
        }
        let params = patch["parameters"].as_array().expect("parameters");
        return params.iter().any(|p| p["name"] == "fieldValidation");
    }
    false
}

#[test]
fn every_patchable_kind_advertises_field_validation() {
    let registry = Registry::with_builtins();
    registry.add(crontab());
    let openapi = OpenApi::new();
    let doc = decode_v2(&openapi, &registry);
    let mut checked = 0;
    for t in registry.all() {
        if t.kind.ends_with("Review") {
            continue;
        }
        let gvk = json!({"group": t.group, "kind": t.kind, "version": t.version});
        assert!(v2_patch_has_field_validation(&doc, &gvk), "v2: {gvk}");
        let path = super::paths::group_version_path(&t);
        let v3_doc = v3(&openapi, &registry, &path);
        assert!(v3_patch_has_field_validation(&v3_doc, &gvk), "v3: {gvk}");
        checked += 1;
    }
    assert!(checked > 30, "checked {checked} kinds");
}

/// Every `$ref` in a v3 document names one of its `components.schemas`.
fn v3_dangling(doc: &Value) -> Vec<String> {
    fn walk(v: &Value, doc: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(o) => {
                if let Some(r) = o.get("$ref").and_then(Value::as_str) {
                    let name = r.strip_prefix("#/components/schemas/").unwrap_or(r);
                    if doc["components"]["schemas"].get(name).is_none() {
                        out.push(r.to_string());
                    }
                }
                o.values().for_each(|v| walk(v, doc, out));
            }
            Value::Array(a) => a.iter().for_each(|v| walk(v, doc, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(doc, doc, &mut out);
    out
}

/// What `kubectl explain deployment.spec.strategy` does with the apps/v1 document: the GVK
/// from the operations of the resource's path, the schema that lists that GVK, then the
/// field path through properties and references.
#[test]
fn explain_finds_deployment_spec_strategy_in_v3() {
    let registry = Registry::with_builtins();
    let openapi = OpenApi::new();
    let doc = v3(&openapi, &registry, "apis/apps/v1");
    assert_eq!(v3_dangling(&doc), Vec::<String>::new());
    let item = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments"];
    let gvk = &item["get"]["x-kubernetes-group-version-kind"];
    assert_eq!(
        gvk,
        &json!({"group": "apps", "kind": "Deployment", "version": "v1"})
    );
    let schemas = doc["components"]["schemas"].as_object().expect("schemas");
    let kind = schemas
        .values()
        .find(|s| {
            let list = s["x-kubernetes-group-version-kind"].as_array();
            list.is_some_and(|l| l.contains(gvk))
        })
        .expect("a schema listing the Deployment GVK");
    let resolve = |s: &Value| -> Value {
        let r = s["$ref"].as_str().or(s["allOf"][0]["$ref"].as_str());
        match r.and_then(|r| r.strip_prefix("#/components/schemas/")) {
            Some(name) => schemas[name].clone(),
            None => s.clone(),
        }
    };
    let spec = resolve(&kind["properties"]["spec"]);
    let strategy = &spec["properties"]["strategy"];
    assert!(strategy["description"]
        .as_str()
        .is_some_and(|d| !d.is_empty()));
    let strategy = resolve(strategy);
    assert!(
        strategy["properties"]["rollingUpdate"].is_object(),
        "{strategy}"
    );
}

#[test]
fn a_custom_kind_appears_once_registered() {
    let registry = Registry::with_builtins();
    let openapi = OpenApi::new();
    let name = "com.example.stable.v1.CronTab";
    assert!(definition(&decode_v2(&openapi, &registry), name).is_none());
    let index: Value = serde_json::from_slice(&openapi.v3_index(&registry)).expect("JSON");
    assert!(index["paths"].get("apis/stable.example.com/v1").is_none());

    registry.add(crontab());
    let doc = decode_v2(&openapi, &registry);
    let crontab = definition(&doc, name).expect("the CronTab definition after add");
    let gvk = extension(&crontab.vendor_extension, "x-kubernetes-group-version-kind");
    let expected = json!({"group": "stable.example.com", "kind": "CronTab", "version": "v1"});
    assert_eq!(gvk, Some(json!([expected])));
    let meta = property(crontab, "metadata").expect("CronTab.metadata");
    assert_eq!(
        meta.r#ref,
        "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
    );
    let image = property(property(crontab, "spec").expect("spec"), "image").expect("image");
    assert!(image.r#type.is_none(), "a nullable field has no type in v2");

    let index: Value = serde_json::from_slice(&openapi.v3_index(&registry)).expect("JSON");
    let url = index["paths"]["apis/stable.example.com/v1"]["serverRelativeURL"]
        .as_str()
        .expect("the CronTab group-version in the index");
    let (_, hash) = openapi
        .v3_document(&registry, "apis/stable.example.com/v1")
        .expect("the CronTab document");
    assert_eq!(
        url,
        format!("/openapi/v3/apis/stable.example.com/v1?hash={hash}")
    );
    let doc = v3(&openapi, &registry, "apis/stable.example.com/v1");
    assert_eq!(v3_dangling(&doc), Vec::<String>::new());
    let image = &doc["components"]["schemas"][name]["properties"]["spec"]["properties"]["image"];
    assert_eq!(image["nullable"], json!(true), "v3 keeps nullable");
    let patch = &doc["paths"]["/apis/stable.example.com/v1/namespaces/{namespace}/crontabs/{name}"]
        ["patch"]["requestBody"]["content"];
    assert!(patch.get("application/merge-patch+json").is_some());
    assert!(patch
        .get("application/strategic-merge-patch+json")
        .is_none());

    registry.remove("stable.example.com/v1", "CronTab");
    assert!(definition(&decode_v2(&openapi, &registry), name).is_none());
    assert!(openapi
        .v3_document(&registry, "apis/stable.example.com/v1")
        .is_none());
}

#[test]
fn every_v3_document_is_self_contained() {
    let registry = Registry::with_builtins();
    registry.add(crontab());
    let openapi = OpenApi::new();
    let index: Value = serde_json::from_slice(&openapi.v3_index(&registry)).expect("JSON");
    let paths: BTreeSet<&String> = index["paths"].as_object().expect("paths").keys().collect();
    assert!(paths.contains(&"api/v1".to_string()) && paths.contains(&"apis/apps/v1".to_string()));
    for path in paths {
        let doc = v3(&openapi, &registry, path);
        assert_eq!(v3_dangling(&doc), Vec::<String>::new(), "{path}");
    }
}

fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.insert(k.clone(), HeaderValue::from_str(v).expect("a header value"));
    }
    h
}

#[test]
fn accept_chooses_the_v2_format() {
    let offered = [Format::Json, Format::Protobuf];
    let pb = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";
    let cases = [
        (None, Some(Format::Json)),
        (Some(pb), Some(Format::Protobuf)),
        (Some(V2_PROTOBUF), Some(Format::Protobuf)),
        (Some("application/json"), Some(Format::Json)),
        (Some("*/*"), Some(Format::Json)),
        (Some("application/json;q=0.5, application/com.github.proto-openapi.spec.v2@v1.0+protobuf"), Some(Format::Protobuf)),
        (Some("text/html"), None),
    ];
    for (accept, want) in cases {
        assert_eq!(negotiate(accept, &offered), want, "Accept: {accept:?}");
    }
}

#[test]
fn the_endpoints_answer_as_kube_apiserver_does() {
    let registry = Registry::with_builtins();
    let openapi = OpenApi::new();
    let pb = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";
    let r = openapi.serve_v2(&registry, &headers(&[(header::ACCEPT, pb)]));
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()[header::CONTENT_TYPE], V2_PROTOBUF);
    let etag = r.headers()[header::ETAG]
        .to_str()
        .expect("ETag")
        .to_string();
    let again = headers(&[(header::ACCEPT, pb), (header::IF_NONE_MATCH, &etag)]);
    assert_eq!(
        openapi.serve_v2(&registry, &again).status(),
        StatusCode::NOT_MODIFIED
    );
    let r = openapi.serve_v2(&registry, &HeaderMap::new());
    assert_eq!(r.headers()[header::CONTENT_TYPE], "application/json");

    let (_, hash) = openapi
        .v3_document(&registry, "apis/apps/v1")
        .expect("apps/v1");
    let none = HeaderMap::new();
    let current = format!("hash={hash}");
    let r = openapi.serve_v3(&registry, "apis/apps/v1", Some(&current), &none);
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()[header::CACHE_CONTROL]
        .to_str()
        .is_ok_and(|c| c.contains("immutable")));
    let r = openapi.serve_v3(&registry, "apis/apps/v1", Some("hash=0BAD"), &none);
    assert_eq!(r.status(), StatusCode::MOVED_PERMANENTLY);
    let location = r.headers()[header::LOCATION].to_str().expect("Location");
    assert_eq!(location, format!("/openapi/v3/apis/apps/v1?{current}"));
    let r = openapi.serve_v3(&registry, "apis/apps/v1", None, &none);
    assert!(r.headers().get(header::CACHE_CONTROL).is_none());
    let r = openapi.serve_v3(&registry, "apis/nothing.example.com/v1", None, &none);
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}
