//! The effective security context of a container, as the kubelet computes it: the
//! container's `securityContext` overrides the pod's for runAsUser, runAsGroup,
//! runAsNonRoot and seccompProfile; capabilities, privileged, readOnlyRootFilesystem and
//! allowPrivilegeEscalation are the container's alone; supplementalGroups and fsGroup
//! the pod's (fsGroup joins the supplementary groups). And the runAsNonRoot check the
//! kubelet makes before it creates a container.

use std::path::Path;

use k8s_openapi::api::core::v1::{Container, Pod, PodSecurityContext, SeccompProfile};

use crate::runtime::SecurityConfig;

fn seccomp(p: &SeccompProfile) -> (String, Option<String>) {
    (p.type_.clone(), p.localhost_profile.clone())
}

fn pod_context(pod: &Pod) -> PodSecurityContext {
    pod.spec
        .as_ref()
        .and_then(|s| s.security_context.clone())
        .unwrap_or_default()
}

/// The pod-level part: what the sandbox runs with.
pub fn sandbox(pod: &Pod) -> SecurityConfig {
    let psc = pod_context(pod);
    let mut groups = psc.supplemental_groups.clone().unwrap_or_default();
    groups.extend(psc.fs_group);
    let spec = pod.spec.as_ref();
    let privileged = spec
        .into_iter()
        .flat_map(|s| {
            s.containers
                .iter()
                .chain(s.init_containers.iter().flatten())
        })
        .any(|c| {
            c.security_context
                .as_ref()
                .and_then(|sc| sc.privileged)
                .unwrap_or(false)
        });
    SecurityConfig {
        run_as_user: psc.run_as_user,
        run_as_group: psc.run_as_group,
        run_as_non_root: psc.run_as_non_root.unwrap_or(false),
        supplemental_groups: groups,
        fs_group: psc.fs_group,
        privileged,
        seccomp: psc.seccomp_profile.as_ref().map(seccomp),
        ..Default::default()
    }
}

/// The effective security context of container `c`; `data_dir` (the kubelet's) is
/// hidden from it unless it is privileged.
pub fn effective(pod: &Pod, c: &Container, data_dir: &Path) -> SecurityConfig {
    let base = sandbox(pod);
    let csc = c.security_context.clone().unwrap_or_default();
    let caps = csc.capabilities.unwrap_or_default();
    let privileged = csc.privileged.unwrap_or(false);
    SecurityConfig {
        run_as_user: csc.run_as_user.or(base.run_as_user),
        run_as_group: csc.run_as_group.or(base.run_as_group),
        run_as_non_root: csc.run_as_non_root.unwrap_or(base.run_as_non_root),
        privileged,
        capabilities_add: caps.add.unwrap_or_default(),
        capabilities_drop: caps.drop.unwrap_or_default(),
        // Kubernetes sets no_new_privs only when allowPrivilegeEscalation is false.
        no_new_privs: csc.allow_privilege_escalation == Some(false),
        read_only_root_filesystem: csc.read_only_root_filesystem.unwrap_or(false),
        seccomp: csc.seccomp_profile.as_ref().map(seccomp).or(base.seccomp),
        masked_host_paths: if privileged {
            vec![]
        } else {
            vec![data_dir.to_path_buf()]
        },
        ..base
    }
}

/// `name_namespace(uid)`, as the kubelet names pods in messages.
fn pod_name(pod: &Pod) -> String {
    let m = &pod.metadata;
    format!(
        "{}_{}({})",
        m.name.as_deref().unwrap_or_default(),
        m.namespace.as_deref().unwrap_or("default"),
        m.uid.as_deref().unwrap_or_default()
    )
}

/// The kubelet's runAsNonRoot check: refuses a container that would run as uid 0.
/// `image_uid`: whom the image runs as when `sc` names no user, where known.
pub fn verify_run_as_non_root(
    pod: &Pod,
    c: &Container,
    sc: &SecurityConfig,
    image_uid: Option<i64>,
) -> Result<(), String> {
    if !sc.run_as_non_root {
        return Ok(());
    }
    let who = format!("(pod: {:?}, container: {})", pod_name(pod), c.name);
    match (sc.run_as_user, image_uid) {
        (Some(0), _) => Err(format!(
            "container's runAsUser breaks non-root policy {who}"
        )),
        (None, Some(0)) => Err(format!(
            "container has runAsNonRoot and image will run as root {who}"
        )),
        _ => Ok(()),
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
    fn the_container_overrides_the_pod() {
        let p = pod(
            json!({"metadata": {"name": "p", "namespace": "ns", "uid": "u1"},
            "spec": {"securityContext": {"runAsUser": 1000, "runAsGroup": 3000,
                "runAsNonRoot": true, "supplementalGroups": [4000], "fsGroup": 2000,
                "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [
                {"name": "plain"},
                {"name": "own", "securityContext": {"runAsUser": 1001, "runAsNonRoot": false,
                    "capabilities": {"add": ["NET_ADMIN"], "drop": ["ALL"]},
                    "allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
                    "seccompProfile": {"type": "Localhost", "localhostProfile": "p.json"}}},
                {"name": "priv", "securityContext": {"privileged": true,
                    "allowPrivilegeEscalation": true}}]}}),
        );
        let cs = &p.spec.as_ref().unwrap().containers;
        let data = Path::new("/var/lib/rkube");
        let plain = effective(&p, &cs[0], data);
        assert_eq!(plain.run_as_user, Some(1000));
        assert_eq!(plain.run_as_group, Some(3000));
        assert!(plain.run_as_non_root);
        assert_eq!(plain.supplemental_groups, [4000, 2000]);
        assert_eq!(plain.fs_group, Some(2000));
        assert!(!plain.no_new_privs && !plain.privileged && !plain.read_only_root_filesystem);
        assert_eq!(plain.seccomp, Some(("RuntimeDefault".into(), None)));
        assert_eq!(plain.masked_host_paths, [data]);
        let own = effective(&p, &cs[1], data);
        assert_eq!(
            (own.run_as_user, own.run_as_group),
            (Some(1001), Some(3000))
        );
        assert!(!own.run_as_non_root);
        assert_eq!(own.capabilities_add, ["NET_ADMIN"]);
        assert_eq!(own.capabilities_drop, ["ALL"]);
        assert!(own.no_new_privs && own.read_only_root_filesystem);
        assert_eq!(
            own.seccomp,
            Some(("Localhost".into(), Some("p.json".into())))
        );
        let privileged = effective(&p, &cs[2], data);
        assert!(privileged.privileged && !privileged.no_new_privs);
        assert!(privileged.masked_host_paths.is_empty());
        assert!(
            sandbox(&p).privileged,
            "a privileged container makes the sandbox so"
        );
    }

    #[test]
    fn run_as_non_root_refuses_uid_zero() {
        let p = pod(
            json!({"metadata": {"name": "p", "namespace": "ns", "uid": "u1"},
            "spec": {"securityContext": {"runAsNonRoot": true}, "containers": [{"name": "c"}]}}),
        );
        let c = &p.spec.as_ref().unwrap().containers[0];
        let sc = effective(&p, c, Path::new("/d"));
        let e = verify_run_as_non_root(&p, c, &sc, Some(0)).unwrap_err();
        assert_eq!(
            e,
            "container has runAsNonRoot and image will run as root (pod: \"p_ns(u1)\", container: c)"
        );
        verify_run_as_non_root(&p, c, &sc, None).unwrap();
        verify_run_as_non_root(&p, c, &sc, Some(1000)).unwrap();
        let zero = SecurityConfig {
            run_as_user: Some(0),
            ..sc.clone()
        };
        let e = verify_run_as_non_root(&p, c, &zero, Some(1000)).unwrap_err();
        assert!(
            e.starts_with("container's runAsUser breaks non-root policy"),
            "{e}"
        );
        let one = SecurityConfig {
            run_as_user: Some(1),
            ..sc
        };
        verify_run_as_non_root(&p, c, &one, Some(0)).unwrap();
    }
}
