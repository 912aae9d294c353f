//! ImageLocality: prefers nodes that already report the pod's images, weighted by image
//! size and by how widely the image is spread (an image on every node says little).

use crate::scheduler::cache::Cache;
use crate::scheduler::framework::{
    CycleState, Plugin, PreScorePlugin, ScorePlugin, Status, MAX_NODE_SCORE,
};
use crate::scheduler::node_info::NodeInfo;
use crate::scheduler::pod_info::PodInfo;

pub(crate) const NAME: &str = "ImageLocality";

const MB: i64 = 1024 * 1024;
/// Below this the score is 0: small images are cheap to pull anywhere.
const MIN_THRESHOLD: i64 = 23 * MB;
/// Per container; at or above this the score is the maximum.
const MAX_CONTAINER_THRESHOLD: i64 = 1000 * MB;

pub(crate) struct ImageLocality;

/// For each of the pod's images: the fraction of nodes that have it.
struct Spread(Vec<(String, f64)>);

impl Plugin for ImageLocality {
    fn name(&self) -> &'static str {
        NAME
    }
}

/// Kubernetes' default tag: an image named without one means `:latest`.
fn normalized(image: &str) -> String {
    let last = image.rsplit('/').next().unwrap_or(image);
    if last.contains(':') || last.contains('@') {
        image.to_string()
    } else {
        format!("{image}:latest")
    }
}

impl PreScorePlugin for ImageLocality {
    fn pre_score(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        _: &[&NodeInfo],
        cache: &Cache,
    ) -> Status {
        let total = cache.node_count().max(1) as f64;
        let spec = pod.spec();
        let images = spec
            .containers
            .iter()
            .chain(spec.init_containers.iter().flatten())
            .filter_map(|c| c.image.as_deref())
            .map(|i| {
                let n = normalized(i);
                let spread = cache.image_node_count(&n).max(cache.image_node_count(i)) as f64;
                (n, spread / total)
            })
            .collect();
        state.write(NAME, Spread(images));
        Status::success()
    }
}

impl ScorePlugin for ImageLocality {
    fn score(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> i64 {
        let Some(Spread(images)) = state.read::<Spread>(NAME) else {
            return 0;
        };
        let sum: i64 = images
            .iter()
            .filter_map(|(img, spread)| {
                let size = node.images.get(img)?;
                Some((*size as f64 * spread) as i64)
            })
            .sum();
        let containers = pod.spec().containers.len().max(1) as i64;
        let max = MAX_CONTAINER_THRESHOLD * containers;
        let clamped = sum.clamp(MIN_THRESHOLD, max);
        MAX_NODE_SCORE * (clamped - MIN_THRESHOLD) / (max - MIN_THRESHOLD)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::scheduler::framework::Profile;
    use crate::scheduler::testing::{cache, node, pod, score_all};

    #[test]
    fn nodes_with_big_images_score_higher() {
        let with = |name: &str, images: serde_json::Value| {
            node(name, "1", "1Gi", json!({"status": {"images": images}}))
        };
        let c = cache(
            vec![
                with("big", json!([{"names": ["app:v1"], "sizeBytes": 500 * MB}])),
                with(
                    "small",
                    json!([{"names": ["sidecar:latest"], "sizeBytes": 10 * MB}]),
                ),
                with("none", json!([])),
                with(
                    "other",
                    json!([{"names": ["db:latest"], "sizeBytes": 900 * MB}]),
                ),
            ],
            vec![],
        );
        let p = pod(
            "p",
            json!({}),
            json!({"containers": [
            {"name": "a", "image": "app:v1"}, {"name": "s", "image": "sidecar"}]}),
        );
        let profile = Profile {
            pre_score: vec![Box::new(ImageLocality)],
            score: vec![(Box::new(ImageLocality), 1)],
            ..Default::default()
        };
        let mut got = score_all(&profile, &c, &p);
        got.sort();
        // app:v1 is on 1 of 4 nodes: 500 MB * 1/4 = 125 MB over the 23 MB floor of 2000.
        assert_eq!(
            got,
            vec![
                ("big".into(), 5),
                ("none".into(), 0),
                ("other".into(), 0),
                ("small".into(), 0)
            ]
        );
    }
}
