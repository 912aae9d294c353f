//! Table tests of the merge module, checked against Kubernetes' documented behaviour.

mod apply;
mod fields;
mod managed;
mod perf;
mod strategic;

use crate::schema::{builtin, Node};

/// The schema of a built-in kind.
fn kind(api_version: &str, kind: &str) -> Node<'static> {
    builtin()
        .root(api_version, kind)
        .unwrap_or_else(|| panic!("no schema for {api_version} {kind}"))
}

fn pod() -> Node<'static> {
    kind("v1", "Pod")
}

fn deployment() -> Node<'static> {
    kind("apps/v1", "Deployment")
}
