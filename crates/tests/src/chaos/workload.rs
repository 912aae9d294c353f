//! Workloads that record histories: concurrent clients doing put / get / compare-and-swap
//! on a few keys through random members, over the etcd API and over the rkube resource
//! API, each operation with its call and return time and its result.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use client::Api;
use k8s_openapi::api::core::v1::ConfigMap;
use parking_lot::Mutex;
use rkube_proto::etcd::compare::{CompareResult, CompareTarget, TargetUnion};
use rkube_proto::etcd::kv_client::KvClient;
use rkube_proto::etcd::request_op::Request;
use rkube_proto::etcd::*;
use serde_json::json;
use tonic::transport::Channel;

use crate::linearizability::{Op, OpKind};

/// Keys of the rkube-API workload get ids from here on, apart from the etcd-API keys.
pub const API_KEY_BASE: u32 = 1000;

/// What every workload client shares.
pub struct Recorder {
    pub origin: Instant,
    pub ops: Mutex<Vec<Op>>,
    /// Acknowledged writes: (key, value).
    pub acked: Mutex<Vec<(u32, u64)>>,
    /// Times (ns) at which writes were acknowledged, for failover timing.
    pub ack_times: Mutex<Vec<u64>>,
    pub stop: AtomicBool,
}

impl Recorder {
    pub fn new() -> Arc<Self> {
        Arc::new(Recorder {
            origin: Instant::now(),
            ops: Mutex::new(Vec::new()),
            acked: Mutex::new(Vec::new()),
            ack_times: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
        })
    }

    pub fn now(&self) -> u64 {
        self.origin.elapsed().as_nanos() as u64
    }

    fn record(&self, op: Op) {
        let write_ok = op.complete.is_some()
            && matches!(op.kind, OpKind::Put(_) | OpKind::Cas { ok: Some(true), .. });
        if write_ok {
            let v = match op.kind {
                OpKind::Put(v) | OpKind::Cas { new: v, .. } => v,
                OpKind::Get(_) => unreachable!(),
            };
            self.acked.lock().push((op.key, v));
            self.ack_times.lock().push(op.complete.unwrap_or(0));
        }
        self.ops.lock().push(op);
    }
}

/// A small xorshift generator: workloads are reproducible from their seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

pub fn etcd_key(k: u32) -> Bytes {
    Bytes::from(format!("/chaos/k{k}"))
}

fn decode(v: &[u8]) -> Option<u64> {
    std::str::from_utf8(v).ok()?.parse().ok()
}

/// One etcd-API client: runs until the recorder is stopped.
pub async fn etcd_client(
    rec: Arc<Recorder>,
    id: usize,
    members: Vec<String>,
    keys: u32,
    op_timeout: Duration,
) {
    let chans: Vec<KvClient<Channel>> = members
        .iter()
        .map(|m| KvClient::new(super::channel(m)))
        .collect();
    let mut rng = Rng::new(id as u64 + 1);
    let mut seq = 0u64;
    let mut last_seen: Vec<Option<u64>> = vec![None; keys as usize];
    while !rec.stop.load(Ordering::Relaxed) {
        let mut kv = chans[rng.below(chans.len() as u64) as usize].clone();
        let key = rng.below(keys as u64) as u32;
        let invoke = rec.now();
        match rng.below(10) {
            0..=3 => {
                seq += 1;
                let v = ((id as u64 + 1) << 32) | seq;
                let r = tokio::time::timeout(
                    op_timeout,
                    kv.put(PutRequest {
                        key: etcd_key(key),
                        value: Bytes::from(v.to_string()),
                        ..Default::default()
                    }),
                )
                .await;
                let complete = matches!(r, Ok(Ok(_))).then(|| rec.now());
                rec.record(Op {
                    client: id,
                    key,
                    kind: OpKind::Put(v),
                    invoke,
                    complete,
                });
            }
            4..=7 => {
                let r = tokio::time::timeout(
                    op_timeout,
                    kv.range(RangeRequest {
                        key: etcd_key(key),
                        ..Default::default()
                    }),
                )
                .await;
                if let Ok(Ok(resp)) = r {
                    let seen = resp
                        .into_inner()
                        .kvs
                        .first()
                        .and_then(|kv| decode(&kv.value));
                    last_seen[key as usize] = seen;
                    rec.record(Op {
                        client: id,
                        key,
                        kind: OpKind::Get(seen),
                        invoke,
                        complete: Some(rec.now()),
                    });
                }
            }
            _ => {
                seq += 1;
                let new = ((id as u64 + 1) << 32) | seq;
                let expect = last_seen[key as usize];
                let cmp = match expect {
                    Some(v) => Compare {
                        result: CompareResult::Equal as i32,
                        target: CompareTarget::Value as i32,
                        key: etcd_key(key),
                        target_union: Some(TargetUnion::Value(Bytes::from(v.to_string()))),
                        ..Default::default()
                    },
                    None => Compare {
                        result: CompareResult::Equal as i32,
                        target: CompareTarget::Create as i32,
                        key: etcd_key(key),
                        target_union: Some(TargetUnion::CreateRevision(0)),
                        ..Default::default()
                    },
                };
                let txn = TxnRequest {
                    compare: vec![cmp],
                    success: vec![RequestOp {
                        request: Some(Request::RequestPut(PutRequest {
                            key: etcd_key(key),
                            value: Bytes::from(new.to_string()),
                            ..Default::default()
                        })),
                    }],
                    failure: vec![],
                };
                let r = tokio::time::timeout(op_timeout, kv.txn(txn)).await;
                let (ok, complete) = match r {
                    Ok(Ok(resp)) => (Some(resp.into_inner().succeeded), Some(rec.now())),
                    _ => (None, None),
                };
                if ok == Some(true) {
                    last_seen[key as usize] = Some(new);
                }
                rec.record(Op {
                    client: id,
                    key,
                    kind: OpKind::Cas { expect, new, ok },
                    invoke,
                    complete,
                });
            }
        }
    }
}

/// One rkube-API client: reads a ConfigMap and updates it with its resourceVersion (a
/// compare-and-swap), or creates it when missing.
pub async fn api_client(
    rec: Arc<Recorder>,
    id: usize,
    members: Vec<String>,
    keys: u32,
    op_timeout: Duration,
) {
    let apis: Vec<Api<ConfigMap>> = members
        .iter()
        .map(|m| {
            Api::namespaced(
                super::access()
                    .api_client(std::slice::from_ref(m))
                    .with_failover_budget(Duration::ZERO),
                "default",
            )
        })
        .collect();
    let mut rng = Rng::new(1000 + id as u64);
    let mut seq = 0u64;
    while !rec.stop.load(Ordering::Relaxed) {
        let api = &apis[rng.below(apis.len() as u64) as usize];
        let k = rng.below(keys as u64) as u32;
        let key = API_KEY_BASE + k;
        let name = format!("chaos-k{k}");
        let invoke = rec.now();
        let got = match tokio::time::timeout(op_timeout, api.get_opt(&name)).await {
            Ok(Ok(g)) => g,
            _ => {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let seen = got
            .as_ref()
            .and_then(|c| c.data.as_ref()?.get("v")?.parse().ok());
        rec.record(Op {
            client: 100 + id,
            key,
            kind: OpKind::Get(seen),
            invoke,
            complete: Some(rec.now()),
        });
        seq += 1;
        let new = ((100 + id as u64) << 32) | seq;
        let invoke = rec.now();
        let r = match &got {
            Some(cur) => {
                let mut next = cur.clone();
                next.data = Some([("v".to_string(), new.to_string())].into());
                tokio::time::timeout(op_timeout, api.replace(&next)).await
            }
            None => {
                let cm: ConfigMap = serde_json::from_value(
                    json!({"metadata": {"name": name}, "data": {"v": new.to_string()}}),
                )
                .expect("configmap");
                tokio::time::timeout(op_timeout, api.create(&cm)).await
            }
        };
        let (ok, complete) = match r {
            Ok(Ok(_)) => (Some(true), Some(rec.now())),
            Ok(Err(e)) if e.is_conflict() || e.is_already_exists() => {
                (Some(false), Some(rec.now()))
            }
            _ => (None, None),
        };
        rec.record(Op {
            client: 100 + id,
            key,
            kind: OpKind::Cas {
                expect: seen,
                new,
                ok,
            },
            invoke,
            complete,
        });
    }
}
