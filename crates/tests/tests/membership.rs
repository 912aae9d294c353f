//! Membership at run time: add a learner (which catches up through a snapshot, since the
//! log was purged), promote it, remove a member.

use std::time::Duration;

use bytes::Bytes;
use rkube_proto::etcd::*;
use rkube_tests::{eventually, Cluster, Flavor};

async fn count_local(c: &Cluster, i: usize, prefix: &str) -> Option<i64> {
    let end = rkube_tests::prefix_end(prefix);
    let req = RangeRequest {
        key: Bytes::copy_from_slice(prefix.as_bytes()),
        range_end: end,
        serializable: true,
        count_only: true,
        ..Default::default()
    };
    Some(c.clients(i).kv.range(req).await.ok()?.into_inner().count)
}

#[tokio::test(flavor = "multi_thread")]
async fn add_learner_promote_and_remove_members() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let mut c = Cluster::start(Flavor::Rkube, 3, &["--snapshot-count", "100"]).await;
        let mut kv = c.clients(0).kv;
        for j in 0..500 {
            kv.put(PutRequest {
                key: Bytes::from(format!("m/{j:03}")),
                value: "v".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        }

        let n4 = c.add_member_slot("n4");
        let peer = c.members[n4].peer;
        let added = c
            .clients(1)
            .cluster
            .member_add(MemberAddRequest {
                peer_ur_ls: vec![format!("http://{peer}")],
                is_learner: true,
            })
            .await
            .expect("member add through a follower")
            .into_inner();
        let new_id = added.member.as_ref().expect("added member").id;
        assert_eq!(added.members.len(), 4);
        assert!(added.member.unwrap().is_learner);

        let ic = c
            .members
            .iter()
            .map(|m| format!("{}={}", m.name, m.peer))
            .collect::<Vec<_>>()
            .join(",");
        c.set_initial_cluster(ic);
        c.spawn(n4, "existing");
        eventually(
            Duration::from_secs(30),
            "the learner to catch up through a snapshot",
            || async { (count_local(&c, n4, "m/").await? == 500).then_some(()) },
        )
        .await;
        let snapshot = std::fs::metadata(c.members[n4].data_dir.join("snapshot.bin"));
        assert!(snapshot.is_ok(), "the learner installed a snapshot");

        eventually(
            Duration::from_secs(20),
            "the learner to be promoted",
            || async {
                c.clients(2)
                    .cluster
                    .member_promote(MemberPromoteRequest { id: new_id })
                    .await
                    .ok()
            },
        )
        .await;
        // A member publishes its name through Raft once it runs, as etcd members do.
        eventually(
            Duration::from_secs(10),
            "n4 listed as a started voter",
            || async {
                let list = c
                    .clients(n4)
                    .cluster
                    .member_list(MemberListRequest { linearizable: true })
                    .await
                    .ok()?
                    .into_inner();
                let m4 = list.members.iter().find(|m| m.id == new_id)?;
                (!m4.is_learner && m4.name == "n4").then_some(())
            },
        )
        .await;

        // Remove a follower; the remaining three keep committing.
        let leader = c.wait_leader(Duration::from_secs(10)).await;
        let victim = (0..3).find(|i| *i != leader).unwrap();
        let victim_id = c
            .clients(victim)
            .maintenance
            .status(StatusRequest {})
            .await
            .unwrap()
            .into_inner()
            .header
            .unwrap()
            .member_id;
        let left = c
            .clients(leader)
            .cluster
            .member_remove(MemberRemoveRequest { id: victim_id })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(left.members.len(), 3);
        c.kill(victim);
        c.clients(n4)
            .kv
            .put(PutRequest {
                key: "m/after".into(),
                value: "v".into(),
                ..Default::default()
            })
            .await
            .expect("writes after removal");
    })
    .await
    .expect("scenario within 120 s");
}
