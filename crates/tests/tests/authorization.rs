//! Authorization end to end on a three-member cluster: RBAC for service accounts, the
//! Node authorizer and NodeRestriction for nodes, least privilege for the scheduler, and
//! escalation prevention. Each attack is refused with Forbidden and writes nothing.

use std::time::Duration;

use client::{Api, Client, ClientConfig, PatchParams};
use k8s_openapi::api::core::v1::{Node, Pod, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use rkube_proto::api::CreateTokenRequest;
use rkube_tests::{eventually, Cluster, Flavor};
use serde_json::json;
use tonic::Code;

fn obj<K: client::ApiObject>(v: serde_json::Value) -> K {
    serde_json::from_value(v).unwrap()
}

fn forbidden<T: std::fmt::Debug>(r: Result<T, client::Error>, what: &str) -> String {
    match r {
        Err(e) if e.code() == Code::PermissionDenied => e.to_string(),
        other => panic!("{what}: want Forbidden, got {other:?}"),
    }
}

fn as_config(cluster: &Cluster, name: &str, user: &str, groups: &[&str]) -> Client {
    let path = cluster.config_for(name, user, groups);
    Client::new(ClientConfig::load(&path).unwrap())
        .unwrap()
        .with_failover_budget(Duration::from_secs(5))
}

async fn token_of(admin: &Client, ns: &str, sa: &str) -> String {
    let o = admin
        .create_token(CreateTokenRequest {
            namespace: ns.into(),
            name: sa.into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.json).unwrap();
    v["status"]["token"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn service_accounts_get_what_roles_bind_and_cannot_escalate() {
    let cluster = Cluster::start(Flavor::Apiserver, 3, &[]).await;
    let admin = cluster.api_client();
    Api::<k8s_openapi::api::core::v1::Namespace>::all(admin.clone())
        .create(&obj(json!({"metadata": {"name": "team"}})))
        .await
        .unwrap();
    Api::<ServiceAccount>::namespaced(admin.clone(), "team")
        .create(&obj(json!({"metadata": {"name": "app"}})))
        .await
        .unwrap();
    let token = token_of(&admin, "team", "app").await;
    let mut cfg = rkube_tests::client_config(&cluster.api_access());
    (cfg.cert, cfg.key, cfg.cert_pem, cfg.key_pem) = (None, None, None, None);
    cfg.token = Some(token);
    let sa = Client::new(cfg).unwrap();
    let team = Api::<Secret>::namespaced(sa.clone(), "team");
    let msg = forbidden(
        team.list(&Default::default()).await,
        "an unbound account lists Secrets",
    );
    assert!(
        msg.contains("system:serviceaccount:team:app") && msg.contains("\"team\""),
        "{msg}"
    );

    // A RoleBinding grants the Role in its namespace only.
    Api::<Role>::namespaced(admin.clone(), "team")
        .create(&obj(json!({"metadata": {"name": "secrets"}, "rules": [
            {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list"]},
            {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles", "rolebindings"], "verbs": ["create"]}]})))
        .await
        .unwrap();
    Api::<RoleBinding>::namespaced(admin.clone(), "team")
        .create(&obj(json!({"metadata": {"name": "app-secrets"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "secrets"},
            "subjects": [{"kind": "ServiceAccount", "name": "app", "namespace": "team"}]})))
        .await
        .unwrap();
    eventually(
        Duration::from_secs(20),
        "the binding to take effect on every member",
        || async { team.list(&Default::default()).await.ok() },
    )
    .await;
    forbidden(
        Api::<Secret>::namespaced(sa.clone(), "default")
            .list(&Default::default())
            .await,
        "the binding reaches another namespace",
    );

    // can-i answers as the authorizers do, for whoever an administrator impersonates.
    let can_i = |ns: &str, extra: &[&str]| {
        let out = std::process::Command::new(rkube_tests::rkube_bin())
            .args([
                "ctl",
                "--config",
                &cluster.api_access(),
                "--as",
                "system:serviceaccount:team:app",
            ])
            .args(["-n", ns, "auth", "can-i"])
            .args(extra)
            .output()
            .unwrap();
        if !out.stderr.is_empty() {
            eprintln!("can-i: {}", String::from_utf8_lossy(&out.stderr));
        }
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).trim().to_string(),
        )
    };
    assert_eq!(
        can_i("team", &["list", "secrets"]),
        (Some(0), "yes".to_string())
    );
    assert_eq!(
        can_i("default", &["list", "secrets"]),
        (Some(1), "no".to_string())
    );
    assert_eq!(
        can_i("team", &["delete", "secrets"]),
        (Some(1), "no".to_string())
    );
    let (code, rules) = can_i("team", &["--list"]);
    assert_eq!(code, Some(0), "{rules}");
    assert!(
        rules
            .lines()
            .any(|l| l.starts_with("secrets") && l.contains("[get list]")),
        "{rules}"
    );
    // The account itself may not impersonate anyone.
    let mut as_admin = rkube_tests::client_config(&cluster.api_access());
    (as_admin.cert, as_admin.key) = (None, None);
    as_admin.token = Some(token_of(&admin, "team", "app").await);
    as_admin.impersonate_user = Some("rkube-admin".into());
    as_admin.impersonate_groups = vec!["system:masters".into()];
    let msg = forbidden(
        Api::<Secret>::all(Client::new(as_admin).unwrap())
            .list(&Default::default())
            .await,
        "an account impersonates the administrator",
    );
    assert!(msg.contains("impersonate"), "{msg}");

    // It may make roles, but none granting more than it holds.
    let roles = Api::<Role>::namespaced(sa.clone(), "team");
    let msg = forbidden(
        roles
            .create(&obj(json!({"metadata": {"name": "more"}, "rules": [
                {"apiGroups": [""], "resources": ["pods"], "verbs": ["delete"]}]})))
            .await,
        "granting what it does not hold",
    );
    assert!(msg.contains("not currently held"), "{msg}");
    roles
        .create(&obj(json!({"metadata": {"name": "less"}, "rules": [
            {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]})))
        .await
        .expect("granting what it holds");
    let msg = forbidden(
        Api::<RoleBinding>::namespaced(sa.clone(), "team")
            .create(&obj(json!({"metadata": {"name": "to-admin"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
                "subjects": [{"kind": "ServiceAccount", "name": "app", "namespace": "team"}]})))
            .await,
        "binding cluster-admin",
    );
    assert!(msg.contains("not currently held"), "{msg}");
    assert!(Api::<Role>::namespaced(admin.clone(), "team")
        .get_opt("more")
        .await
        .unwrap()
        .is_none());

    // The scheduler's identity schedules; it reads no Secrets.
    let sched = as_config(&cluster, "sched", "system:kube-scheduler", &[]);
    Api::<Pod>::all(sched.clone())
        .list(&Default::default())
        .await
        .expect("the scheduler lists pods");
    forbidden(
        Api::<Secret>::all(sched).list(&Default::default()).await,
        "the scheduler lists Secrets",
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_reaches_only_its_own_pods_objects() {
    let cluster = Cluster::start(Flavor::Apiserver, 3, &[]).await;
    let admin = cluster.api_client();
    let nodes = Api::<Node>::all(admin.clone());
    for n in ["w1", "w2"] {
        nodes
            .create(&obj(json!({"metadata": {"name": n},
                "status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.1"}]}})))
            .await
            .unwrap();
    }
    let secrets = Api::<Secret>::namespaced(admin.clone(), "default");
    let pods = Api::<Pod>::namespaced(admin.clone(), "default");
    for (n, s) in [("w1", "s1"), ("w2", "s2")] {
        secrets
            .create(&obj(
                json!({"metadata": {"name": s}, "stringData": {"k": "v"}}),
            ))
            .await
            .unwrap();
        pods.create(&obj(
            json!({"metadata": {"name": format!("p-{n}")}, "spec": {"nodeName": n,
            "automountServiceAccountToken": false,
            "containers": [{"name": "c", "image": "busybox"}],
            "volumes": [{"name": "v", "secret": {"secretName": s}}]}}),
        ))
        .await
        .unwrap();
    }
    let w1 = as_config(&cluster, "w1", "system:node:w1", &["system:nodes"]);
    let w1_secrets = Api::<Secret>::namespaced(w1.clone(), "default");
    eventually(
        Duration::from_secs(20),
        "w1 reads the Secret of its pod",
        || async { w1_secrets.get("s1").await.ok() },
    )
    .await;
    forbidden(w1_secrets.get("s2").await, "w1 reads w2's pod's Secret");
    forbidden(
        w1_secrets.list(&Default::default()).await,
        "w1 lists Secrets",
    );

    let w1_nodes = Api::<Node>::all(w1.clone());
    let addr = json!({"status": {"addresses": [{"type": "InternalIP", "address": "10.9.9.9"}]}});
    forbidden(
        w1_nodes.patch_status("w2", PatchParams::Merge, &addr).await,
        "w1 moves w2's status address",
    );
    forbidden(
        w1_nodes
            .patch(
                "w2",
                PatchParams::Merge,
                &json!({"metadata": {"labels": {"x": "y"}}}),
            )
            .await,
        "w1 labels w2",
    );
    w1_nodes
        .patch_status("w1", PatchParams::Merge, &addr)
        .await
        .expect("w1 updates its own status");
    let msg = forbidden(
        w1_nodes
            .patch(
                "w1",
                PatchParams::Merge,
                &json!({"metadata": {"labels": {
                "node-restriction.kubernetes.io/trusted": "yes"}}}),
            )
            .await,
        "w1 gives itself a restricted label",
    );
    assert!(msg.contains("node-restriction.kubernetes.io/"), "{msg}");

    let w1_pods = Api::<Pod>::namespaced(w1.clone(), "default");
    let mirror = |node: &str| -> Pod {
        obj(json!({"metadata": {"name": format!("static-{node}"),
            "annotations": {"kubernetes.io/config.mirror": "x"}},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}]}}))
    };
    let msg = forbidden(
        w1_pods.create(&mirror("w2")).await,
        "w1 makes a mirror pod for w2",
    );
    assert!(msg.contains("spec.nodeName"), "{msg}");
    let mut plain = mirror("w1");
    plain.metadata.annotations = None;
    forbidden(w1_pods.create(&plain).await, "w1 makes an ordinary pod");
    w1_pods
        .create(&mirror("w1"))
        .await
        .expect("w1 mirrors its own static pod");
    let status = json!({"status": {"phase": "Failed"}});
    forbidden(
        w1_pods
            .patch_status("p-w2", PatchParams::Merge, &status)
            .await,
        "w1 reports the status of w2's pod",
    );
    assert_ne!(
        pods.get("p-w2")
            .await
            .unwrap()
            .status
            .and_then(|s| s.phase)
            .as_deref(),
        Some("Failed")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn labelled_cluster_roles_are_aggregated_into_view_and_taken_out_again() {
    use k8s_openapi::api::rbac::v1::ClusterRole;
    let cluster = Cluster::start_with_controllers(1).await;
    let admin = cluster.api_client();
    let roles = Api::<ClusterRole>::all(admin.clone());
    roles
        .create(&obj(json!({"metadata": {"name": "crontab-reader",
            "labels": {"rbac.authorization.k8s.io/aggregate-to-view": "true"}},
            "rules": [{"apiGroups": ["stable.example.com"], "resources": ["crontabs"],
                       "verbs": ["get", "list", "watch"]}]})))
        .await
        .unwrap();
    let has_crontabs = |roles: Api<ClusterRole>, want: bool| async move {
        let view = roles.get("view").await.ok()?;
        let has = view
            .rules
            .iter()
            .flatten()
            .any(|r| r.resources.iter().flatten().any(|x| x == "crontabs"));
        let keeps_defaults = view
            .rules
            .iter()
            .flatten()
            .any(|r| r.resources.iter().flatten().any(|x| x == "pods"));
        (has == want && keeps_defaults).then_some(())
    };
    eventually(
        Duration::from_secs(20),
        "view holds the crontab rule",
        || has_crontabs(roles.clone(), true),
    )
    .await;
    roles.delete("crontab-reader", None).await.unwrap();
    eventually(
        Duration::from_secs(20),
        "view lets go of the crontab rule",
        || has_crontabs(roles.clone(), false),
    )
    .await;
}

/// What `user` (with `groups`) may do, as the admin asks the authorizer.
async fn allowed(admin: &Client, user: &str, groups: &[&str], verb: &str, resource: &str) -> bool {
    use k8s_openapi::api::authorization::v1::SubjectAccessReview;
    let review: SubjectAccessReview = obj(json!({"spec": {"user": user, "groups": groups,
        "resourceAttributes": {"verb": verb, "resource": resource, "namespace": "default"}}}));
    let answer = Api::<SubjectAccessReview>::all(admin.clone())
        .create(&review)
        .await
        .unwrap();
    answer.status.is_some_and(|s| s.allowed)
}

#[tokio::test(flavor = "multi_thread")]
async fn each_controller_writes_under_its_own_service_account_and_role() {
    use k8s_openapi::api::apps::v1::ReplicaSet;
    let cluster = Cluster::start_with_controllers(1).await;
    let admin = cluster.api_client();
    let sas = Api::<ServiceAccount>::namespaced(admin.clone(), "kube-system");
    eventually(
        Duration::from_secs(30),
        "the controllers' accounts exist",
        || {
            let sas = sas.clone();
            async move { sas.get_opt("replicaset-controller").await.ok().flatten() }
        },
    )
    .await;
    // The ReplicaSet controller still does its job, now as its own account.
    Api::<ReplicaSet>::namespaced(admin.clone(), "default")
        .create(&obj(
            json!({"metadata": {"name": "rs"}, "spec": {"replicas": 2,
            "selector": {"matchLabels": {"app": "rs"}},
            "template": {"metadata": {"labels": {"app": "rs"}},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}),
        ))
        .await
        .unwrap();
    let pods = Api::<Pod>::namespaced(admin.clone(), "default");
    eventually(
        Duration::from_secs(20),
        "the ReplicaSet's pods exist",
        || {
            let pods = pods.clone();
            async move {
                let n = pods.list(&Default::default()).await.ok()?.items.len();
                (n == 2).then_some(())
            }
        },
    )
    .await;

    let sa = "system:serviceaccount:kube-system:replicaset-controller";
    let sa_groups = [
        "system:serviceaccounts",
        "system:serviceaccounts:kube-system",
        "system:authenticated",
    ];
    assert!(allowed(&admin, sa, &sa_groups, "create", "pods").await);
    assert!(
        !allowed(&admin, sa, &sa_groups, "list", "secrets").await,
        "least privilege"
    );
    assert!(
        !allowed(&admin, sa, &sa_groups, "delete", "services").await,
        "least privilege"
    );
    let cm = "system:kube-controller-manager";
    assert!(allowed(&admin, cm, &["system:authenticated"], "list", "pods").await);
    assert!(
        !allowed(&admin, cm, &["system:authenticated"], "create", "pods").await,
        "the controller-manager's own identity only reads"
    );
}
