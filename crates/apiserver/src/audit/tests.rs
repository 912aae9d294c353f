//! Events as each level records them, the stages emitted, the request attributes taken
//! from the `rkube.api.v1` requests, and the audit log end to end.

use std::sync::{Arc, Mutex};

use rkube_proto::api::{
    BindRequest, CreateRequest, DeleteRequest, DeleteResponse, ListResponse, Object, PatchRequest,
    TypeRef, UpdateRequest, WatchRequest,
};
use serde_json::{json, Value};

use super::event::{MicroTime, ResponseStatus};
use super::request::{self, AuditTarget, AuditedResponse};
use super::*;
use crate::registry::Registry;

#[derive(Default)]
struct Memory(Mutex<Vec<Value>>);

impl Backend for Arc<Memory> {
    fn process(&self, event: &Event) {
        let v = serde_json::to_value(event).unwrap();
        self.0.lock().unwrap().push(v);
    }
}

fn auditor(rules: &str) -> (Arc<Auditor>, Arc<Memory>) {
    let text = format!("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n{rules}");
    let policy = Policy::parse(&text).unwrap();
    let mem = Arc::new(Memory::default());
    (Arc::new(Auditor::new(policy, Box::new(mem.clone()))), mem)
}

fn alice() -> UserInfo {
    UserInfo {
        name: "alice".into(),
        uid: "u-1".into(),
        groups: vec!["devs".into(), "system:authenticated".into()],
    }
}

fn secret_info(verb: &str) -> RequestInfo {
    RequestInfo {
        audit_id: "id-1".into(),
        request_uri: "/api/v1/namespaces/default/secrets/s".into(),
        verb: verb.into(),
        user: Some(alice()),
        impersonated: None,
        source_ips: vec!["10.0.0.1".into()],
        user_agent: "rkube-ctl".into(),
        object_ref: Some(ObjectRef {
            resource: "secrets".into(),
            namespace: "default".into(),
            name: "s".into(),
            api_version: "v1".into(),
            ..Default::default()
        }),
        received: MicroTime::now(),
    }
}

const SECRET: &str =
    r#"{"kind":"Secret","apiVersion":"v1","metadata":{"name":"s"},"data":{"k":"c2VjcmV0"}}"#;

/// Records one update of a Secret at `level`, both bodies offered.
fn record_update(level: &str) -> Vec<Value> {
    let (a, mem) = auditor(&format!("- level: {level}\n"));
    let mut r = a.begin(secret_info("update")).expect("audited");
    r.set_request_object(|| serde_json::from_str(SECRET).ok());
    r.received();
    r.complete(ResponseStatus::success(200), || {
        serde_json::from_str(SECRET).ok()
    });
    let events = mem.0.lock().unwrap().clone();
    events
}

#[test]
fn metadata_records_no_bodies() {
    let ev = record_update("Metadata");
    assert_eq!(ev.len(), 2);
    for e in &ev {
        assert!(e.get("requestObject").is_none(), "{e}");
        assert!(e.get("responseObject").is_none(), "{e}");
        assert!(
            !e.to_string().contains("c2VjcmV0"),
            "secret data leaked: {e}"
        );
    }
}

#[test]
fn request_records_the_request_body() {
    let ev = record_update("Request");
    let done = &ev[1];
    assert_eq!(done["requestObject"]["data"]["k"], "c2VjcmV0");
    assert!(done.get("responseObject").is_none(), "{done}");
}

#[test]
fn request_response_records_both_bodies() {
    let ev = record_update("RequestResponse");
    let done = &ev[1];
    assert_eq!(done["requestObject"]["metadata"]["name"], "s");
    assert_eq!(done["responseObject"]["metadata"]["name"], "s");
}

#[test]
fn event_shape_per_stage() {
    let ev = record_update("Metadata");
    let (recv, done) = (&ev[0], &ev[1]);
    for e in &ev {
        assert_eq!(e["kind"], "Event");
        assert_eq!(e["apiVersion"], "audit.k8s.io/v1");
        assert_eq!(e["level"], "Metadata");
        assert_eq!(e["auditID"], "id-1");
        assert_eq!(e["verb"], "update");
        assert_eq!(e["requestURI"], "/api/v1/namespaces/default/secrets/s");
        assert_eq!(e["user"]["username"], "alice");
        assert_eq!(e["user"]["groups"], json!(["devs", "system:authenticated"]));
        assert_eq!(e["sourceIPs"], json!(["10.0.0.1"]));
        assert_eq!(e["userAgent"], "rkube-ctl");
        assert_eq!(
            e["objectRef"],
            json!({"resource": "secrets", "namespace": "default", "name": "s", "apiVersion": "v1"})
        );
        assert!(e.get("impersonatedUser").is_none());
        let ts = e["stageTimestamp"].as_str().unwrap();
        let frac = ts.rsplit('.').next().unwrap();
        assert!(
            frac.len() == 7 && frac.ends_with('Z'),
            "not a MicroTime: {ts}"
        );
    }
    assert_eq!(recv["stage"], "RequestReceived");
    assert!(recv.get("responseStatus").is_none());
    assert_eq!(done["stage"], "ResponseComplete");
    assert_eq!(done["responseStatus"], json!({"metadata": {}, "code": 200}));
    assert_eq!(
        recv["requestReceivedTimestamp"],
        done["requestReceivedTimestamp"]
    );
    assert!(done["stageTimestamp"].as_str() >= recv["stageTimestamp"].as_str());
}

#[test]
fn failures_record_the_status_kubernetes_answers() {
    let (a, mem) = auditor("- level: Metadata\n");
    let r = a.begin(secret_info("get")).unwrap();
    let e = crate::error::Error::NotFound {
        resource: "secrets".into(),
        name: "s".into(),
    };
    r.complete(ResponseStatus::failure(&e), || None);
    let ev = mem.0.lock().unwrap();
    assert_eq!(
        ev[0]["responseStatus"],
        json!({"metadata": {}, "status": "Failure", "reason": "NotFound",
               "message": "secrets \"s\" not found", "code": 404})
    );
}

#[test]
fn level_none_and_omitted_stages_record_nothing() {
    let (a, mem) = auditor(
        "- level: None\n  verbs: [get]\n- level: Metadata\n  omitStages: [RequestReceived]\n",
    );
    assert!(a.begin(secret_info("get")).is_none());
    let mut r = a.begin(secret_info("list")).unwrap();
    r.received();
    r.complete(ResponseStatus::success(200), || None);
    let ev = mem.0.lock().unwrap();
    let stages: Vec<&Value> = ev.iter().map(|e| &e["stage"]).collect();
    assert_eq!(stages, vec!["ResponseComplete"]);
}

#[test]
fn long_running_requests_complete_when_the_guard_drops() {
    let (a, mem) = auditor("- level: Metadata\n");
    let r = a.begin(secret_info("watch")).unwrap();
    let guard = r.started(ResponseStatus::success(200));
    assert_eq!(mem.0.lock().unwrap().len(), 1);
    drop(guard);
    let ev = mem.0.lock().unwrap();
    let stages: Vec<&Value> = ev.iter().map(|e| &e["stage"]).collect();
    assert_eq!(stages, vec!["ResponseStarted", "ResponseComplete"]);
}

#[test]
fn impersonation_records_both_users_and_matches_the_requester() {
    let (a, mem) = auditor("- level: Metadata\n  users: [alice]\n");
    let mut info = secret_info("get");
    info.impersonated = Some(UserInfo {
        name: "bob".into(),
        uid: String::new(),
        groups: vec!["system:authenticated".into()],
    });
    a.begin(info)
        .unwrap()
        .complete(ResponseStatus::success(200), || None);
    let ev = mem.0.lock().unwrap();
    assert_eq!(ev[0]["user"]["username"], "alice");
    assert_eq!(ev[0]["impersonatedUser"]["username"], "bob");
}

#[test]
fn omit_managed_fields_strips_them_from_bodies() {
    let text = "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitManagedFields: true\nrules:\n- level: RequestResponse\n";
    let mem = Arc::new(Memory::default());
    let a = Arc::new(Auditor::new(
        Policy::parse(text).unwrap(),
        Box::new(mem.clone()),
    ));
    let mut r = a.begin(secret_info("create")).unwrap();
    let obj = json!({"metadata": {"name": "s", "managedFields": [{"manager": "m"}]}});
    r.set_request_object(|| Some(obj.clone()));
    r.complete(ResponseStatus::success(201), || Some(obj.clone()));
    let ev = mem.0.lock().unwrap();
    assert_eq!(ev[0]["requestObject"], json!({"metadata": {"name": "s"}}));
    assert_eq!(ev[0]["responseObject"], json!({"metadata": {"name": "s"}}));
}

fn type_ref(api_version: &str, kind: &str) -> Option<TypeRef> {
    Some(TypeRef {
        api_version: api_version.into(),
        kind: kind.into(),
    })
}

#[test]
fn attributes_and_uris_of_requests() {
    let reg = Registry::with_builtins();
    let obj = Some(Object {
        r#type: type_ref("apps/v1", "Deployment"),
        namespace: "ns".into(),
        name: "d".into(),
        ..Default::default()
    });
    let uri = |t: &dyn AuditTarget, rpc: &str| {
        let target = t.target(rpc);
        let o = request::object_ref(&reg, &target);
        request::request_uri(&o, request::verb(rpc), &target.query)
    };
    let create = CreateRequest {
        object: obj.clone(),
    };
    assert_eq!(
        uri(&create, "create"),
        "/apis/apps/v1/namespaces/ns/deployments"
    );
    let status = UpdateRequest {
        object: obj.clone(),
        subresource: String::new(),
    };
    assert_eq!(
        uri(&status, "update_status"),
        "/apis/apps/v1/namespaces/ns/deployments/d/status"
    );
    assert_eq!(
        uri(&status, "update"),
        "/apis/apps/v1/namespaces/ns/deployments/d"
    );
    let watch = WatchRequest {
        r#type: type_ref("v1", "Pod"),
        label_selector: "app in (a,b)".into(),
        resource_version: "7".into(),
        ..Default::default()
    };
    assert_eq!(
        uri(&watch, "watch"),
        "/api/v1/pods?labelSelector=app%20in%20%28a%2Cb%29&resourceVersion=7&watch=true"
    );
    let bind = BindRequest {
        namespace: "ns".into(),
        name: "p".into(),
        node_name: "n1".into(),
        uid: String::new(),
    };
    assert_eq!(uri(&bind, "bind"), "/api/v1/namespaces/ns/pods/p/binding");
    assert_eq!(bind.request_object().unwrap()["target"]["name"], "n1");
    // Cluster-scoped kinds have no namespace even when the request sends one.
    let node = PatchRequest {
        r#type: type_ref("v1", "Node"),
        namespace: "ns".into(),
        name: "n1".into(),
        patch: br#"{"spec":{"unschedulable":true}}"#.to_vec().into(),
        status: true,
        ..Default::default()
    };
    let o = request::object_ref(&reg, &node.target("patch"));
    assert_eq!(
        (o.namespace.as_str(), o.subresource.as_str()),
        ("", "status")
    );
    assert_eq!(
        node.request_object().unwrap()["spec"]["unschedulable"],
        true
    );
}

#[test]
fn delete_options_and_responses() {
    let plain = DeleteRequest::default();
    assert!(plain.request_object().is_none());
    let with = DeleteRequest {
        grace_period_seconds: Some(0),
        propagation_policy: "Foreground".into(),
        ..Default::default()
    };
    let opts = with.request_object().unwrap();
    assert_eq!(opts["kind"], "DeleteOptions");
    assert_eq!(opts["gracePeriodSeconds"], 0);
    let pending = DeleteResponse {
        object: Some(Object::default()),
        deleted: false,
    };
    assert_eq!(pending.success_code("delete"), 202);
    let gone = DeleteResponse {
        object: None,
        deleted: true,
    };
    assert_eq!(gone.success_code("delete"), 200);
    assert_eq!(
        gone.response_object("Pod", "v1").unwrap()["status"],
        "Success"
    );
    let list = ListResponse {
        resource_version: "9".into(),
        items: vec![Object {
            json: br#"{"metadata":{"name":"a"}}"#.to_vec().into(),
            ..Default::default()
        }],
        ..Default::default()
    };
    let v = list.response_object("Pod", "v1").unwrap();
    assert_eq!(v["kind"], "PodList");
    assert_eq!(v["items"][0]["metadata"]["name"], "a");
    assert_eq!(Object::default().success_code("create"), 201);
}

#[test]
fn the_log_gets_one_json_line_per_stage() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Metadata\n",
    )
    .unwrap();
    let path = dir.path().join("audit.log");
    let cfg = AuditConfig {
        log_path: Some(path.clone()),
        policy_file: Some(policy),
        ..Default::default()
    };
    let a = Auditor::from_config(&cfg).unwrap().expect("auditing on");
    let mut r = a.begin(secret_info("get")).unwrap();
    r.received();
    r.complete(ResponseStatus::success(200), || None);
    // Dropping the last reference closes the queue; the writer then drains it.
    drop(a);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let lines = loop {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        if text.lines().count() >= 2 || std::time::Instant::now() > deadline {
            break text;
        }
        std::thread::yield_now();
    };
    let events: Vec<Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events.len(), 2, "wanted two events in {}", path.display());
    assert_eq!(events[1]["stage"], "ResponseComplete");
}

#[test]
fn config_errors_stop_startup() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: [{level: Loud}]\n",
    )
    .unwrap();
    let cfg = AuditConfig {
        log_path: Some(dir.path().join("audit.log")),
        policy_file: Some(policy),
        ..Default::default()
    };
    let err = Auditor::from_config(&cfg)
        .err()
        .expect("refused")
        .to_string();
    assert!(
        err.contains("policy.yaml") && err.contains("rules[0].level"),
        "{err}"
    );
    let off = AuditConfig::default();
    assert!(Auditor::from_config(&off).unwrap().is_none());
}
