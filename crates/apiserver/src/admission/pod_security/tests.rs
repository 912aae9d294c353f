//! Table tests of the Pod Security checks: for each check a pod that passes and pods that
//! fail, at the level the check belongs to, with Kubernetes' exact reason and detail.

use serde_json::{json, Value};

use super::checks::{describe, evaluate};
use super::policy::Level::{self, Baseline, Privileged, Restricted};

/// A pod that satisfies restricted, changed by `patch` (a JSON merge patch: objects merge,
/// null removes, anything else replaces).
fn pod(patch: Value) -> Value {
    let mut pod = json!({
        "metadata": {"name": "p"},
        "spec": {
            "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [container("c", json!({}))],
        },
    });
    merge(&mut pod, patch);
    pod
}

/// A restricted container named `name`, its security context changed by `sc`.
fn container(name: &str, sc: Value) -> Value {
    let mut c = json!({
        "name": name,
        "image": "registry.example/app:1",
        "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}},
    });
    merge(&mut c["securityContext"], sc);
    c
}

fn merge(target: &mut Value, patch: Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(&k);
                } else {
                    merge(t.entry(k).or_insert(Value::Null), v);
                }
            }
        }
        (t, p) => *t = p,
    }
}

fn check(level: Level, pod: &Value) -> String {
    describe(&evaluate(level, &pod["metadata"], &pod["spec"]))
}

/// `(case, level, pod, expected describe(); empty when the pod passes)`.
type Case = (&'static str, Level, Value, &'static str);

fn run(cases: Vec<Case>) {
    for (name, level, pod, want) in cases {
        assert_eq!(check(level, &pod), want, "{name} at {level}");
    }
}

#[test]
fn the_base_pod_satisfies_every_level() {
    for level in [Privileged, Baseline, Restricted] {
        assert_eq!(check(level, &pod(json!({}))), "", "{level}");
    }
}

#[test]
fn host_process_namespaces_privileged_and_ports() {
    run(vec![
        (
            "hostProcess false",
            Baseline,
            pod(json!({"spec": {"securityContext": {"windowsOptions": {"hostProcess": false}}}})),
            "",
        ),
        (
            "hostProcess",
            Baseline,
            pod(json!({"spec": {
                "securityContext": {"windowsOptions": {"hostProcess": true}},
                "containers": [container("c", json!({"windowsOptions": {"hostProcess": true}}))],
            }})),
            r#"hostProcess (pod and container "c" must not set securityContext.windowsOptions.hostProcess=true)"#,
        ),
        (
            "host namespaces off",
            Baseline,
            pod(json!({"spec": {"hostNetwork": false, "hostPID": false, "hostIPC": false}})),
            "",
        ),
        (
            "host namespaces",
            Baseline,
            pod(json!({"spec": {"hostPID": true, "hostNetwork": true, "hostIPC": true}})),
            "host namespaces (hostIPC, hostNetwork, hostPID)",
        ),
        (
            "not privileged",
            Baseline,
            pod(json!({"spec": {"containers": [container("c", json!({"privileged": false}))]}})),
            "",
        ),
        (
            "privileged, every kind of container",
            Baseline,
            pod(json!({"spec": {
                "initContainers": [container("i", json!({"privileged": true}))],
                "containers": [container("c", json!({"privileged": true})), container("ok", json!({}))],
                "ephemeralContainers": [container("e", json!({"privileged": true}))],
            }})),
            r#"privileged (containers "i", "c", "e" must not set securityContext.privileged=true)"#,
        ),
        (
            "hostPort 0",
            Baseline,
            pod(
                json!({"spec": {"containers": [{"name": "c", "ports": [{"containerPort": 80, "hostPort": 0}]}]}}),
            ),
            "",
        ),
        (
            "hostPorts",
            Baseline,
            pod(json!({"spec": {
                "initContainers": [{"name": "i", "ports": [{"hostPort": 9090}]}],
                "containers": [{"name": "c", "ports": [{"containerPort": 80, "hostPort": 8080}, {"containerPort": 81}]}],
            }})),
            r#"hostPort (containers "i", "c" use hostPorts 8080, 9090)"#,
        ),
    ]);
}

#[test]
fn capabilities() {
    let add = |caps: Value| {
        pod(
            json!({"spec": {"containers": [container("c", json!({"capabilities": {"add": caps}}))]}}),
        )
    };
    run(vec![
        (
            "default capabilities",
            Baseline,
            add(json!(["CHOWN", "NET_BIND_SERVICE"])),
            "",
        ),
        (
            "non-default capabilities",
            Baseline,
            add(json!(["SYS_ADMIN", "CHOWN", "NET_RAW"])),
            r#"non-default capabilities (container "c" must not include "NET_RAW", "SYS_ADMIN" in securityContext.capabilities.add)"#,
        ),
        (
            "restricted NET_BIND_SERVICE",
            Restricted,
            add(json!(["NET_BIND_SERVICE"])),
            "",
        ),
        (
            "restricted adds beyond NET_BIND_SERVICE",
            Restricted,
            add(json!(["CHOWN"])),
            r#"unrestricted capabilities (container "c" must not include "CHOWN" in securityContext.capabilities.add)"#,
        ),
        (
            "restricted without drop ALL",
            Restricted,
            pod(json!({"spec": {"containers": [
                container("a", json!({"capabilities": {"drop": ["NET_RAW"], "add": ["SYS_TIME"]}})),
                container("b", json!({"capabilities": null})),
            ]}})),
            r#"unrestricted capabilities (containers "a", "b" must set securityContext.capabilities.drop=["ALL"]; container "a" must not include "SYS_TIME" in securityContext.capabilities.add)"#,
        ),
    ]);
}

#[test]
fn volumes() {
    let vols = |v: Value| pod(json!({"spec": {"volumes": v}}));
    let allowed = json!([
        {"name": "a", "configMap": {"name": "x"}}, {"name": "b", "secret": {"secretName": "x"}},
        {"name": "c", "emptyDir": {}}, {"name": "d", "projected": {"sources": []}},
        {"name": "e", "downwardAPI": {}}, {"name": "f", "persistentVolumeClaim": {"claimName": "x"}},
        {"name": "g", "csi": {"driver": "x"}}, {"name": "h", "ephemeral": {}},
        {"name": "i", "image": {"reference": "x"}},
    ]);
    run(vec![
        ("allowed volume types", Restricted, vols(allowed), ""),
        (
            "hostPath",
            Baseline,
            vols(json!([{"name": "h", "hostPath": {"path": "/"}}])),
            r#"hostPath volumes (volume "h")"#,
        ),
        // At restricted, restrictedVolumes replaces the hostPath check.
        (
            "hostPath at restricted",
            Restricted,
            vols(json!([{"name": "h", "hostPath": {"path": "/"}}])),
            r#"restricted volume types (volume "h" uses restricted volume type "hostPath")"#,
        ),
        (
            "nfs at baseline",
            Baseline,
            vols(json!([{"name": "n", "nfs": {"server": "s", "path": "/"}}])),
            "",
        ),
        (
            "restricted volume types",
            Restricted,
            vols(
                json!([{"name": "n", "nfs": {}}, {"name": "ok", "emptyDir": {}}, {"name": "u", "somethingNew": {}}]),
            ),
            r#"restricted volume types (volumes "n", "u" use restricted volume types "nfs", "unknown")"#,
        ),
    ]);
}

#[test]
fn app_armor_se_linux_and_proc_mount() {
    let sc = |sc: Value| pod(json!({"spec": {"containers": [container("c", sc)]}}));
    run(vec![
        (
            "confined AppArmor",
            Baseline,
            pod(json!({
                "metadata": {"annotations": {"container.apparmor.security.beta.kubernetes.io/c": "localhost/p"}},
                "spec": {"securityContext": {"appArmorProfile": {"type": "RuntimeDefault"}},
                         "containers": [container("c", json!({"appArmorProfile": {"type": "Localhost", "localhostProfile": "p"}}))]},
            })),
            "",
        ),
        (
            "unconfined AppArmor",
            Baseline,
            pod(json!({
                "metadata": {"annotations": {"container.apparmor.security.beta.kubernetes.io/c": "unconfined"}},
                "spec": {"securityContext": {"appArmorProfile": {"type": "Unconfined"}}},
            })),
            r#"forbidden AppArmor profiles (pod and annotation must not set AppArmor profile type to "Unconfined", "container.apparmor.security.beta.kubernetes.io/c="unconfined"")"#,
        ),
        (
            "unconfined AppArmor container",
            Baseline,
            sc(json!({"appArmorProfile": {"type": "Unconfined"}})),
            r#"forbidden AppArmor profile (container "c" must not set AppArmor profile type to "Unconfined")"#,
        ),
        ("allowed SELinux", Baseline, sc(json!({"seLinuxOptions": {"type": "container_engine_t", "level": "s0:c1,c2"}})), ""),
        (
            "SELinux type and user",
            Baseline,
            sc(json!({"seLinuxOptions": {"type": "spc_t", "user": "system_u"}})),
            r#"seLinuxOptions (container "c" set forbidden securityContext.seLinuxOptions: type "spc_t"; user may not be set)"#,
        ),
        (
            "SELinux role at pod level",
            Baseline,
            pod(json!({"spec": {"securityContext": {"seLinuxOptions": {"role": "r"}}}})),
            "seLinuxOptions (pod set forbidden securityContext.seLinuxOptions: role may not be set)",
        ),
        ("Default procMount", Restricted, sc(json!({"procMount": "Default"})), ""),
        (
            "Unmasked procMount",
            Baseline,
            sc(json!({"procMount": "Unmasked"})),
            r#"procMount (container "c" must not set securityContext.procMount to "Unmasked")"#,
        ),
        // In a user namespace, baseline allows any procMount, restricted does not.
        ("Unmasked in a user namespace", Baseline, pod(json!({"spec": {"hostUsers": false, "containers": [container("c", json!({"procMount": "Unmasked"}))]}})), ""),
        (
            "Unmasked in a user namespace, restricted",
            Restricted,
            pod(json!({"spec": {"hostUsers": false, "containers": [container("c", json!({"procMount": "Unmasked"}))]}})),
            r#"procMount (container "c" must not set securityContext.procMount to "Unmasked")"#,
        ),
    ]);
}

#[test]
fn seccomp_and_sysctls() {
    let unconfined_pod =
        pod(json!({"spec": {"securityContext": {"seccompProfile": {"type": "Unconfined"}}}}));
    let no_profile = pod(json!({"spec": {"securityContext": {"seccompProfile": null}}}));
    run(vec![
        (
            "seccomp unset at baseline",
            Baseline,
            no_profile.clone(),
            "",
        ),
        (
            "seccomp Localhost",
            Restricted,
            pod(
                json!({"spec": {"securityContext": {"seccompProfile": {"type": "Localhost", "localhostProfile": "p.json"}}}}),
            ),
            "",
        ),
        (
            "seccomp Unconfined",
            Baseline,
            unconfined_pod.clone(),
            r#"seccompProfile (pod must not set securityContext.seccompProfile.type to "Unconfined")"#,
        ),
        (
            "seccomp Unconfined at restricted",
            Restricted,
            unconfined_pod,
            r#"seccompProfile (pod must not set securityContext.seccompProfile.type to "Unconfined")"#,
        ),
        (
            "seccomp set by no one",
            Restricted,
            no_profile,
            r#"seccompProfile (pod or container "c" must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")"#,
        ),
        (
            "seccomp set by every container",
            Restricted,
            pod(
                json!({"spec": {"securityContext": {"seccompProfile": null}, "containers": [container("c", json!({"seccompProfile": {"type": "RuntimeDefault"}}))]}}),
            ),
            "",
        ),
        (
            "safe sysctls",
            Baseline,
            pod(
                json!({"spec": {"securityContext": {"sysctls": [{"name": "net.ipv4.tcp_rmem", "value": "1"}, {"name": "kernel.shm_rmid_forced", "value": "0"}]}}}),
            ),
            "",
        ),
        (
            "unsafe sysctls",
            Baseline,
            pod(
                json!({"spec": {"securityContext": {"sysctls": [{"name": "kernel.msgmax", "value": "1"}, {"name": "net.ipv4.ping_group_range", "value": "0 1"}, {"name": "vm.swappiness", "value": "1"}]}}}),
            ),
            "forbidden sysctls (kernel.msgmax, vm.swappiness)",
        ),
    ]);
}

#[test]
fn privilege_escalation_and_users() {
    let sc = |sc: Value| pod(json!({"spec": {"containers": [container("c", sc)]}}));
    run(vec![
        (
            "allowPrivilegeEscalation unset",
            Restricted,
            sc(json!({"allowPrivilegeEscalation": null})),
            r#"allowPrivilegeEscalation != false (container "c" must set securityContext.allowPrivilegeEscalation=false)"#,
        ),
        (
            "allowPrivilegeEscalation true",
            Restricted,
            sc(json!({"allowPrivilegeEscalation": true})),
            r#"allowPrivilegeEscalation != false (container "c" must set securityContext.allowPrivilegeEscalation=false)"#,
        ),
        (
            "allowPrivilegeEscalation true at baseline",
            Baseline,
            sc(json!({"allowPrivilegeEscalation": true})),
            "",
        ),
        (
            "runAsNonRoot by the container",
            Restricted,
            pod(
                json!({"spec": {"securityContext": {"runAsNonRoot": null}, "containers": [container("c", json!({"runAsNonRoot": true}))]}}),
            ),
            "",
        ),
        (
            "runAsNonRoot unset",
            Restricted,
            pod(json!({"spec": {"securityContext": {"runAsNonRoot": null}}})),
            r#"runAsNonRoot != true (pod or container "c" must set securityContext.runAsNonRoot=true)"#,
        ),
        (
            "runAsNonRoot false",
            Restricted,
            sc(json!({"runAsNonRoot": false})),
            r#"runAsNonRoot != true (container "c" must not set securityContext.runAsNonRoot=false)"#,
        ),
        (
            "runAsUser 1000",
            Restricted,
            pod(json!({"spec": {"securityContext": {"runAsUser": 1000}}})),
            "",
        ),
        (
            "runAsUser 0",
            Restricted,
            pod(
                json!({"spec": {"securityContext": {"runAsUser": 0}, "containers": [container("c", json!({"runAsUser": 0}))]}}),
            ),
            r#"runAsUser=0 (pod and container "c" must not set runAsUser=0)"#,
        ),
        (
            "runAsUser 0 at baseline",
            Baseline,
            pod(json!({"spec": {"securityContext": {"runAsUser": 0}}})),
            "",
        ),
        // A user-namespace pod's root is not the host's.
        (
            "root in a user namespace",
            Restricted,
            pod(
                json!({"spec": {"hostUsers": false, "securityContext": {"runAsUser": 0, "runAsNonRoot": false}}}),
            ),
            "",
        ),
    ]);
}

#[test]
fn probe_and_lifecycle_hosts() {
    let c = |extra: Value| {
        let mut c = container("c", json!({}));
        merge(&mut c, extra);
        pod(json!({"spec": {"containers": [c]}}))
    };
    run(vec![
        (
            "no hosts",
            Baseline,
            c(json!({"livenessProbe": {"httpGet": {"port": 80, "host": ""}}})),
            "",
        ),
        (
            "probe and lifecycle hosts",
            Baseline,
            c(json!({
                "livenessProbe": {"httpGet": {"port": 80, "host": "10.0.0.1"}},
                "lifecycle": {"preStop": {"tcpSocket": {"port": 1, "host": "example.com"}}},
            })),
            r#"probe or lifecycle host (container "c" uses probe or lifecycle hosts "10.0.0.1", "example.com")"#,
        ),
    ]);
}

#[test]
fn windows_pods_are_exempt_from_linux_only_checks() {
    let windows = pod(json!({"spec": {
        "os": {"name": "windows"},
        "securityContext": {"seccompProfile": null},
        "containers": [{"name": "c"}],
    }}));
    assert_eq!(check(Restricted, &windows), "");
}

#[test]
fn levels_are_ordered() {
    let plain =
        json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "x"}]}});
    assert_eq!(check(Baseline, &plain), "");
    assert_eq!(
        check(Restricted, &plain),
        concat!(
            r#"allowPrivilegeEscalation != false (container "c" must set securityContext.allowPrivilegeEscalation=false), "#,
            r#"unrestricted capabilities (container "c" must set securityContext.capabilities.drop=["ALL"]), "#,
            r#"runAsNonRoot != true (pod or container "c" must set securityContext.runAsNonRoot=true), "#,
            r#"seccompProfile (pod or container "c" must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")"#,
        )
    );
    let privileged = json!({"spec": {"hostNetwork": true, "containers": [{"name": "c", "securityContext": {"privileged": true}}]}});
    assert_eq!(check(Privileged, &privileged), "");
    assert_eq!(
        check(Baseline, &privileged),
        r#"host namespaces (hostNetwork), privileged (container "c" must not set securityContext.privileged=true)"#
    );
    // Baseline violations come first, then restricted ones.
    assert!(check(Restricted, &privileged).starts_with(
        r#"host namespaces (hostNetwork), privileged (container "c" must not set securityContext.privileged=true), allowPrivilegeEscalation != false"#
    ));
}
