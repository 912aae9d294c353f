//! Jobs run pods to completion (or fail past their backoff limit), and CronJobs create
//! Jobs on schedule. A fake kubelet ends pods with the exit code they are annotated with.

use std::time::Duration;

use client::{Api, ListParams};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::Pod;
use rkube_tests::eventually;
use rkube_tests::fake_kubelet::{cluster_with_nodes_and, EXIT};
use serde_json::json;

fn job_spec(exit: &str, completions: i32, parallelism: i32) -> serde_json::Value {
    json!({"completions": completions, "parallelism": parallelism, "backoffLimit": 2,
        "template": {"metadata": {"annotations": {EXIT: exit}},
            "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox", "command": ["true"]}]}}})
}

fn condition(j: &Job) -> Option<(String, String)> {
    let c = j
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.status == "True")?;
    Some((c.type_.clone(), c.reason.clone().unwrap_or_default()))
}

#[tokio::test(flavor = "multi_thread")]
async fn jobs_complete_or_fail_and_cronjobs_fire() {
    // Back-off 1 s, 2 s, …: short for the test, long enough to see.
    let (_cluster, client, _kubelet) =
        cluster_with_nodes_and(1, &["w1"], &["--job-pod-failure-backoff-ms", "1000"]).await;
    let jobs = Api::<Job>::namespaced(client.clone(), "default");

    let ok: Job = serde_json::from_value(json!({"apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "ok"}, "spec": job_spec("0", 5, 2)}))
    .unwrap();
    jobs.create(&ok).await.unwrap();
    let done = eventually(Duration::from_secs(60), "job ok complete", || async {
        let j = jobs.get("ok").await.ok()?;
        (condition(&j)?.0 == "Complete").then_some(j)
    })
    .await;
    let st = done.status.unwrap();
    assert_eq!(st.succeeded, Some(5));
    assert!(st.completion_time.is_some());
    let pods = Api::<Pod>::namespaced(client.clone(), "default")
        .list(&ListParams::default().labels("batch.kubernetes.io/job-name=ok"))
        .await
        .unwrap()
        .items;
    assert_eq!(pods.len(), 5, "exactly `completions` pods ran");

    let bad: Job = serde_json::from_value(json!({"apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "bad"}, "spec": job_spec("1", 1, 1)}))
    .unwrap();
    jobs.create(&bad).await.unwrap();
    let failed = eventually(Duration::from_secs(60), "job bad failed", || async {
        let j = jobs.get("bad").await.ok()?;
        let c = condition(&j)?;
        (c.0 == "Failed").then_some((j, c.1))
    })
    .await;
    assert_eq!(failed.1, "BackoffLimitExceeded");
    assert_eq!(
        failed.0.status.unwrap().failed,
        Some(3),
        "backoffLimit 2: the third failure ends it"
    );
    // Each replacement waited out the back-off: at least 1 s after the first failure, 2 s
    // after the second (creation times are whole seconds, which can only shorten a gap by
    // less than a second, so the whole-second gaps are at least 1 and 2).
    let mut created: Vec<i64> = Api::<Pod>::namespaced(client.clone(), "default")
        .list(&ListParams::default().labels("batch.kubernetes.io/job-name=bad"))
        .await
        .unwrap()
        .items
        .iter()
        .map(|p| {
            p.metadata
                .creation_timestamp
                .as_ref()
                .unwrap()
                .0
                .as_second()
        })
        .collect();
    created.sort();
    assert_eq!(created.len(), 3);
    assert!(created[1] - created[0] >= 1, "{created:?}");
    assert!(created[2] - created[1] >= 2, "{created:?}");

    // A CronJob every minute: within ~60 s a Job it owns appears, and completes.
    let cj: CronJob = serde_json::from_value(json!({"apiVersion": "batch/v1", "kind": "CronJob",
        "metadata": {"name": "tick"},
        "spec": {"schedule": "* * * * *", "jobTemplate": {"spec": job_spec("0", 1, 1)}}}))
    .unwrap();
    Api::<CronJob>::namespaced(client.clone(), "default")
        .create(&cj)
        .await
        .unwrap();
    eventually(
        Duration::from_secs(90),
        "a Job of the CronJob completes",
        || async {
            let list = jobs.list(&ListParams::default()).await.ok()?.items;
            list.into_iter().find(|j| {
                j.metadata
                    .name
                    .as_deref()
                    .is_some_and(|n| n.starts_with("tick-"))
                    && j.metadata
                        .owner_references
                        .iter()
                        .flatten()
                        .any(|o| o.kind == "CronJob" && o.name == "tick")
                    && condition(j).is_some_and(|c| c.0 == "Complete")
            })
        },
    )
    .await;
    let cj = Api::<CronJob>::namespaced(client.clone(), "default")
        .get("tick")
        .await
        .unwrap();
    assert!(cj.status.unwrap().last_schedule_time.is_some());
}
