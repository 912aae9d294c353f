//! The agent's streaming calls: interactive exec and attach ([`session`], [`attach`]) and
//! port forwarding ([`port_forward`]), each one gRPC stream per session or connection.
//! The caller was verified by [`crate::server`] before any of this runs.

pub(crate) mod attach;
pub(crate) mod port_forward;
pub(crate) mod session;

use tonic::Status;

use std::path::PathBuf;

use crate::runtime::{ContainerStatus, Error, Runtime, State};

/// A runtime error as the apiserver passes it on.
pub(crate) fn status(e: Error) -> Status {
    match e {
        Error::NotFound(m) => Status::not_found(format!("{m} not found")),
        Error::Unsupported(m) | Error::Config(m) => Status::failed_precondition(m),
        Error::Io(m) => Status::internal(m),
    }
}

/// The container `name` of pod `ns/pod` (the only one when `name` is empty): its
/// current container, or the one before with `previous`.
pub(crate) async fn container(
    rt: &dyn Runtime,
    ns: &str,
    pod: &str,
    name: &str,
    previous: bool,
) -> Result<(ContainerStatus, PathBuf), Status> {
    let sb = rt
        .list_pod_sandboxes()
        .await
        .map_err(|e| Status::internal(e.to_string()))?
        .into_iter()
        .find(|s| s.config.namespace == ns && s.config.name == pod)
        .ok_or_else(|| Status::not_found(format!("pod {ns}/{pod} is not running on this node")))?;
    let mut cs = rt
        .list_containers(&sb.id)
        .await
        .map_err(|e| Status::internal(e.to_string()))?;
    let mut names: Vec<String> = cs.iter().map(|c| c.name.clone()).collect();
    names.sort();
    names.dedup();
    let name = match (name, names.as_slice()) {
        ("", [only]) => only.clone(),
        ("", _) => {
            return Err(Status::invalid_argument(format!(
                "a container name must be specified for pod {pod}, choose one of: [{}]",
                names.join(" ")
            )))
        }
        (n, _) => n.to_string(),
    };
    cs.retain(|c| c.name == name);
    cs.sort_by_key(|c| c.attempt);
    let cur = cs
        .last()
        .cloned()
        .ok_or_else(|| Status::not_found(format!("container {name:?} is not in pod {pod}")))?;
    if !previous {
        let path = cur.log_path.clone();
        return Ok((cur, path));
    }
    if cur.attempt == 0 {
        return Err(Status::invalid_argument(format!(
            "previous terminated container {name:?} in pod {pod:?} not found"
        )));
    }
    let path = sb
        .config
        .log_dir
        .join(&name)
        .join(format!("{}.log", cur.attempt - 1));
    let mut prev = cur;
    prev.state = State::Exited;
    Ok((prev, path))
}
