//! The Node authorizer's rule for `storage.k8s.io` VolumeAttachments: a node may get the
//! attachments whose `spec.nodeName` is itself, and no other (as Kubernetes' node
//! authorizer allows), so that its kubelet learns where its volumes are without learning
//! about other nodes'. Decided from an index of attachment → node the watch cache keeps
//! current ([`AttachmentIndex::run`]); it has no opinion on anything else.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;

use super::node::node_name;
use crate::auth::{Attributes, Authorizer, Decision};
use crate::cache::{Cached, EventKind, Msg, WatchCache};

const ATTACHMENTS: &str = "/registry/storage.k8s.io/volumeattachments/";

/// Attachment name → (revision seen, the node it attaches to).
#[derive(Default)]
pub struct AttachmentIndex(RwLock<HashMap<String, (i64, String)>>);

fn node_of(c: &Cached) -> String {
    serde_json::from_slice::<serde_json::Value>(&c.json)
        .ok()
        .and_then(|v| v["spec"]["nodeName"].as_str().map(str::to_string))
        .unwrap_or_default()
}

impl AttachmentIndex {
    /// The node attachment `name` is for, if it exists.
    pub fn node_of(&self, name: &str) -> Option<String> {
        self.0.read().get(name).map(|(_, n)| n.clone())
    }

    /// Takes in an attachment as it is now, unless a later revision of it is known.
    pub(crate) fn observe(&self, c: &Cached) {
        let mut g = self.0.write();
        if g.get(&c.name).is_some_and(|(rv, _)| *rv > c.rv) {
            return;
        }
        g.insert(c.name.clone(), (c.rv, node_of(c)));
    }

    fn forget(&self, name: &str, at: i64) {
        let mut g = self.0.write();
        if g.get(name).is_some_and(|(rv, _)| *rv <= at) {
            g.remove(name);
        }
    }

    pub async fn run(self: Arc<Self>, cache: Arc<WatchCache>) {
        loop {
            let (mut sub, items) = cache.snapshot(ATTACHMENTS);
            {
                let mut fresh = HashMap::new();
                for c in &items {
                    fresh.insert(c.name.clone(), (c.rv, node_of(c)));
                }
                *self.0.write() = fresh;
            }
            loop {
                match sub.rx.recv().await {
                    Ok(Msg::Event(e)) if e.obj.key.starts_with(ATTACHMENTS) => match e.kind {
                        EventKind::Deleted => self.forget(&e.obj.name, e.rv),
                        _ => self.observe(&e.obj),
                    },
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
        }
    }
}

/// Lets a node get its own VolumeAttachments; no opinion otherwise.
pub struct NodeAttachmentAuthorizer {
    pub index: Arc<AttachmentIndex>,
}

impl Authorizer for NodeAttachmentAuthorizer {
    fn authorize(&self, a: &Attributes<'_>) -> Decision {
        let Some(node) = node_name(a.user) else {
            return Decision::NoOpinion;
        };
        let own = (a.group, a.resource, a.subresource, a.verb)
            == ("storage.k8s.io", "volumeattachments", "", "get")
            && !a.name.is_empty()
            && self.index.node_of(a.name).as_deref() == Some(node);
        match own {
            true => Decision::Allow,
            false => Decision::NoOpinion,
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use serde_json::json;

    use super::*;
    use crate::auth::UserInfo;

    fn attachment(name: &str, node: &str, rv: i64) -> Cached {
        Cached {
            key: format!("{ATTACHMENTS}{name}"),
            rv,
            json: Bytes::from(serde_json::to_vec(&json!({"spec": {"nodeName": node}})).unwrap()),
            namespace: String::new(),
            name: name.into(),
            labels: Default::default(),
            fields: vec![],
        }
    }

    #[test]
    fn a_node_gets_only_its_own_attachments() {
        let index = Arc::new(AttachmentIndex::default());
        index.observe(&attachment("csi-a", "w1", 5));
        index.observe(&attachment("csi-b", "w2", 5));
        // An older revision replayed after the list changes nothing.
        index.observe(&attachment("csi-a", "w2", 3));
        let authz = NodeAttachmentAuthorizer { index };
        let node = |n: &str| UserInfo {
            name: format!("system:node:{n}"),
            uid: String::new(),
            groups: vec!["system:nodes".into()],
        };
        let impostor = UserInfo {
            name: "system:node:w1".into(),
            uid: String::new(),
            groups: vec!["system:authenticated".into()],
        };
        let (w1, w2) = (node("w1"), node("w2"));
        let cases = [
            (&w1, "get", "csi-a", Decision::Allow),
            (&w1, "get", "csi-b", Decision::NoOpinion),
            (&w2, "get", "csi-b", Decision::Allow),
            (&w1, "get", "csi-missing", Decision::NoOpinion),
            (&w1, "list", "", Decision::NoOpinion),
            (&w1, "delete", "csi-a", Decision::NoOpinion),
            (&w1, "update", "csi-a", Decision::NoOpinion),
            (&impostor, "get", "csi-a", Decision::NoOpinion),
        ];
        for (u, verb, name, want) in cases {
            let a = Attributes {
                user: u,
                verb,
                group: "storage.k8s.io",
                resource: "volumeattachments",
                subresource: "",
                namespace: "",
                name,
            };
            assert_eq!(authz.authorize(&a), want, "{} {verb} {name}", u.name);
        }
    }
}
