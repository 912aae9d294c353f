//! The StatefulSet controller's decisions on updates, claim retention and the status:
//! the partitioned rolling update from the highest ordinal down, OnDelete, revisions for
//! pods made again, `persistentVolumeClaimRetentionPolicy`, the status counts with
//! `minReadySeconds`, and a revision name collision.

use std::sync::Arc;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use serde_json::json;

use super::*;

/// The rolling update: `v1` pods, the set now at `v2`.
struct Update {
    name: &'static str,
    set: StatefulSet,
    /// Per ordinal: at v2, and its state.
    pods: Vec<(i32, bool, &'static str)>,
    create: &'static [&'static str],
    delete: &'static [&'static str],
}

fn update_rows() -> Vec<Update> {
    let partitioned = |p: i32| {
        set(
            "web:2",
            json!({"spec": {"updateStrategy": {"rollingUpdate": {"partition": p}}}}),
        )
    };
    let on_delete = set(
        "web:2",
        json!({"spec": {"updateStrategy": {"type": "OnDelete"}}}),
    );
    vec![
        Update {
            name: "the highest old pod goes first",
            set: partitioned(0),
            pods: vec![
                (0, false, "ready"),
                (1, false, "ready"),
                (2, false, "ready"),
            ],
            create: &[],
            delete: &["web-2"],
        },
        Update {
            name: "the next waits until the updated one is Ready",
            set: partitioned(0),
            pods: vec![
                (0, false, "ready"),
                (1, false, "ready"),
                (2, true, "running"),
            ],
            create: &[],
            delete: &[],
        },
        Update {
            name: "then the next one down",
            set: partitioned(0),
            pods: vec![(0, false, "ready"), (1, false, "ready"), (2, true, "ready")],
            create: &[],
            delete: &["web-1"],
        },
        Update {
            name: "partition 2: only ordinals from 2 are updated",
            set: partitioned(2),
            pods: vec![
                (0, false, "ready"),
                (1, false, "ready"),
                (2, false, "ready"),
            ],
            create: &[],
            delete: &["web-2"],
        },
        Update {
            name: "partition 2: and it stops there",
            set: partitioned(2),
            pods: vec![(0, false, "ready"), (1, false, "ready"), (2, true, "ready")],
            create: &[],
            delete: &[],
        },
        Update {
            name: "partition 2: a deleted web-1 comes back at the old revision",
            set: partitioned(2),
            pods: vec![(0, false, "ready"), (2, true, "ready")],
            create: &["web-1@v1"],
            delete: &[],
        },
        Update {
            name: "the deleted pod comes back at the new revision",
            set: partitioned(0),
            pods: vec![(0, false, "ready"), (1, false, "ready")],
            create: &["web-2@v2"],
            delete: &[],
        },
        Update {
            name: "OnDelete deletes nothing",
            set: on_delete.clone(),
            pods: vec![
                (0, false, "ready"),
                (1, false, "ready"),
                (2, false, "ready"),
            ],
            create: &[],
            delete: &[],
        },
        Update {
            name: "OnDelete: a pod deleted by hand comes back at the new revision",
            set: on_delete,
            pods: vec![(0, false, "ready"), (2, false, "ready")],
            create: &["web-1@v2"],
            delete: &[],
        },
    ]
}

#[test]
fn a_rolling_update_replaces_pods_from_the_top_down_to_the_partition() {
    let v1 = set("web:1", json!({}));
    let (r1, r2) = (revision(&v1, 1), revision(&set("web:2", json!({})), 2));
    for r in update_rows() {
        let mut s = r.set.clone();
        s.status =
            serde_json::from_value(json!({"replicas": 3, "currentRevision": name_of(&r1)})).ok();
        let pods: Vec<Arc<Pod>> = r
            .pods
            .iter()
            .map(|(o, new, state)| pod(&s, if *new { &s } else { &v1 }, *o, state))
            .collect();
        let p = decide(
            &s,
            &pods,
            &claims(&s, &[0, 1, 2], &[]),
            &[r1.clone(), r2.clone()],
        );
        let made: Vec<String> = p
            .create_pods
            .iter()
            .map(|pod| {
                let labels = pod.metadata.labels.clone().unwrap();
                let image = pod.spec.as_ref().unwrap().containers[0]
                    .image
                    .clone()
                    .unwrap();
                let rev = if labels[REVISION_LABEL] == name_of(&r1) {
                    "v1"
                } else {
                    assert_eq!(labels[REVISION_LABEL], name_of(&r2), "{}", r.name);
                    "v2"
                };
                assert_eq!(
                    image,
                    format!("web:{}", &rev[1..]),
                    "{}: template of its revision",
                    r.name
                );
                format!("{}@{rev}", pod.metadata.name.clone().unwrap())
            })
            .collect();
        assert_eq!(made, r.create, "{}: created", r.name);
        assert_eq!(deleted(&p), r.delete, "{}: deleted", r.name);
        assert_eq!(p.create_revision, None, "{}: v2 has its revision", r.name);
    }
}

#[test]
fn claims_follow_the_retention_policy() {
    let policy = |deleted: &str, scaled: &str| {
        set(
            "web:1",
            json!({"spec": {"replicas": 1, "persistentVolumeClaimRetentionPolicy":
                {"whenDeleted": deleted, "whenScaled": scaled}}}),
        )
    };
    // (policy, pods left, claims deleted, claims given a reference to the set)
    type Case = (StatefulSet, Vec<i32>, Vec<&'static str>, Vec<&'static str>);
    let cases: Vec<Case> = vec![
        (policy("Retain", "Retain"), vec![0], vec![], vec![]),
        (
            policy("Delete", "Retain"),
            vec![0],
            vec![],
            vec!["data-web-0", "data-web-1", "data-web-2"],
        ),
        (
            policy("Retain", "Delete"),
            vec![0],
            vec!["data-web-1", "data-web-2"],
            vec![],
        ),
        (policy("Retain", "Delete"), vec![0, 1, 2], vec![], vec![]),
        (
            policy("Delete", "Delete"),
            vec![0, 2],
            vec!["data-web-1"],
            vec!["data-web-0"],
        ),
    ];
    for (s, left, gone, owned) in cases {
        let what = format!(
            "{:?} with pods {left:?}",
            s.spec.persistent_volume_claim_retention_policy
        );
        let pods: Vec<Arc<Pod>> = left.iter().map(|o| pod(&s, &s, *o, "ready")).collect();
        let p = decide(&s, &pods, &claims(&s, &[0, 1, 2], &[]), &[revision(&s, 1)]);
        assert_eq!(p.delete_claims, gone, "{what}: claims deleted");
        let refs: Vec<&str> = p
            .claim_owners
            .iter()
            .filter(|o| o.owner_references.iter().any(|r| r.uid == "set-uid"))
            .map(|o| o.name.as_str())
            .collect();
        assert_eq!(refs, owned, "{what}: claims that go with the set");
    }
    // Back to Retain: the reference is taken off again, other owners stay.
    let s = policy("Retain", "Retain");
    let mut c = (*claims(&s, &[0], &[])[0]).clone();
    c.metadata.owner_references = Some(vec![
        identity::claim_owner(&s),
        serde_json::from_value(json!({"apiVersion": "v1", "kind": "ConfigMap", "name": "x",
            "uid": "other"}))
        .unwrap(),
    ]);
    let p = decide(
        &s,
        &[pod(&s, &s, 0, "ready")],
        &[Arc::new(c)],
        &[revision(&s, 1)],
    );
    let uids: Vec<&str> = p.claim_owners[0]
        .owner_references
        .iter()
        .map(|r| r.uid.as_str())
        .collect();
    assert_eq!(uids, ["other"]);
    // whenDeleted: Delete: new claims are made with the reference.
    let s = policy("Delete", "Retain");
    let p = decide(&s, &[], &[], &[]);
    let refs = p.create_claims[0]
        .metadata
        .owner_references
        .clone()
        .unwrap();
    assert_eq!(
        (refs[0].uid.as_str(), refs[0].controller),
        ("set-uid", None)
    );
}

#[test]
fn the_status_counts_pods_by_readiness_and_revision() {
    let v1 = set("web:1", json!({}));
    let v2 = set("web:2", json!({"spec": {"minReadySeconds": 600}}));
    let (r1, r2) = (revision(&v1, 1), revision(&v2, 2));
    let mut s = v2.clone();
    s.status = serde_json::from_value(json!({"replicas": 3, "currentRevision": name_of(&r1),
        "collisionCount": 0}))
    .ok();
    // Ready since 22:00; NOW is 22:13:20, so minReadySeconds 600 has passed.
    let pods = vec![
        pod(&s, &v1, 0, "ready"),
        pod(&s, &v1, 1, "running"),
        pod(&s, &v2, 2, "deleting"),
    ];
    let p = decide(
        &s,
        &pods,
        &claims(&s, &[0, 1, 2], &[]),
        &[r1.clone(), r2.clone()],
    );
    let st = p.status.expect("a changed status is written");
    assert_eq!(st.replicas, 3);
    assert_eq!(
        (st.ready_replicas, st.available_replicas),
        (Some(2), Some(2))
    );
    assert_eq!(
        (st.current_replicas, st.updated_replicas),
        (Some(2), Some(0)),
        "a pod being deleted counts for neither revision"
    );
    assert_eq!(st.current_revision, Some(name_of(&r1)));
    assert_eq!(st.update_revision, Some(name_of(&r2)));
    assert_eq!(
        (st.observed_generation, st.collision_count),
        (Some(2), Some(0))
    );

    // Every pod updated and Ready: the update revision becomes current.
    let pods: Vec<Arc<Pod>> = (0..3).map(|o| pod(&s, &v2, o, "ready")).collect();
    let p = decide(&s, &pods, &claims(&s, &[0, 1, 2], &[]), &[r1, r2.clone()]);
    let st = p.status.unwrap();
    assert_eq!(st.current_revision, Some(name_of(&r2)));
    assert_eq!(
        (st.current_replicas, st.updated_replicas),
        (Some(3), Some(3))
    );
    // Written once: the same status is not written again.
    let mut again = s.clone();
    again.status = Some(st);
    let p = decide(&again, &pods, &claims(&s, &[0, 1, 2], &[]), &[r2]);
    assert!(p.status.is_none());
}

#[test]
fn a_ready_pod_not_yet_available_is_looked_at_again_when_it_will_be() {
    let s = set("web:1", json!({"spec": {"minReadySeconds": 1000}}));
    // Ready since 22:00:00, NOW 22:13:20: 800 s of 1000.
    let p = decide(
        &s,
        &[pod(&s, &s, 0, "ready")],
        &claims(&s, &[0], &[]),
        &[revision(&s, 1)],
    );
    assert_eq!(p.requeue, Some(std::time::Duration::from_secs(200)));
    assert!(
        p.create_pods.is_empty(),
        "ordered: web-1 waits for web-0 to be available"
    );
}

#[test]
fn a_revision_name_taken_by_another_template_raises_the_collision_count_first() {
    let s = set("web:2", json!({}));
    let mut impostor = (*revision(&set("web:1", json!({})), 1)).clone();
    impostor.metadata.name = Some(name_of(&revision(&s, 1)));
    let p = decide(&s, &[], &[], &[Arc::new(impostor)]);
    assert_eq!(p.status.and_then(|s| s.collision_count), Some(1));
    assert!(p.create_pods.is_empty() && p.create_revision.is_none());
}
