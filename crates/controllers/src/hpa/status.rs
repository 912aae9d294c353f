//! The HPA's status: replicas, the metrics as measured, and the AbleToScale,
//! ScalingActive and ScalingLimited conditions. Written only when it changed.

use client::Api;
use k8s_openapi::api::autoscaling::v2::{
    ContainerResourceMetricStatus, HorizontalPodAutoscaler, HorizontalPodAutoscalerCondition,
    MetricStatus, MetricValueStatus, ResourceMetricStatus,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::context::Ctx;
use crate::scheduler::resources::CPU;

/// One metric as measured this sync.
#[derive(Debug, PartialEq)]
pub(crate) struct Measured {
    pub resource: String,
    pub container: Option<String>,
    pub utilization: Option<i32>,
    pub average: i64,
}

/// A condition: status, reason, message.
pub(crate) type Cond = (bool, &'static str, String);

/// What a sync found and did.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Outcome {
    pub current: i32,
    pub desired: i32,
    pub able: Cond,
    pub active: Option<Cond>,
    pub limited: Option<Cond>,
    pub metrics: Vec<Measured>,
    pub rescaled: bool,
}

fn set(conds: &mut Vec<HorizontalPodAutoscalerCondition>, type_: &str, c: Cond) {
    let status = if c.0 { "True" } else { "False" }.to_string();
    let now = Some(Time(client::events::now()));
    match conds.iter_mut().find(|x| x.type_ == type_) {
        Some(x) => {
            if x.status != status {
                x.last_transition_time = now;
            }
            x.status = status;
            x.reason = Some(c.1.into());
            x.message = Some(c.2);
        }
        None => conds.push(HorizontalPodAutoscalerCondition {
            type_: type_.into(),
            status,
            reason: Some(c.1.into()),
            message: Some(c.2),
            last_transition_time: now,
            observed_generation: None,
        }),
    }
}

fn metric_status(m: Measured) -> MetricStatus {
    let average = if m.resource == CPU {
        format!("{}m", m.average)
    } else {
        m.average.to_string()
    };
    let current = MetricValueStatus {
        average_utilization: m.utilization,
        average_value: Some(Quantity(average)),
        value: None,
    };
    match m.container {
        Some(container) => MetricStatus {
            type_: "ContainerResource".into(),
            container_resource: Some(ContainerResourceMetricStatus {
                container,
                name: m.resource,
                current,
            }),
            ..Default::default()
        },
        None => MetricStatus {
            type_: "Resource".into(),
            resource: Some(ResourceMetricStatus {
                name: m.resource,
                current,
            }),
            ..Default::default()
        },
    }
}

pub(crate) async fn write(
    ctx: &Ctx,
    hpa: &HorizontalPodAutoscaler,
    out: Outcome,
) -> client::Result<()> {
    let before = hpa.status.clone().unwrap_or_default();
    let mut st = before.clone();
    st.observed_generation = hpa.metadata.generation;
    st.current_replicas = Some(out.current);
    st.desired_replicas = out.desired;
    if !out.metrics.is_empty() {
        st.current_metrics = Some(out.metrics.into_iter().map(metric_status).collect());
    }
    if out.rescaled {
        st.last_scale_time = Some(Time(client::events::now()));
    }
    let conds = st.conditions.get_or_insert_with(Vec::new);
    set(conds, "AbleToScale", out.able);
    if let Some(a) = out.active {
        set(conds, "ScalingActive", a);
    }
    if let Some(l) = out.limited {
        set(conds, "ScalingLimited", l);
    }
    if st == before {
        return Ok(());
    }
    let mut new = hpa.clone();
    new.status = Some(st);
    let ns = hpa.metadata.namespace.as_deref().unwrap_or_default();
    match Api::<HorizontalPodAutoscaler>::namespaced(ctx.client.clone(), ns)
        .replace_status(&new)
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if e.is_not_found() => Ok(()),
        Err(e) => Err(e),
    }
}
