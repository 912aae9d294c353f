//! Checks made before a connection is upgraded, with Kubernetes' messages: the pod
//! exists, is on a node and has not completed; the container is one of its own and runs.

use k8s_openapi::api::core::v1::Pod;

use crate::error::Error;
use crate::handler::Api;

/// What the session is for, as the messages name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    Exec,
    Attach,
    PortForward,
}

/// The pod `ns/name` from the watch cache.
async fn pod(api: &Api, ns: &str, name: &str) -> Result<Pod, Error> {
    api.cache.wait_fresh(&api.store).await?;
    let v = api
        .cache
        .get(&format!("/registry/core/pods/{ns}/{name}"))
        .ok_or_else(|| Error::NotFound {
            resource: "pods".into(),
            name: name.into(),
        })?
        .value()?;
    serde_json::from_value(v).map_err(|e| Error::Internal(format!("pod {ns}/{name}: {e}")))
}

/// The container the session is for (`container`, or the pod's only one), after checking
/// the pod can serve it.
pub async fn resolve(
    api: &Api,
    ns: &str,
    name: &str,
    container: &str,
    purpose: Purpose,
) -> Result<String, Error> {
    let p = pod(api, ns, name).await?;
    check(&p, name, container, purpose)
}

fn check(p: &Pod, name: &str, container: &str, purpose: Purpose) -> Result<String, Error> {
    let spec = p.spec.clone().unwrap_or_default();
    if spec.node_name.as_deref().unwrap_or_default().is_empty() {
        return Err(Error::BadRequest(format!(
            "pod {name} does not have a host assigned"
        )));
    }
    let phase = p
        .status
        .as_ref()
        .and_then(|s| s.phase.clone())
        .unwrap_or_default();
    if phase == "Succeeded" || phase == "Failed" {
        return Err(Error::BadRequest(match purpose {
            Purpose::Exec => {
                format!("cannot exec into a container in a completed pod; current phase is {phase}")
            }
            Purpose::Attach => {
                format!("cannot attach to a container in a completed pod; current phase is {phase}")
            }
            Purpose::PortForward => {
                format!("cannot forward ports of a completed pod; current phase is {phase}")
            }
        }));
    }
    if purpose == Purpose::PortForward {
        return Ok(String::new());
    }
    let container = container_name(&spec, name, container)?;
    let status = p.status.as_ref().and_then(|s| {
        s.container_statuses
            .iter()
            .flatten()
            .chain(s.init_container_statuses.iter().flatten())
            .chain(s.ephemeral_container_statuses.iter().flatten())
            .find(|c| c.name == container)
    });
    let running = status
        .and_then(|c| c.state.as_ref())
        .is_some_and(|s| s.running.is_some());
    if !running {
        return Err(Error::BadRequest(format!(
            "container {container} is not running in pod {name}"
        )));
    }
    Ok(container)
}

/// `container` if the pod has it, or the pod's only container when it is empty.
fn container_name(
    spec: &k8s_openapi::api::core::v1::PodSpec,
    name: &str,
    container: &str,
) -> Result<String, Error> {
    let names: Vec<&str> = spec.containers.iter().map(|c| c.name.as_str()).collect();
    let others: Vec<&str> = spec
        .init_containers
        .iter()
        .flatten()
        .map(|c| c.name.as_str())
        .chain(
            spec.ephemeral_containers
                .iter()
                .flatten()
                .map(|c| c.name.as_str()),
        )
        .collect();
    match (container, names.as_slice()) {
        ("", [only]) => Ok(only.to_string()),
        ("", _) => Err(Error::BadRequest(format!(
            "a container name must be specified for pod {name}, choose one of: [{}]",
            names.join(" ")
        ))),
        (c, _) if names.contains(&c) || others.contains(&c) => Ok(c.to_string()),
        (c, _) => Err(Error::BadRequest(format!(
            "container {c} is not valid for pod {name}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn pods_are_checked_with_kubernetes_messages() {
        let running = json!({"running": {}});
        let two = pod(json!({
            "spec": {"nodeName": "n1", "containers": [{"name": "a"}, {"name": "b"}]},
            "status": {"phase": "Running", "containerStatuses": [
                {"name": "a", "ready": true, "restartCount": 0, "image": "", "imageID": "", "state": running},
                {"name": "b", "ready": false, "restartCount": 0, "image": "", "imageID": "", "state": {"waiting": {}}}
            ]}
        }));
        assert_eq!(check(&two, "p", "a", Purpose::Exec).unwrap(), "a");
        let cases = [
            (
                "",
                Purpose::Exec,
                "a container name must be specified for pod p, choose one of: [a b]",
            ),
            ("c", Purpose::Attach, "container c is not valid for pod p"),
            ("b", Purpose::Exec, "container b is not running in pod p"),
        ];
        for (c, purpose, want) in cases {
            let e = check(&two, "p", c, purpose).unwrap_err().to_string();
            assert_eq!(e, want);
        }
        let done = pod(json!({
            "spec": {"nodeName": "n1", "containers": [{"name": "a"}]},
            "status": {"phase": "Succeeded"}
        }));
        let e = check(&done, "p", "", Purpose::Exec)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "cannot exec into a container in a completed pod; current phase is Succeeded"
        );
        let pending = pod(json!({"spec": {"containers": [{"name": "a"}]}}));
        let e = check(&pending, "p", "", Purpose::PortForward)
            .unwrap_err()
            .to_string();
        assert_eq!(e, "pod p does not have a host assigned");
    }
}
