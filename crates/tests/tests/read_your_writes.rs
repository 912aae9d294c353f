//! A write acknowledged by a member is visible at once on that member, also to reads that
//! do not ask the leader (serializable reads) — as etcd gives: the member that forwarded a
//! write to the leader answers only after applying it itself.

use rkube_proto::etcd::{PutRequest, RangeRequest, StatusRequest};
use rkube_tests::{Cluster, Flavor};

#[tokio::test(flavor = "multi_thread")]
async fn a_follower_reads_its_own_writes() {
    let cluster = Cluster::start(Flavor::Rkube, 3, &[]).await;
    let leader = cluster
        .wait_leader(std::time::Duration::from_secs(10))
        .await;
    let follower = (leader + 1) % 3;
    let mut c = cluster.clients(follower);
    let st = c
        .maintenance
        .status(StatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_ne!(
        st.leader,
        st.header.unwrap().member_id,
        "the member is a follower"
    );
    for i in 0..300 {
        let v = format!("v{i}");
        c.kv.put(PutRequest {
            key: "k".into(),
            value: v.clone().into(),
            ..Default::default()
        })
        .await
        .unwrap();
        let got =
            c.kv.range(RangeRequest {
                key: "k".into(),
                serializable: true,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            got.kvs[0].value,
            v.as_bytes(),
            "write {i} not visible on its member"
        );
    }
}
