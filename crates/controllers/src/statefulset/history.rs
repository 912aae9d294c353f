//! Revision history of a StatefulSet, as Kubernetes keeps it: one ControllerRevision
//! `<set>-<hash>` per pod template the set has had, owned by the set, holding the
//! template as a patch that replaces it, numbered in the order the templates were last
//! used. The update revision is the one of the set's template (an earlier revision of the
//! same template is renumbered rather than duplicated); the current revision is the one
//! `status.currentRevision` names. Revisions no pod uses beyond `revisionHistoryLimit`
//! are pruned, oldest first.

use std::sync::Arc;

use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use serde_json::{json, Value};

use super::identity::{set_name, set_owner};
use crate::deployment::history::template_hash;

/// The ControllerRevision label holding the hash its name ends with.
pub const HASH_LABEL: &str = "controller.kubernetes.io/hash";

/// What a revision stores: the pod template, as a strategic merge patch replacing the
/// set's (the shape Kubernetes stores and its tools read).
pub fn data(template: &PodTemplateSpec) -> Value {
    let mut t = serde_json::to_value(template).unwrap_or_else(|_| json!({}));
    if let Some(m) = t.as_object_mut() {
        m.insert("$patch".into(), json!("replace"));
    }
    json!({ "spec": { "template": t } })
}

/// The pod template a revision holds.
pub fn template_of(r: &ControllerRevision) -> Option<PodTemplateSpec> {
    let mut t = r.data.0.get("spec")?.get("template")?.clone();
    t.as_object_mut()?.remove("$patch");
    serde_json::from_value(t).ok()
}

/// A revision by its name, with its template.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Rev {
    pub name: String,
    pub template: PodTemplateSpec,
}

/// What the set's revisions are, and what to change for them to be so.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Revisions {
    /// The revision of the set's template.
    pub update: Option<Rev>,
    /// The revision `status.currentRevision` names (the update revision when none does).
    pub current: Option<Rev>,
    /// A revision of the set's template to create.
    pub create: Option<ControllerRevision>,
    /// An earlier revision of the set's template, to give the next number.
    pub renumber: Option<(String, i64)>,
    /// The name the template hashes to is taken by another template: the collision count
    /// to write, after which the hash differs.
    pub collision: Option<i32>,
}

/// A revision's number (0 when unset).
pub fn number(r: &ControllerRevision) -> i64 {
    r.revision.unwrap_or(0)
}

fn name_of(r: &ControllerRevision) -> &str {
    r.metadata.name.as_deref().unwrap_or_default()
}

/// `owned` by revision number, then name.
pub(crate) fn sorted(owned: &[Arc<ControllerRevision>]) -> Vec<Arc<ControllerRevision>> {
    let mut v = owned.to_vec();
    v.sort_by(|a, b| (number(a), name_of(a)).cmp(&(number(b), name_of(b))));
    v
}

/// Finds or makes the update revision of `set` among the revisions it `owned`, and its
/// current revision.
pub(crate) fn resolve(set: &StatefulSet, owned: &[Arc<ControllerRevision>]) -> Revisions {
    let all = sorted(owned);
    let latest = all.last().map_or(0, |r| number(r));
    let template = &set.spec.template;
    let same = all
        .iter()
        .rfind(|r| template_of(r).as_ref() == Some(template));
    let mut out = Revisions::default();
    let update_name = match same {
        Some(r) => {
            if number(r) < latest {
                out.renumber = Some((name_of(r).to_string(), latest + 1));
            }
            name_of(r).to_string()
        }
        None => {
            let collisions = set
                .status
                .as_ref()
                .and_then(|s| s.collision_count)
                .unwrap_or(0);
            let hash = template_hash(template, collisions);
            let name = format!("{}-{hash}", set_name(set));
            if all.iter().any(|r| name_of(r) == name) {
                out.collision = Some(collisions + 1);
                return out;
            }
            out.create = Some(new_revision(set, &name, &hash, latest + 1));
            name
        }
    };
    let update = Rev {
        name: update_name,
        template: template.clone(),
    };
    let current_name = set.status.as_ref().and_then(|s| s.current_revision.clone());
    out.current = all
        .iter()
        .filter(|r| Some(name_of(r)) == current_name.as_deref())
        .find_map(|r| {
            Some(Rev {
                name: name_of(r).to_string(),
                template: template_of(r)?,
            })
        })
        .or_else(|| Some(update.clone()));
    out.update = Some(update);
    out
}

/// A revision of the set's template: the set's labels and annotations, owned by it.
fn new_revision(set: &StatefulSet, name: &str, hash: &str, number: i64) -> ControllerRevision {
    let mut labels = set
        .spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    labels.insert(HASH_LABEL.into(), hash.into());
    ControllerRevision {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: set.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: set.metadata.annotations.clone(),
            owner_references: Some(vec![set_owner(set)]),
            ..Default::default()
        },
        data: RawExtension(data(&set.spec.template)),
        revision: Some(number),
    }
}

/// The revisions to delete: those neither `live` (current, update, or a pod's) beyond
/// the newest `revisionHistoryLimit` (10 by default), oldest first.
pub(crate) fn prunable(
    set: &StatefulSet,
    owned: &[Arc<ControllerRevision>],
    live: &[&str],
) -> Vec<String> {
    let limit = set.spec.revision_history_limit.unwrap_or(10).max(0) as usize;
    let history: Vec<String> = sorted(owned)
        .iter()
        .map(|r| name_of(r).to_string())
        .filter(|n| !live.contains(&n.as_str()))
        .collect();
    let excess = history.len().saturating_sub(limit);
    history.into_iter().take(excess).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(image: &str, status: Value) -> StatefulSet {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "ns", "uid": "u",
                "annotations": {"kubernetes.io/change-cause": "because"}},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, "revisionHistoryLimit": 1,
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "c", "image": image}]}}},
            "status": status
        }))
        .unwrap()
    }

    fn revision_of(s: &StatefulSet, number: i64) -> Arc<ControllerRevision> {
        let hash = template_hash(&s.spec.template, 0);
        Arc::new(new_revision(s, &format!("web-{hash}"), &hash, number))
    }

    #[test]
    fn a_new_template_gets_a_new_revision_numbered_after_the_latest() {
        let v1 = set("web:1", json!({}));
        let r1 = revision_of(&v1, 1);
        let v2 = set("web:2", json!({"currentRevision": r1.metadata.name}));
        let got = resolve(&v2, std::slice::from_ref(&r1));
        let created = got.create.expect("a revision of web:2");
        assert_eq!(created.revision, Some(2));
        assert_eq!(template_of(&created).as_ref(), Some(&v2.spec.template));
        assert_eq!(
            created.metadata.labels.unwrap()[HASH_LABEL],
            template_hash(&v2.spec.template, 0)
        );
        assert_eq!(
            created.metadata.annotations.unwrap()["kubernetes.io/change-cause"],
            "because"
        );
        assert_eq!(got.current.unwrap().name, r1.metadata.name.clone().unwrap());
        assert_eq!(got.update.unwrap().name, created.metadata.name.unwrap());
    }

    #[test]
    fn going_back_to_an_earlier_template_renumbers_its_revision() {
        let (v1, v2) = (set("web:1", json!({})), set("web:2", json!({})));
        let (r1, r2) = (revision_of(&v1, 1), revision_of(&v2, 2));
        let got = resolve(&v1, &[r1.clone(), r2.clone()]);
        assert_eq!(got.create, None);
        assert_eq!(got.renumber, Some((r1.metadata.name.clone().unwrap(), 3)));
        assert_eq!(got.update.unwrap().name, r1.metadata.name.clone().unwrap());
        let got = resolve(&v2, &[r1, r2.clone()]);
        assert_eq!(
            (got.create, got.renumber),
            (None, None),
            "already the latest"
        );
        assert_eq!(
            got.current.unwrap().name,
            r2.metadata.name.clone().unwrap(),
            "no current revision yet: the update revision"
        );
    }

    #[test]
    fn a_name_taken_by_another_template_bumps_the_collision_count() {
        let v1 = set("web:1", json!({}));
        let v2 = set("web:2", json!({}));
        let mut impostor = (*revision_of(&v2, 1)).clone();
        impostor.metadata.name = Some(format!("web-{}", template_hash(&v1.spec.template, 0)));
        let got = resolve(&v1, &[Arc::new(impostor)]);
        assert_eq!(got.collision, Some(1));
        assert_eq!((got.create, got.update), (None, None));
    }

    #[test]
    fn history_beyond_the_limit_goes_oldest_first_but_never_a_live_revision() {
        let sets: Vec<StatefulSet> = (1..=4)
            .map(|i| set(&format!("web:{i}"), json!({})))
            .collect();
        let revs: Vec<Arc<ControllerRevision>> = sets
            .iter()
            .enumerate()
            .map(|(i, s)| revision_of(s, i as i64 + 1))
            .collect();
        let names: Vec<String> = revs
            .iter()
            .map(|r| r.metadata.name.clone().unwrap())
            .collect();
        // Live: 4 (update) and 1 (a pod still runs it); limit 1 keeps 3, the newest other.
        let live = [names[3].as_str(), names[0].as_str()];
        assert_eq!(prunable(&sets[3], &revs, &live), vec![names[1].clone()]);
    }
}
