//! `rkube ctl rollout` for StatefulSets (status, history from their ControllerRevisions,
//! undo) and DaemonSets (status), in kubectl's words.

use anyhow::{bail, Context};
use client::{Api, PatchParams};
use controllers::statefulset::history::{number, template_of};
use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet, StatefulSet};
use serde_json::json;

use super::Ctx;

/// Whether a StatefulSet's rollout is done, and kubectl's words for where it stands.
pub fn statefulset_status(s: &StatefulSet) -> anyhow::Result<(bool, String)> {
    let strategy = s.spec.update_strategy.clone().unwrap_or_default();
    if strategy.type_.as_deref().unwrap_or("RollingUpdate") != "RollingUpdate" {
        bail!("rollout status is only available for RollingUpdate strategy type");
    }
    let st = s.status.clone().unwrap_or_default();
    let observed = st.observed_generation.unwrap_or(0);
    if observed == 0 || s.metadata.generation.unwrap_or(0) > observed {
        return Ok((
            false,
            "Waiting for statefulset spec update to be observed...".into(),
        ));
    }
    let want = s.spec.replicas.unwrap_or(1);
    let ready = st.ready_replicas.unwrap_or(0);
    if ready < want {
        return Ok((
            false,
            format!("Waiting for {} pods to be ready...", want - ready),
        ));
    }
    let updated = st.updated_replicas.unwrap_or(0);
    if let Some(partition) = strategy.rolling_update.and_then(|r| r.partition) {
        if updated < want - partition {
            return Ok((false, format!("Waiting for partitioned roll out to finish: {updated} out of {} new pods have been updated...", want - partition)));
        }
        return Ok((
            true,
            format!("partitioned roll out complete: {updated} new pods have been updated..."),
        ));
    }
    let update = st.update_revision.unwrap_or_default();
    if Some(&update) != st.current_revision.as_ref() {
        return Ok((false, format!("waiting for statefulset rolling update to complete {updated} pods at revision {update}...")));
    }
    Ok((
        true,
        format!(
            "statefulset rolling update complete {} pods at revision {update}...",
            st.current_replicas.unwrap_or(0)
        ),
    ))
}

/// Whether a DaemonSet's rollout is done, and kubectl's words for where it stands.
pub fn daemonset_status(d: &DaemonSet) -> anyhow::Result<(bool, String)> {
    let name = d.metadata.name.clone().unwrap_or_default();
    let strategy = d
        .spec
        .update_strategy
        .as_ref()
        .and_then(|s| s.type_.clone());
    if strategy.as_deref().unwrap_or("RollingUpdate") != "RollingUpdate" {
        bail!("rollout status is only available for RollingUpdate strategy type");
    }
    let st = d.status.clone().unwrap_or_default();
    if d.metadata.generation.unwrap_or(0) > st.observed_generation.unwrap_or(0) {
        return Ok((
            false,
            "Waiting for daemon set spec update to be observed...".into(),
        ));
    }
    let desired = st.desired_number_scheduled;
    let updated = st.updated_number_scheduled.unwrap_or(0);
    let available = st.number_available.unwrap_or(0);
    if updated < desired {
        return Ok((false, format!("Waiting for daemon set {name:?} rollout to finish: {updated} out of {desired} new pods have been updated...")));
    }
    if available < desired {
        return Ok((false, format!("Waiting for daemon set {name:?} rollout to finish: {available} of {desired} updated pods are available...")));
    }
    Ok((true, format!("daemon set {name:?} successfully rolled out")))
}

/// The revisions a StatefulSet controls, oldest first.
async fn revisions(ctx: &Ctx, s: &StatefulSet) -> anyhow::Result<Vec<ControllerRevision>> {
    let uid = s.metadata.uid.clone().unwrap_or_default();
    let mut owned: Vec<ControllerRevision> =
        Api::<ControllerRevision>::namespaced(ctx.client.clone(), &ctx.namespace())
            .list(&Default::default())
            .await?
            .items
            .into_iter()
            .filter(|r| {
                r.metadata
                    .owner_references
                    .iter()
                    .flatten()
                    .any(|o| o.uid == uid && o.controller == Some(true))
            })
            .collect();
    owned.sort_by_key(number);
    Ok(owned)
}

/// `rollout history statefulset/NAME`.
pub async fn statefulset_history(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let s = Api::<StatefulSet>::namespaced(ctx.client.clone(), &ctx.namespace())
        .get(name)
        .await?;
    let revs = revisions(ctx, &s).await?;
    super::rollout::print_revisions(
        &format!("statefulset.apps/{name}"),
        revs.iter().map(|r| (number(r), &r.metadata)),
    );
    Ok(())
}

/// `rollout undo statefulset/NAME [--to-revision N]`: puts the template of revision N
/// (0: the one before the latest) back.
pub async fn statefulset_undo(ctx: &Ctx, name: &str, to_revision: i64) -> anyhow::Result<()> {
    let api = Api::<StatefulSet>::namespaced(ctx.client.clone(), &ctx.namespace());
    let s = api.get(name).await?;
    let revs = revisions(ctx, &s).await?;
    let wanted = if to_revision > 0 {
        to_revision
    } else {
        let mut numbers: Vec<i64> = revs.iter().map(number).collect();
        numbers.pop();
        numbers.pop().context("no rollout history found")?
    };
    let rev = revs
        .iter()
        .find(|r| number(r) == wanted)
        .with_context(|| format!("unable to find the specified revision {wanted}"))?;
    let template = template_of(rev).context("the revision holds no pod template")?;
    if template == s.spec.template {
        println!("statefulset.apps/{name} skipped rollback (current template already matches revision {wanted})");
        return Ok(());
    }
    let patch = json!([{"op": "replace", "path": "/spec/template",
        "value": serde_json::to_value(&template)?}]);
    api.patch(name, PatchParams::Json, &patch).await?;
    println!("statefulset.apps/{name} rolled back (to revision {wanted})");
    Ok(())
}
