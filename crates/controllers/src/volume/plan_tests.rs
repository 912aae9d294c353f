//! Table tests of the binder's plans.

use serde_json::{json, Value};

use super::*;

fn pv(name: &str, extra: Value) -> PersistentVolume {
    let mut v = json!({"metadata": {"name": name, "labels": {"tier": "fast"}},
        "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"]},
        "status": {"phase": "Available"}});
    merge(&mut v, extra);
    serde_json::from_value(v).unwrap()
}

fn pvc(name: &str, extra: Value) -> PersistentVolumeClaim {
    let mut v = json!({"metadata": {"name": name, "namespace": "ns", "uid": format!("uid-{name}")},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
        "status": {"phase": "Pending"}});
    merge(&mut v, extra);
    serde_json::from_value(v).unwrap()
}

fn merge(a: &mut Value, b: Value) {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(Value::Null), v);
            }
        }
        (a, b) => *a = b,
    }
}

fn bind(volume: &str) -> ClaimPlan {
    ClaimPlan::Bind {
        volume: volume.into(),
    }
}

fn decide(claim: &PersistentVolumeClaim, volumes: &[PersistentVolume]) -> ClaimPlan {
    let refs: Vec<&PersistentVolume> = volumes.iter().collect();
    plan_claim(
        claim,
        &ClaimWorld {
            volumes: &refs,
            class: None,
            selected_node: None,
        },
    )
}

#[test]
fn claims_bind_to_the_smallest_volume_that_fits() {
    let five = pv("five", json!({"spec": {"capacity": {"storage": "5Gi"}}}));
    let one = pv("one", json!({}));
    let half = pv("half", json!({"spec": {"capacity": {"storage": "512Mi"}}}));
    let fast = pv("fast", json!({"spec": {"storageClassName": "fast"}}));
    let rwx = pv(
        "rwx",
        json!({"spec": {"accessModes": ["ReadWriteMany", "ReadWriteOnce"],
        "capacity": {"storage": "2Gi"}}}),
    );
    let block = pv("block", json!({"spec": {"volumeMode": "Block"}}));
    let cases: Vec<(
        &str,
        PersistentVolumeClaim,
        Vec<PersistentVolume>,
        ClaimPlan,
    )> = vec![
        (
            "smallest fit wins",
            pvc("c", json!({})),
            vec![five.clone(), one.clone(), half.clone()],
            bind("one"),
        ),
        (
            "too small never fits",
            pvc("c", json!({})),
            vec![half.clone()],
            ClaimPlan::Wait,
        ),
        (
            "no class matches only no class",
            pvc("c", json!({})),
            vec![fast.clone(), five.clone()],
            bind("five"),
        ),
        (
            "a class matches only that class",
            pvc("c", json!({"spec": {"storageClassName": "fast"}})),
            vec![one.clone(), fast.clone()],
            bind("fast"),
        ),
        (
            "access modes must be a subset",
            pvc("c", json!({"spec": {"accessModes": ["ReadWriteMany"]}})),
            vec![one.clone(), rwx.clone()],
            bind("rwx"),
        ),
        (
            "selector on labels",
            pvc(
                "c",
                json!({"spec": {"selector": {"matchLabels": {"tier": "slow"}}}}),
            ),
            vec![one.clone()],
            ClaimPlan::Wait,
        ),
        (
            "selector expressions",
            pvc(
                "c",
                json!({"spec": {"selector": {"matchExpressions":
            [{"key": "tier", "operator": "In", "values": ["fast"]}]}}}),
            ),
            vec![one.clone()],
            bind("one"),
        ),
        (
            "volume mode",
            pvc("c", json!({"spec": {"volumeMode": "Block"}})),
            vec![one.clone(), block.clone()],
            bind("block"),
        ),
        (
            "a claimed volume is not free",
            pvc("c", json!({})),
            vec![pv(
                "taken",
                json!({"spec": {"claimRef": {"namespace": "ns", "name": "other", "uid": "x"}}}),
            )],
            ClaimPlan::Wait,
        ),
        (
            "a released volume is not free",
            pvc("c", json!({})),
            vec![pv("old", json!({"status": {"phase": "Released"}}))],
            ClaimPlan::Wait,
        ),
    ];
    for (name, claim, volumes, want) in cases {
        assert_eq!(decide(&claim, &volumes), want, "{name}");
    }
}

#[test]
fn pre_binding_works_both_ways() {
    let prebound = pv(
        "mine",
        json!({"spec": {"claimRef": {"namespace": "ns", "name": "c"},
        "capacity": {"storage": "9Gi"}}}),
    );
    let small = pv("small", json!({}));
    // A volume pre-bound to the claim wins over a smaller fit.
    assert_eq!(
        decide(&pvc("c", json!({})), &[small.clone(), prebound.clone()]),
        bind("mine")
    );
    // It is not for any other claim.
    assert_eq!(
        decide(&pvc("d", json!({})), std::slice::from_ref(&prebound)),
        ClaimPlan::Wait
    );
    // A claim naming a volume binds to that one only.
    let named = pvc("c", json!({"spec": {"volumeName": "big"}}));
    let big = pv("big", json!({"spec": {"capacity": {"storage": "9Gi"}}}));
    assert_eq!(decide(&named, &[small.clone(), big.clone()]), bind("big"));
    assert_eq!(
        decide(&named, std::slice::from_ref(&small)),
        ClaimPlan::Wait
    );
    // ... and not when another claim holds it.
    let held = pv(
        "big",
        json!({"spec": {"claimRef": {"namespace": "ns", "name": "z", "uid": "z"}}}),
    );
    assert_eq!(decide(&named, &[held]), ClaimPlan::Wait);
}

#[test]
fn a_bound_claim_stays_put() {
    let claim = pvc(
        "c",
        json!({"spec": {"volumeName": "one"}, "status": {"phase": "Bound"}}),
    );
    let one = pv(
        "one",
        json!({"spec": {"claimRef": {"namespace": "ns", "name": "c", "uid": "uid-c"}},
        "status": {"phase": "Bound"}}),
    );
    assert_eq!(decide(&claim, &[one]), ClaimPlan::Wait);
}

#[test]
fn two_claims_one_volume_only_one_wins() {
    let one = pv("one", json!({}));
    // Both would pick it from a stale view; the claimRef compare-and-swap lets only one write.
    assert_eq!(
        decide(&pvc("a", json!({})), std::slice::from_ref(&one)),
        bind("one")
    );
    // Once the first holds it, the second sees it taken.
    let held = pv(
        "one",
        json!({"spec": {"claimRef": {"namespace": "ns", "name": "a", "uid": "uid-a"}}}),
    );
    assert_eq!(decide(&pvc("b", json!({})), &[held]), ClaimPlan::Wait);
}

#[test]
fn wait_for_first_consumer_waits_for_the_selected_node() {
    let class: StorageClass = serde_json::from_value(json!({"metadata": {"name": "local"},
        "provisioner": "x", "volumeBindingMode": WAIT_FOR_FIRST_CONSUMER}))
    .unwrap();
    let affinity = json!({"spec": {"storageClassName": "local", "nodeAffinity": {"required":
        {"nodeSelectorTerms": [{"matchExpressions": [{"key": "kubernetes.io/hostname",
        "operator": "In", "values": ["n2"]}]}]}}}});
    let on_n2 = pv("on-n2", affinity);
    let refs = [&on_n2];
    let claim = pvc("c", json!({"spec": {"storageClassName": "local"}}));
    let world = |node: Option<&'static str>| ClaimWorld {
        volumes: &refs,
        class: Some(&class),
        selected_node: node.map(|n| {
            (
                n,
                [("kubernetes.io/hostname".to_string(), n.to_string())].into(),
            )
        }),
    };
    assert_eq!(plan_claim(&claim, &world(None)), ClaimPlan::Wait);
    let mut selected = claim.clone();
    selected.metadata.annotations = Some([(SELECTED_NODE.to_string(), "n1".to_string())].into());
    assert_eq!(plan_claim(&selected, &world(Some("n1"))), ClaimPlan::Wait);
    selected.metadata.annotations = Some([(SELECTED_NODE.to_string(), "n2".to_string())].into());
    assert_eq!(plan_claim(&selected, &world(Some("n2"))), bind("on-n2"));
}

#[test]
fn volumes_whose_claims_are_gone_are_reclaimed() {
    let bound = json!({"spec": {"claimRef": {"namespace": "ns", "name": "c", "uid": "uid-c"}},
        "status": {"phase": "Bound"}});
    let retain = pv("r", bound.clone());
    let delete = {
        let mut v = bound.clone();
        merge(
            &mut v,
            json!({"spec": {"persistentVolumeReclaimPolicy": "Delete"}}),
        );
        pv("d", v)
    };
    let claim = pvc("c", json!({"spec": {"volumeName": "r"}}));
    let recreated = pvc("c", json!({"metadata": {"uid": "new"}}));
    let cases: Vec<(
        &str,
        &PersistentVolume,
        Option<&PersistentVolumeClaim>,
        VolumePlan,
    )> = vec![
        ("claim there", &retain, Some(&claim), VolumePlan::Nothing),
        (
            "retain: released",
            &retain,
            None,
            VolumePlan::Phase(VolumePhase::Released),
        ),
        (
            "retain: a new claim of the same name is another claim",
            &retain,
            Some(&recreated),
            VolumePlan::Phase(VolumePhase::Released),
        ),
        ("delete: deleted", &delete, None, VolumePlan::Delete),
    ];
    for (name, v, c, want) in cases {
        assert_eq!(plan_volume(v, c), want, "{name}");
    }
    let released = pv(
        "r",
        json!({"spec": {"claimRef": {"namespace": "ns", "name": "c", "uid": "uid-c"}},
        "status": {"phase": "Released"}}),
    );
    assert_eq!(plan_volume(&released, None), VolumePlan::Nothing);
    assert_eq!(
        plan_volume(&pv("free", json!({"status": {"phase": "Pending"}})), None),
        VolumePlan::Phase(VolumePhase::Available)
    );
    let prebound = pv(
        "p",
        json!({"spec": {"claimRef": {"namespace": "ns", "name": "later"}}}),
    );
    assert_eq!(plan_volume(&prebound, None), VolumePlan::Nothing);
}
