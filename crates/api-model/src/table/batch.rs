//! The rows of Job (status from its conditions, `1/3` completions, how long it ran) and
//! CronJob (schedule, suspended, active jobs, last schedule).

use serde_json::Value;

use super::format::{
    age, bool_ptr, condition_true, containers, format_selector, int, items, name, text,
};
use super::time::{elapsed, human_nanos, parse_rfc3339, since, Timestamp};
use super::ColumnType::{Boolean as B, Integer as I, String as S};
use super::{col, wide, Doc, Printer, AGE, CONTAINERS, IMAGES, NAME};

const JOB_SPEC: &str = "io.k8s.api.batch.v1.JobSpec";
const CRON_SPEC: &str = "io.k8s.api.batch.v1.CronJobSpec";
const CRON_STATUS: &str = "io.k8s.api.batch.v1.CronJobStatus";

pub(super) static JOB: Printer = Printer {
    columns: &[
        NAME,
        col("Status", S, Doc::Text("Status of the job.")),
        col(
            "Completions",
            S,
            Doc::Field("io.k8s.api.batch.v1.JobStatus", "succeeded"),
        ),
        col(
            "Duration",
            S,
            Doc::Text("Time required to complete the job."),
        ),
        AGE,
        CONTAINERS,
        IMAGES,
        wide("Selector", S, Doc::Field(JOB_SPEC, "selector")),
    ],
    cells: job_cells,
    conditions: None,
};

fn job_cells(job: &Value, now: i64) -> Vec<Value> {
    let spec = &job["spec"];
    let status = &job["status"];
    let succeeded = int(&status["succeeded"]);
    let completions = match spec["completions"].as_i64() {
        Some(c) => format!("{succeeded}/{c}"),
        None => match int(&spec["parallelism"]) {
            p if p > 1 => format!("{succeeded}/1 of {p}"),
            _ => format!("{succeeded}/1"),
        },
    };
    let (names, images) = containers(&spec["template"]["spec"]);
    vec![
        name(job),
        job_status(job).into(),
        completions.into(),
        job_duration(status, now).into(),
        age(job, now),
        names,
        images,
        format_selector(&spec["selector"]).into(),
    ]
}

/// What the Job's conditions say, in Kubernetes' order of precedence.
fn job_status(job: &Value) -> &'static str {
    let conditions = &job["status"]["conditions"];
    if condition_true(conditions, "Complete") {
        "Complete"
    } else if condition_true(conditions, "Failed") {
        "Failed"
    } else if !job["metadata"]["deletionTimestamp"].is_null() {
        "Terminating"
    } else if condition_true(conditions, "Suspended") {
        "Suspended"
    } else if condition_true(conditions, "FailureTarget") {
        "FailureTarget"
    } else {
        "Running"
    }
}

/// From start to completion, or to `now` while it runs; empty before it starts.
fn job_duration(status: &Value, now: i64) -> String {
    let time = |k: &str| status[k].as_str().and_then(parse_rfc3339);
    match (time("startTime"), time("completionTime")) {
        (None, _) => String::new(),
        (Some(start), None) => human_nanos(elapsed(
            start,
            Timestamp {
                secs: now,
                nanos: 0,
            },
        )),
        (Some(start), Some(end)) => human_nanos(elapsed(start, end)),
    }
}

pub(super) static CRON_JOB: Printer = Printer {
    columns: &[
        NAME,
        col("Schedule", S, Doc::Field(CRON_SPEC, "schedule")),
        col("Timezone", S, Doc::Field(CRON_SPEC, "timeZone")),
        col("Suspend", B, Doc::Field(CRON_SPEC, "suspend")),
        col("Active", I, Doc::Field(CRON_STATUS, "active")),
        col(
            "Last Schedule",
            S,
            Doc::Field(CRON_STATUS, "lastScheduleTime"),
        ),
        AGE,
        CONTAINERS,
        IMAGES,
        wide("Selector", S, Doc::Field(JOB_SPEC, "selector")),
    ],
    cells: cron_job_cells,
    conditions: None,
};

fn cron_job_cells(cj: &Value, now: i64) -> Vec<Value> {
    let spec = &cj["spec"];
    let status = &cj["status"];
    let last_schedule = if status["lastScheduleTime"].is_null() {
        "<none>".to_string()
    } else {
        since(&status["lastScheduleTime"], now)
    };
    let job_spec = &spec["jobTemplate"]["spec"];
    let (names, images) = containers(&job_spec["template"]["spec"]);
    vec![
        name(cj),
        text(&spec["schedule"]).into(),
        spec["timeZone"].as_str().unwrap_or("<none>").into(),
        bool_ptr(&spec["suspend"]).into(),
        (items(&status["active"]).len() as i64).into(),
        last_schedule.into(),
        age(cj, now),
        names,
        images,
        format_selector(&job_spec["selector"]).into(),
    ]
}
