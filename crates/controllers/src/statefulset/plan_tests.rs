//! The StatefulSet controller's decisions, one table row per case Kubernetes' stateful
//! set control tests cover: ordered and parallel start, scale down from the highest
//! ordinal, a missing or failed pod made again under its name, a claim per ordinal,
//! adoption, and the identity a pod gets. Updates, claim retention and the status are in
//! `plan_update_tests.rs`, on the helpers here.

use std::sync::Arc;

use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use serde_json::{json, Value};

use super::super::history;
use super::super::identity::{self, claim_pods, POD_INDEX_LABEL, POD_NAME_LABEL, REVISION_LABEL};
use super::*;

#[path = "plan_update_tests.rs"]
mod update;

/// 2023-11-14T22:13:20Z.
const NOW: i64 = 1_700_000_000;

/// Merges `patch` into `base`, objects key by key.
fn merge(base: &mut Value, patch: Value) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, v) in p {
                merge(b.entry(k).or_insert(Value::Null), v);
            }
        }
        (b, p) => *b = p,
    }
}

/// `web`: 3 replicas of `image`, a claim template `data`, OrderedReady, RollingUpdate;
/// `extra` merged in.
fn set(image: &str, extra: Value) -> StatefulSet {
    let mut v = json!({
        "metadata": {"name": "web", "namespace": "ns", "uid": "set-uid", "generation": 2},
        "spec": {"replicas": 3, "serviceName": "web-svc",
            "selector": {"matchLabels": {"app": "web"}},
            "podManagementPolicy": "OrderedReady",
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": image}],
                    "volumes": [{"name": "data", "emptyDir": {}}, {"name": "cfg", "emptyDir": {}}]}},
            "volumeClaimTemplates": [{"metadata": {"name": "data", "labels": {"tier": "db"}},
                "spec": {"accessModes": ["ReadWriteOnce"],
                    "resources": {"requests": {"storage": "1Gi"}}}}]}
    });
    merge(&mut v, extra);
    serde_json::from_value(v).unwrap()
}

/// The revision of `s`'s template, numbered `number`.
fn revision(s: &StatefulSet, number: i64) -> Arc<ControllerRevision> {
    let mut r = history::resolve(s, &[]).create.unwrap();
    r.revision = Some(number);
    Arc::new(r)
}

fn name_of(r: &ControllerRevision) -> String {
    r.metadata.name.clone().unwrap()
}

/// A pod of `s` at ordinal `o`, made from the template of `made_from` at its revision:
/// `ready`, `running` (not ready), `pending`, `failed` or `deleting`.
fn pod(s: &StatefulSet, made_from: &StatefulSet, o: i32, state: &str) -> Arc<Pod> {
    let rev = name_of(&revision(made_from, 1));
    let mut p = identity::new_pod(s, &made_from.spec.template, &rev, o);
    p.metadata.uid = Some(format!("pod-uid-{o}"));
    let (phase, ready) = match state {
        "ready" | "deleting" => ("Running", "True"),
        "running" => ("Running", "False"),
        "pending" => ("Pending", "False"),
        "failed" => ("Failed", "False"),
        other => panic!("no pod state {other}"),
    };
    p.status = serde_json::from_value(json!({"phase": phase, "conditions": [{"type": "Ready",
        "status": ready, "lastTransitionTime": "2023-11-14T22:00:00Z"}]}))
    .ok();
    if state == "deleting" {
        p.metadata.deletion_timestamp = serde_json::from_value(json!("2023-11-14T22:13:00Z")).ok();
    }
    Arc::new(p)
}

/// The claims of ordinals `os` as the controller makes them; `deleting` ones are being
/// deleted.
fn claims(s: &StatefulSet, os: &[i32], deleting: &[i32]) -> Vec<Arc<PersistentVolumeClaim>> {
    os.iter()
        .flat_map(|o| {
            identity::new_claims(s, *o, None).into_iter().map(|mut c| {
                if deleting.contains(o) {
                    c.metadata.deletion_timestamp =
                        serde_json::from_value(json!("2023-11-14T22:13:00Z")).ok();
                }
                Arc::new(c)
            })
        })
        .collect()
}

fn decide(
    s: &StatefulSet,
    pods: &[Arc<Pod>],
    claims: &[Arc<PersistentVolumeClaim>],
    revisions: &[Arc<ControllerRevision>],
) -> Plan {
    plan(
        s,
        &World {
            pods,
            claims,
            revisions,
            now_s: NOW,
        },
    )
}

fn created(p: &Plan) -> Vec<String> {
    p.create_pods
        .iter()
        .map(|p| p.metadata.name.clone().unwrap())
        .collect()
}

fn deleted(p: &Plan) -> Vec<String> {
    p.delete_pods.iter().map(|d| d.name.clone()).collect()
}

fn claims_created(p: &Plan) -> Vec<String> {
    p.create_claims
        .iter()
        .map(|c| c.metadata.name.clone().unwrap())
        .collect()
}

struct Row {
    name: &'static str,
    set: StatefulSet,
    pods: Vec<Arc<Pod>>,
    claims: Vec<Arc<PersistentVolumeClaim>>,
    create: &'static [&'static str],
    claim: &'static [&'static str],
    delete: &'static [&'static str],
}

fn scaling_rows() -> Vec<Row> {
    let v1 = set("web:1", json!({}));
    let parallel = set(
        "web:1",
        json!({"spec": {"podManagementPolicy": "Parallel"}}),
    );
    let one = set("web:1", json!({"spec": {"replicas": 1}}));
    let one_parallel = set(
        "web:1",
        json!({"spec": {"replicas": 1, "podManagementPolicy": "Parallel"}}),
    );
    let p = |s: &StatefulSet, o, state| pod(s, &v1, o, state);
    vec![
        Row {
            name: "ordered: only the first pod, its claim first",
            set: v1.clone(),
            pods: vec![],
            claims: vec![],
            create: &["web-0"],
            claim: &["data-web-0"],
            delete: &[],
        },
        Row {
            name: "ordered: the next waits while web-0 runs but is not Ready",
            set: v1.clone(),
            pods: vec![p(&v1, 0, "running")],
            claims: claims(&v1, &[0], &[]),
            create: &[],
            claim: &[],
            delete: &[],
        },
        Row {
            name: "ordered: web-1 once web-0 is Ready",
            set: v1.clone(),
            pods: vec![p(&v1, 0, "ready")],
            claims: claims(&v1, &[0], &[]),
            create: &["web-1"],
            claim: &["data-web-1"],
            delete: &[],
        },
        Row {
            name: "parallel: every pod and claim at once",
            set: parallel.clone(),
            pods: vec![],
            claims: vec![],
            create: &["web-0", "web-1", "web-2"],
            claim: &["data-web-0", "data-web-1", "data-web-2"],
            delete: &[],
        },
        Row {
            name: "parallel: a pod that is not Ready holds nothing back",
            set: parallel.clone(),
            pods: vec![p(&parallel, 0, "pending")],
            claims: claims(&parallel, &[0], &[]),
            create: &["web-1", "web-2"],
            claim: &["data-web-1", "data-web-2"],
            delete: &[],
        },
        Row {
            name: "a missing pod is made again under its name, with its claim",
            set: v1.clone(),
            pods: vec![p(&v1, 0, "ready"), p(&v1, 2, "ready")],
            claims: claims(&v1, &[0, 1, 2], &[]),
            create: &["web-1"],
            claim: &[],
            delete: &[],
        },
        Row {
            name: "a failed pod is deleted, to be made again",
            set: v1.clone(),
            pods: vec![p(&v1, 0, "ready"), p(&v1, 1, "failed"), p(&v1, 2, "ready")],
            claims: claims(&v1, &[0, 1, 2], &[]),
            create: &[],
            claim: &[],
            delete: &["web-1"],
        },
        Row {
            name: "a claim still being deleted holds its pod back",
            set: v1.clone(),
            pods: vec![],
            claims: claims(&v1, &[0], &[0]),
            create: &[],
            claim: &[],
            delete: &[],
        },
        Row {
            name: "a claim deleted under a running pod is made again",
            set: v1.clone(),
            pods: vec![p(&v1, 0, "ready")],
            claims: vec![],
            create: &["web-1"],
            claim: &["data-web-0", "data-web-1"],
            delete: &[],
        },
        Row {
            name: "ordered scale down: the highest ordinal first, one at a time",
            set: one.clone(),
            pods: vec![
                p(&one, 0, "ready"),
                p(&one, 1, "ready"),
                p(&one, 2, "ready"),
            ],
            claims: claims(&one, &[0, 1, 2], &[]),
            create: &[],
            claim: &[],
            delete: &["web-2"],
        },
        Row {
            name: "ordered scale down waits for the one being deleted",
            set: one.clone(),
            pods: vec![
                p(&one, 0, "ready"),
                p(&one, 1, "ready"),
                p(&one, 2, "deleting"),
            ],
            claims: claims(&one, &[0, 1, 2], &[]),
            create: &[],
            claim: &[],
            delete: &[],
        },
        Row {
            name: "ordered scale down waits while the rest are not Ready",
            set: one.clone(),
            pods: vec![
                p(&one, 0, "running"),
                p(&one, 1, "ready"),
                p(&one, 2, "ready"),
            ],
            claims: claims(&one, &[0, 1, 2], &[]),
            create: &[],
            claim: &[],
            delete: &[],
        },
        Row {
            name: "ordered scale down may take the highest pod when it is the unready one",
            set: one.clone(),
            pods: vec![
                p(&one, 0, "ready"),
                p(&one, 1, "ready"),
                p(&one, 2, "running"),
            ],
            claims: claims(&one, &[0, 1, 2], &[]),
            create: &[],
            claim: &[],
            delete: &["web-2"],
        },
        Row {
            name: "parallel scale down: every extra pod at once",
            set: one_parallel.clone(),
            pods: vec![
                p(&one_parallel, 0, "running"),
                p(&one_parallel, 1, "ready"),
                p(&one_parallel, 2, "ready"),
            ],
            claims: claims(&one_parallel, &[0, 1, 2], &[]),
            create: &[],
            claim: &[],
            delete: &["web-2", "web-1"],
        },
    ]
}

#[test]
fn pods_start_stop_and_come_back_in_ordinal_order() {
    for r in scaling_rows() {
        let revisions = [revision(&r.set, 1)];
        let p = decide(&r.set, &r.pods, &r.claims, &revisions);
        assert_eq!(created(&p), r.create, "{}: pods created", r.name);
        assert_eq!(claims_created(&p), r.claim, "{}: claims created", r.name);
        assert_eq!(deleted(&p), r.delete, "{}: pods deleted", r.name);
        assert!(
            p.delete_claims.is_empty(),
            "{}: claims are retained by default",
            r.name
        );
    }
}

#[test]
fn a_pod_has_the_identity_of_its_ordinal() {
    let s = set("web:1", json!({}));
    let p = decide(&s, &[], &[], &[]);
    let rev = p.create_revision.clone().expect("a first revision");
    let pod = &p.create_pods[0];
    let labels = pod.metadata.labels.clone().unwrap();
    assert_eq!(labels[POD_NAME_LABEL], "web-0");
    assert_eq!(labels[POD_INDEX_LABEL], "0");
    assert_eq!(labels[REVISION_LABEL], name_of(&rev));
    assert_eq!(labels["app"], "web");
    let owner = &pod.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
        ("StatefulSet", "set-uid", Some(true))
    );
    let spec = pod.spec.as_ref().unwrap();
    assert_eq!(spec.hostname.as_deref(), Some("web-0"));
    assert_eq!(spec.subdomain.as_deref(), Some("web-svc"));
    let volumes: Vec<(String, Option<String>)> = spec
        .volumes
        .iter()
        .flatten()
        .map(|v| {
            let claim = v.persistent_volume_claim.as_ref();
            (v.name.clone(), claim.map(|c| c.claim_name.clone()))
        })
        .collect();
    assert_eq!(
        volumes,
        [
            ("data".to_string(), Some("data-web-0".to_string())),
            ("cfg".to_string(), None)
        ],
        "the claim replaces the template volume of its name"
    );
    let claim = &p.create_claims[0];
    let labels = claim.metadata.labels.clone().unwrap();
    assert_eq!(
        (labels["app"].as_str(), labels["tier"].as_str()),
        ("web", "db")
    );
    assert_eq!(claim.metadata.owner_references, None, "retained by default");
    assert_eq!(rev.revision, Some(1));
}

#[test]
fn changed_identity_labels_are_put_back() {
    let s = set("web:1", json!({}));
    let mut p = (*pod(&s, &s, 0, "ready")).clone();
    p.metadata
        .labels
        .as_mut()
        .unwrap()
        .insert(POD_INDEX_LABEL.into(), "7".into());
    let plan = decide(
        &s,
        &[Arc::new(p)],
        &claims(&s, &[0], &[]),
        &[revision(&s, 1)],
    );
    assert_eq!(plan.relabel_pods.len(), 1);
    assert_eq!(plan.relabel_pods[0].labels[POD_INDEX_LABEL], "0");
}
#[test]
fn orphans_named_for_an_ordinal_are_adopted_and_unselected_pods_released() {
    let s = set("web:1", json!({}));
    let orphan = |name: &str, app: &str| -> Arc<Pod> {
        Arc::new(
            serde_json::from_value(json!({"metadata": {"name": name, "namespace": "ns",
                "labels": {"app": app}}}))
            .unwrap(),
        )
    };
    let mine = pod(&s, &s, 0, "ready");
    let mut relabelled = (*pod(&s, &s, 1, "ready")).clone();
    relabelled.metadata.labels = Some([("app".to_string(), "db".to_string())].into());
    let pods = vec![
        mine,
        Arc::new(relabelled),
        orphan("web-2", "web"),
        orphan("web-x", "web"),
        orphan("web-3", "db"),
    ];
    let c = claim_pods(&s, &pods);
    let names = |v: &[Arc<Pod>]| -> Vec<String> {
        v.iter().map(|p| p.metadata.name.clone().unwrap()).collect()
    };
    assert_eq!(names(&c.owned), ["web-0"]);
    assert_eq!(names(&c.adopt), ["web-2"]);
    assert_eq!(names(&c.release), ["web-1"]);
}

#[test]
fn ordinals_start_where_spec_ordinals_says() {
    let s = set(
        "web:1",
        json!({"spec": {"ordinals": {"start": 5},
        "podManagementPolicy": "Parallel"}}),
    );
    let p = decide(&s, &[], &[], &[]);
    assert_eq!(created(&p), ["web-5", "web-6", "web-7"]);
}
