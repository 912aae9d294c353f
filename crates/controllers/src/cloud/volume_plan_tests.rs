use serde_json::json;

use super::*;

const P: &str = "local";

fn class(provisioner: &str, mode: &str, reclaim: &str) -> StorageClass {
    serde_json::from_value(
        json!({"metadata": {"name": "fast"}, "provisioner": provisioner,
        "volumeBindingMode": mode, "reclaimPolicy": reclaim, "parameters": {"type": "block"}}),
    )
    .unwrap()
}

fn claim(selected: Option<&str>, volume_name: &str) -> PersistentVolumeClaim {
    let annotations = selected.map(|n| json!({"volume.kubernetes.io/selected-node": n}));
    serde_json::from_value(json!({
        "metadata": {"name": "data", "namespace": "ns", "uid": "u1", "annotations": annotations},
        "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "fast",
            "volumeName": volume_name,
            "resources": {"requests": {"storage": "100Mi"}, "limits": {"storage": "1Gi"}}}}))
    .unwrap()
}

fn node(n: &str) -> cp::Topology {
    topology(n, &BTreeMap::new())
}

fn created(id: &str, bytes: i64, on: &str) -> cp::Volume {
    cp::Volume {
        volume_id: id.into(),
        capacity_bytes: bytes,
        volume_context: [("type".to_string(), "block".to_string())].into(),
        accessible_topology: vec![node(on)],
    }
}

#[test]
fn claims_of_the_providers_classes_are_provisioned_where_their_pod_goes() {
    let wffc = class(P, "WaitForFirstConsumer", "Delete");
    let immediate = class(P, "Immediate", "Delete");
    let other = class("rkube.io/local-path", "Immediate", "Delete");
    let existing = volume_for(
        &claim(None, ""),
        &immediate,
        P,
        &created("w1/pvc-u1", 1, "w1"),
    );
    let ready = [node("w1"), node("w2")];
    // (case, claim, class, volumes, selected node, ready nodes, preferred node or none)
    type Case<'a> = (
        &'a str,
        PersistentVolumeClaim,
        &'a StorageClass,
        Vec<&'a PersistentVolume>,
        Option<&'a str>,
        &'a [cp::Topology],
        Option<&'a str>,
    );
    let cases: Vec<Case> = vec![
        (
            "WFFC before its pod",
            claim(None, ""),
            &wffc,
            vec![],
            None,
            &ready,
            None,
        ),
        (
            "WFFC with its node",
            claim(Some("w2"), ""),
            &wffc,
            vec![],
            Some("w2"),
            &ready,
            Some("w2"),
        ),
        (
            "Immediate: the first ready node",
            claim(None, ""),
            &immediate,
            vec![],
            None,
            &ready,
            Some("w1"),
        ),
        (
            "Immediate with no ready node",
            claim(None, ""),
            &immediate,
            vec![],
            None,
            &[],
            None,
        ),
        (
            "another provisioner's class",
            claim(None, ""),
            &other,
            vec![],
            None,
            &ready,
            None,
        ),
        (
            "already bound",
            claim(None, "pv-x"),
            &immediate,
            vec![],
            None,
            &ready,
            None,
        ),
        (
            "its volume exists (crash after create)",
            claim(None, ""),
            &immediate,
            vec![&existing],
            None,
            &ready,
            None,
        ),
    ];
    for (case, c, class, volumes, selected, ready, want) in cases {
        let got = provision(&c, class, P, &volumes, selected.map(node), ready);
        let preferred = got.as_ref().map(|r| {
            r.accessibility_requirements.as_ref().unwrap().preferred[0].segments[HOSTNAME].clone()
        });
        assert_eq!(preferred.as_deref(), want, "{case}");
        if let Some(r) = got {
            assert_eq!(r.name, "pvc-u1", "{case}: named after the claim");
            let range = r.capacity_range.unwrap();
            assert_eq!(
                (range.required_bytes, range.limit_bytes),
                (100 << 20, 1 << 30),
                "{case}"
            );
            assert_eq!(r.parameters["type"], "block", "{case}");
            assert_eq!(r.volume_mode, "Filesystem", "{case}");
        }
    }
}

#[test]
fn a_provisioned_volume_is_prebound_csi_pinned_and_finalized_when_deleted() {
    let v = created("w2/pvc-u1", 100 << 20, "w2");
    let pv = volume_for(
        &claim(Some("w2"), ""),
        &class(P, "WaitForFirstConsumer", "Delete"),
        P,
        &v,
    );
    assert_eq!(pv.metadata.name.as_deref(), Some("pvc-u1"));
    assert_eq!(pv.metadata.finalizers, Some(vec![FINALIZER.to_string()]));
    assert_eq!(pv.metadata.annotations.as_ref().unwrap()[PROVISIONED_BY], P);
    let spec = pv.spec.as_ref().unwrap();
    assert_eq!(spec.capacity.as_ref().unwrap()["storage"].0, "100Mi");
    assert_eq!(
        spec.persistent_volume_reclaim_policy.as_deref(),
        Some("Delete")
    );
    let csi = spec.csi.as_ref().unwrap();
    assert_eq!(
        (csi.driver.as_str(), csi.volume_handle.as_str()),
        (P, "w2/pvc-u1")
    );
    let r = spec.claim_ref.as_ref().unwrap();
    assert_eq!(
        (r.namespace.as_deref(), r.name.as_deref(), r.uid.as_deref()),
        (Some("ns"), Some("data"), Some("u1"))
    );
    let term = &spec
        .node_affinity
        .as_ref()
        .unwrap()
        .required
        .as_ref()
        .unwrap()
        .node_selector_terms[0];
    let e = &term.match_expressions.as_ref().unwrap()[0];
    assert_eq!(
        (e.key.as_str(), e.values.clone()),
        (HOSTNAME, Some(vec!["w2".to_string()]))
    );
    // The binder's own test of reachability agrees: w2 only.
    let labels = |n: &str| BTreeMap::from([(HOSTNAME.to_string(), n.to_string())]);
    assert!(binder::reachable_from(&pv, "w2", &labels("w2")));
    assert!(!binder::reachable_from(&pv, "w1", &labels("w1")));
    // Retain: no finalizer, the provider's volume stays.
    let kept = volume_for(&claim(None, ""), &class(P, "Immediate", "Retain"), P, &v);
    assert_eq!(kept.metadata.finalizers, None);
    assert_eq!(quantity(3 << 30).0, "3Gi");
    assert_eq!(quantity(1000).0, "1000");
}

fn deleting(mut pv: PersistentVolume) -> PersistentVolume {
    pv.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        client::events::now(),
    ));
    pv
}

#[test]
fn a_deleted_volume_waits_for_its_detach_then_its_provider_volume_goes() {
    let c = claim(None, "");
    let v = created("w1/pvc-u1", 1 << 20, "w1");
    let pv = volume_for(&c, &class(P, "Immediate", "Delete"), P, &v);
    let retained = volume_for(&c, &class(P, "Immediate", "Retain"), P, &v);
    let none = BTreeSet::new();
    let attached = BTreeSet::from(["pvc-u1"]);
    let cases = [
        ("not deleted", pv.clone(), &none, Reclaim::Nothing),
        (
            "deleted, attached",
            deleting(pv.clone()),
            &attached,
            Reclaim::WaitForDetach,
        ),
        (
            "deleted, detached",
            deleting(pv.clone()),
            &none,
            Reclaim::DeleteVolume {
                id: "w1/pvc-u1".into(),
            },
        ),
        (
            "no finalizer (Retain)",
            deleting(retained),
            &none,
            Reclaim::Nothing,
        ),
    ];
    for (case, pv, attached, want) in cases {
        assert_eq!(reclaim(&pv, P, attached), want, "{case}");
    }
    assert_eq!(
        reclaim(&deleting(pv), "other", &none),
        Reclaim::Nothing,
        "another provider's"
    );
}

fn pod(name: &str, node: &str, claim: &str) -> Pod {
    serde_json::from_value(json!({"metadata": {"name": name, "namespace": "ns"},
        "spec": {"nodeName": node, "containers": [{"name": "c"}],
            "volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": claim}}]}}))
    .unwrap()
}

fn placed(node: &str) -> Placement {
    Placement {
        volume: "pvc-u1".into(),
        handle: "w1/pvc-u1".into(),
        node: node.into(),
    }
}

fn attached_va(node: &str, attached: bool) -> VolumeAttachment {
    let mut va = attachment(&placed(node), P);
    va.status = Some(k8s_openapi::api::storage::v1::VolumeAttachmentStatus {
        attached,
        ..Default::default()
    });
    va
}

#[test]
fn attachments_follow_the_pods_that_use_the_volume() {
    let c = claim(None, "");
    let pv = volume_for(
        &c,
        &class(P, "Immediate", "Delete"),
        P,
        &created("w1/pvc-u1", 1, "w1"),
    );
    let volumes = [&pv];
    let (on_w1, pending, elsewhere) = (
        pod("a", "w1", "data"),
        pod("b", "", "data"),
        pod("c", "w1", "other"),
    );
    let w = wanted(&[&on_w1, &pending, &elsewhere], &volumes, P);
    assert_eq!(
        w,
        BTreeSet::from([placed("w1")]),
        "bound pods of the claim only"
    );
    assert!(wanted(&[&on_w1], &volumes, "another").is_empty());
    let name = |n: &str| client::storage::attachment_name("w1/pvc-u1", P, n);
    let (new_va, done, stale) = (
        attached_va("w1", false),
        attached_va("w1", true),
        attached_va("w2", true),
    );
    // (case, existing, create on, attach, detach)
    type Case<'a> = (
        &'a str,
        Vec<&'a VolumeAttachment>,
        Vec<&'a str>,
        Vec<String>,
        Vec<String>,
    );
    let cases: Vec<Case> = vec![
        ("none yet: create", vec![], vec!["w1"], vec![], vec![]),
        (
            "created: attach",
            vec![&new_va],
            vec![],
            vec![name("w1")],
            vec![],
        ),
        ("attached: nothing", vec![&done], vec![], vec![], vec![]),
        (
            "the pod moved: detach the old",
            vec![&done, &stale],
            vec![],
            vec![],
            vec![name("w2")],
        ),
    ];
    for (case, existing, create, attach, detach) in cases {
        let plan = attachments(&w, &existing, &volumes, P);
        let made: Vec<&str> = plan
            .create
            .iter()
            .map(|v| v.spec.node_name.as_str())
            .collect();
        assert_eq!(made, create, "{case}");
        if let Some(v) = plan.create.first() {
            assert_eq!(
                v.metadata.name.as_deref(),
                Some(name("w1").as_str()),
                "{case}"
            );
            assert_eq!(v.spec.attacher, P, "{case}");
        }
        let names =
            |v: &[(String, Placement)]| v.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
        assert_eq!(names(&plan.attach), attach, "{case}");
        assert_eq!(names(&plan.detach), detach, "{case}");
    }
    // No pod left: detach; another provider's attachment is not touched.
    let mut foreign = attached_va("w1", true);
    foreign.spec.attacher = "other".into();
    let plan = attachments(&BTreeSet::new(), &[&done, &foreign], &volumes, P);
    assert_eq!(plan.detach.len(), 1);
    assert_eq!(plan.detach[0].1, placed("w1"));
    // The volume is gone: detached without a handle.
    let plan = attachments(&BTreeSet::new(), &[&done], &[], P);
    assert_eq!(plan.detach[0].1.handle, "");
}
