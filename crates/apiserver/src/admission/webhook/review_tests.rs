//! Tests of the AdmissionReview exchange: the request's fields, the response checks, the
//! denial message and code, and patches.

use base64::Engine as _;
use serde_json::json;

use super::*;
use crate::auth::UserInfo;
use crate::registry::builtin_types;

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn answer(response: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({"apiVersion": API_VERSION, "kind": KIND, "response": response}))
        .unwrap()
}

#[test]
fn the_request_carries_what_kubernetes_sends() {
    let rt = builtin_types()
        .into_iter()
        .find(|t| t.kind == "Pod")
        .unwrap();
    let user = UserInfo {
        name: "alice".into(),
        uid: "u-1".into(),
        groups: vec!["dev".into()],
    };
    let old = json!({"metadata": {"name": "p"}, "status": {}});
    let req = AdmissionRequest {
        op: Operation::Update,
        rt: &rt,
        user: &user,
        namespace: "team",
        name: "p",
        old: Some(&old),
        subresource: "status",
    };
    let new = json!({"metadata": {"name": "p"}, "status": {"phase": "Running"}});
    let review = request(&req, Some(&new), "uid-7");
    assert_eq!(review["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(review["kind"], "AdmissionReview");
    let r = &review["request"];
    assert_eq!(r["uid"], "uid-7");
    assert_eq!(
        r["kind"],
        json!({"group": "", "version": "v1", "kind": "Pod"})
    );
    assert_eq!(
        r["resource"],
        json!({"group": "", "version": "v1", "resource": "pods"})
    );
    assert_eq!(r["requestResource"], r["resource"]);
    assert_eq!(r["subResource"], "status");
    assert_eq!((&r["name"], &r["namespace"]), (&json!("p"), &json!("team")));
    assert_eq!(r["operation"], "UPDATE");
    assert_eq!(
        r["userInfo"],
        json!({"username": "alice", "uid": "u-1", "groups": ["dev"]})
    );
    assert_eq!((&r["object"], &r["oldObject"]), (&new, &old));
    assert_eq!(r["dryRun"], false);
    assert_eq!(r["options"]["kind"], "UpdateOptions");
}

#[test]
fn responses_are_checked_as_kubernetes_checks_them() {
    let ok = answer(json!({"uid": "a", "allowed": true, "warnings": ["careful"]}));
    let v = verdict(&ok, "a", false).unwrap();
    assert!(v.allowed);
    assert_eq!(v.warnings, vec!["careful".to_string()]);

    let cases: &[(Vec<u8>, bool, &str)] = &[
        (ok.clone(), false, ""),
        (
            answer(json!({"uid": "b", "allowed": true})),
            false,
            "expected response.uid=\"a\", got \"b\"",
        ),
        (
            b"{}".to_vec(),
            false,
            "expected webhook response of admission.k8s.io/v1",
        ),
        (
            serde_json::to_vec(&json!({"apiVersion": API_VERSION, "kind": KIND})).unwrap(),
            false,
            "webhook response was absent",
        ),
        (b"not json".to_vec(), false, "expected"),
        (
            answer(json!({"uid": "a", "allowed": true, "patch": b64("[]")})),
            true,
            "response.patch but not response.patchType",
        ),
        (
            answer(json!({"uid": "a", "allowed": true, "patch": b64("[]"), "patchType": "Merge"})),
            true,
            "invalid response.patchType of \"Merge\"",
        ),
        (
            answer(
                json!({"uid": "a", "allowed": true, "patch": b64("[]"), "patchType": "JSONPatch"}),
            ),
            false,
            "validating webhook may not return response.patch",
        ),
    ];
    for (body, mutating, want) in cases {
        match verdict(body, "a", *mutating) {
            Ok(_) => assert!(want.is_empty(), "accepted; want {want:?}"),
            Err(e) => assert!(!want.is_empty() && e.contains(want), "{e:?}; want {want:?}"),
        }
    }
}

#[test]
fn a_denial_names_the_webhook_and_keeps_its_code() {
    let st = |code: i32, message: &str, reason: &str| Status {
        code,
        message: message.into(),
        reason: reason.into(),
    };
    let e = denial("deny.example.com", &st(403, "labelled deny", ""));
    assert!(matches!(e, Error::Forbidden(_)), "{e:?}");
    assert_eq!(
        e.to_string(),
        "admission webhook \"deny.example.com\" denied the request: labelled deny"
    );
    // Codes under 400 become 400, as Kubernetes never rejects with a success code.
    let e = denial("w", &st(200, "", "NotAllowed"));
    assert!(matches!(e, Error::BadRequest(_)), "{e:?}");
    assert_eq!(
        e.to_string(),
        "admission webhook \"w\" denied the request: NotAllowed"
    );
    let e = denial("w", &st(0, "", ""));
    assert_eq!(
        e.to_string(),
        "admission webhook \"w\" denied the request without explanation"
    );
    assert!(matches!(
        denial("w", &st(429, "slow", "")),
        Error::Unavailable(_)
    ));
}

#[test]
fn patches_apply_and_may_not_change_identity() {
    let obj = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "n"}});
    let mut o = obj.clone();
    let add = br#"[{"op": "add", "path": "/metadata/labels", "value": {"mutated": "true"}}]"#;
    apply_patch("m", &mut o, add).unwrap();
    assert_eq!(o["metadata"]["labels"]["mutated"], "true");

    let mut o = obj.clone();
    let rename = br#"[{"op": "replace", "path": "/metadata/name", "value": "other"}]"#;
    let e = apply_patch("m", &mut o, rename).unwrap_err();
    assert!(
        e.to_string().contains("may not change metadata.name"),
        "{e}"
    );
    assert_eq!(o, obj, "a refused patch leaves the object as it was");

    let mut o = obj.clone();
    let missing = br#"[{"op": "remove", "path": "/spec/x"}]"#;
    let e = apply_patch("m", &mut o, missing).unwrap_err();
    assert!(matches!(e, Error::Internal(_)), "{e:?}");
    assert!(
        e.to_string().contains("\"m\" returned an unusable patch"),
        "{e}"
    );
    assert_eq!(o, obj);
}
