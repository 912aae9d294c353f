//! Authorization by RBAC (rbac.authorization.k8s.io/v1) and by the Node authorizer, both
//! deciding from in-memory indexes the watch cache keeps current; the bootstrap roles and
//! bindings; escalation prevention; and NodeRestriction.

pub mod authorizer;
pub mod controller_policy;
pub mod escalation;
pub mod graph;
pub mod impersonation;
pub mod index;
pub mod node;
pub mod node_attachments;
pub mod node_restriction;
pub mod policy;
pub mod review;
pub mod rules;

#[cfg(test)]
mod tests;

pub use authorizer::RbacAuthorizer;
pub use node::NodeAuthorizer;

use std::sync::Arc;

use crate::admission::ValidatingAdmission;
use crate::auth::{AlwaysAllow, Authorizer, PrivilegedGroup};
use crate::certificates::BootstrapperScope;

/// The authorization chain of `--authorization-mode` (`Node,RBAC` by default; also
/// `AlwaysAllow`), the indexes it decides from, and the admission plugins that go with it.
#[derive(Default)]
pub struct Authorization {
    pub chain: Vec<Box<dyn Authorizer>>,
    pub admission: Vec<Box<dyn ValidatingAdmission>>,
    /// Kept current by [`index::SharedIndex::run`] when RBAC is on.
    pub index: Option<Arc<index::SharedIndex>>,
    /// Kept current by [`graph::NodeGraph::run`] when the Node authorizer is on.
    pub graph: Option<Arc<graph::NodeGraph>>,
    /// Kept current by [`node_attachments::AttachmentIndex::run`] with the Node authorizer.
    pub attachments: Option<Arc<node_attachments::AttachmentIndex>>,
}

impl Authorization {
    pub fn new(modes: &[String]) -> Result<Self, String> {
        let mut a = Authorization::default();
        a.chain.push(Box::new(PrivilegedGroup));
        for m in modes {
            match m.as_str() {
                "Node" => {
                    let g = Arc::new(graph::NodeGraph::default());
                    a.chain.push(Box::new(NodeAuthorizer { graph: g.clone() }));
                    let ix = Arc::new(node_attachments::AttachmentIndex::default());
                    a.chain
                        .push(Box::new(node_attachments::NodeAttachmentAuthorizer {
                            index: ix.clone(),
                        }));
                    a.attachments = Some(ix);
                    a.admission
                        .push(Box::new(node_restriction::NodeRestriction));
                    a.graph = Some(g);
                }
                "RBAC" => {
                    let ix = Arc::new(index::SharedIndex::default());
                    a.chain.push(Box::new(RbacAuthorizer { index: ix.clone() }));
                    a.admission
                        .push(Box::new(escalation::RbacEscalation { index: ix.clone() }));
                    a.index = Some(ix);
                }
                "AlwaysAllow" => {
                    // Even then, a bootstrap token only makes certificate requests.
                    a.chain.push(Box::new(BootstrapperScope));
                    a.chain.push(Box::new(AlwaysAllow));
                }
                other => {
                    return Err(format!(
                        "--authorization-mode: {other:?} is not one of Node, RBAC, AlwaysAllow"
                    ))
                }
            }
        }
        if modes.is_empty() {
            return Err("--authorization-mode: Required value".into());
        }
        Ok(a)
    }
}
