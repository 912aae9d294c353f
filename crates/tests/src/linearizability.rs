//! A linearizability checker for key-value histories: Wing & Gong's search with Lowe's
//! just-in-time linearization and memoization of (linearized set, state), as porcupine
//! does it, run per key (a register per key is P-compositional).
//!
//! Operations whose outcome the client never learned (a timeout, a broken connection) stay
//! pending until the end of time: they may take effect at any point after their call, so
//! they never make a history look wrong that is not.

use std::collections::{BTreeMap, HashSet};

/// One operation on one key, as a client saw it. Times are nanoseconds from any common
/// origin; `complete: None` means the outcome is unknown.
#[derive(Clone, Debug, PartialEq)]
pub struct Op {
    pub client: usize,
    pub key: u32,
    pub kind: OpKind,
    pub invoke: u64,
    pub complete: Option<u64>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum OpKind {
    /// Writes a value.
    Put(u64),
    /// Read the value (None: the key did not exist).
    Get(Option<u64>),
    /// Writes `new` if the value is `expect`; `ok` is the outcome (None: unknown).
    Cas {
        expect: Option<u64>,
        new: u64,
        ok: Option<bool>,
    },
}

/// A register: the value of one key. Returns the next state when `op` is legal in `s`.
fn step(s: Option<u64>, op: &OpKind) -> Option<Option<u64>> {
    match op {
        OpKind::Put(v) => Some(Some(*v)),
        OpKind::Get(seen) => (*seen == s).then_some(s),
        OpKind::Cas { expect, new, ok } => {
            let applies = s == *expect;
            match ok {
                Some(true) if applies => Some(Some(*new)),
                Some(false) if !applies => Some(s),
                None if applies => Some(Some(*new)),
                None => Some(s),
                _ => None,
            }
        }
    }
}

/// The outcome of a check.
#[derive(Debug, PartialEq)]
pub enum Verdict {
    Linearizable,
    /// The search for a key exceeded its budget of explored states without an answer.
    Inconclusive {
        key: u32,
        ops: usize,
    },
    /// A key whose history has no linearization, with its operations in call order.
    Violation {
        key: u32,
        ops: Vec<Op>,
    },
}

/// Checks a whole history, key by key.
pub fn check(history: &[Op]) -> Verdict {
    let mut by_key: BTreeMap<u32, Vec<Op>> = BTreeMap::new();
    for op in history {
        by_key.entry(op.key).or_default().push(op.clone());
    }
    for (key, mut ops) in by_key {
        ops.sort_by_key(|o| o.invoke);
        match search(&ops, SEARCH_BUDGET) {
            Some(true) => {}
            Some(false) => {
                return Verdict::Violation {
                    key,
                    ops: shortest_violation(ops),
                }
            }
            None => {
                return Verdict::Inconclusive {
                    key,
                    ops: ops.len(),
                }
            }
        }
    }
    Verdict::Linearizable
}

/// Drops operations from the front and back while the rest still has no linearization, so
/// a report shows as little as possible.
fn shortest_violation(mut ops: Vec<Op>) -> Vec<Op> {
    while ops.len() > 1 && !check_key(&ops[1..]) {
        ops.remove(0);
    }
    while ops.len() > 1 && !check_key(&ops[..ops.len() - 1]) {
        ops.pop();
    }
    ops
}

#[derive(Clone, Copy)]
struct Entry {
    op: usize,
    is_call: bool,
    prev: usize,
    next: usize,
    /// For a call: the index of its return entry.
    partner: usize,
}

/// States (linearized set, value) the search may remember per key before it gives up.
const SEARCH_BUDGET: usize = 2_000_000;

/// Checks one key's operations, starting from an absent key.
pub fn check_key(ops: &[Op]) -> bool {
    search(ops, usize::MAX).unwrap_or(false)
}

/// The search; `None` when more than `budget` states were explored.
fn search(ops: &[Op], budget: usize) -> Option<bool> {
    // Entries: a call and a return per operation, sorted by time; calls sort before returns
    // at the same instant, so touching operations count as concurrent.
    let mut events: Vec<(u64, bool, usize)> = Vec::with_capacity(ops.len() * 2);
    for (i, op) in ops.iter().enumerate() {
        events.push((op.invoke, true, i));
        events.push((op.complete.unwrap_or(u64::MAX), false, i));
    }
    events.sort_by_key(|(t, call, i)| (*t, !*call, *i));
    let n = events.len();
    // Index 0 is the list head sentinel; entries live at 1..=n.
    let mut e: Vec<Entry> = Vec::with_capacity(n + 1);
    e.push(Entry {
        op: usize::MAX,
        is_call: false,
        prev: 0,
        next: 1,
        partner: 0,
    });
    let mut return_of = vec![0; ops.len()];
    for (k, (_, call, i)) in events.iter().enumerate() {
        let idx = k + 1;
        e.push(Entry {
            op: *i,
            is_call: *call,
            prev: idx - 1,
            next: if idx == n { 0 } else { idx + 1 },
            partner: 0,
        });
        if !call {
            return_of[*i] = idx;
        }
    }
    for idx in 1..=n {
        if e[idx].is_call {
            e[idx].partner = return_of[e[idx].op];
        }
    }
    let words = ops.len().div_ceil(64);
    let mut linearized = vec![0u64; words];
    let mut cache: HashSet<(Vec<u64>, Option<u64>)> = HashSet::new();
    let mut stack: Vec<(usize, Option<u64>)> = Vec::new();
    let mut state: Option<u64> = None;
    let mut cur = e[0].next;

    let unlink = |e: &mut Vec<Entry>, idx: usize| {
        let (p, nx) = (e[idx].prev, e[idx].next);
        e[p].next = nx;
        if nx != 0 {
            e[nx].prev = p;
        }
    };
    let relink = |e: &mut Vec<Entry>, idx: usize| {
        let (p, nx) = (e[idx].prev, e[idx].next);
        e[p].next = idx;
        if nx != 0 {
            e[nx].prev = idx;
        }
    };

    while e[0].next != 0 {
        if cur != 0 && e[cur].is_call {
            let op = e[cur].op;
            if let Some(next_state) = step(state, &ops[op].kind) {
                let mut lin = linearized.clone();
                lin[op / 64] |= 1 << (op % 64);
                if cache.len() > budget {
                    return None;
                }
                if cache.insert((lin.clone(), next_state)) {
                    stack.push((cur, state));
                    state = next_state;
                    linearized = lin;
                    let ret = e[cur].partner;
                    unlink(&mut e, ret);
                    unlink(&mut e, cur);
                    cur = e[0].next;
                    continue;
                }
            }
            cur = e[cur].next;
        } else {
            // A return reached before its call was linearized, or the end: backtrack.
            let Some((call, prev_state)) = stack.pop() else {
                return Some(false);
            };
            state = prev_state;
            let op = e[call].op;
            linearized[op / 64] &= !(1 << (op % 64));
            let ret = e[call].partner;
            relink(&mut e, call);
            relink(&mut e, ret);
            cur = e[call].next;
        }
    }
    Some(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(client: usize, kind: OpKind, invoke: u64, complete: Option<u64>) -> Op {
        Op {
            client,
            key: 1,
            kind,
            invoke,
            complete,
        }
    }

    #[test]
    fn sequential_and_concurrent_histories_that_are_linearizable() {
        let h = vec![
            op(0, OpKind::Put(1), 0, Some(10)),
            op(1, OpKind::Get(Some(1)), 20, Some(30)),
            op(
                0,
                OpKind::Cas {
                    expect: Some(1),
                    new: 2,
                    ok: Some(true),
                },
                40,
                Some(50),
            ),
            op(
                1,
                OpKind::Cas {
                    expect: Some(1),
                    new: 3,
                    ok: Some(false),
                },
                60,
                Some(70),
            ),
            op(1, OpKind::Get(Some(2)), 80, Some(90)),
        ];
        assert_eq!(check(&h), Verdict::Linearizable);
        // Overlapping put and get may see either value.
        let h = vec![
            op(0, OpKind::Put(1), 0, Some(10)),
            op(0, OpKind::Put(2), 20, Some(40)),
            op(1, OpKind::Get(Some(1)), 25, Some(35)),
            op(2, OpKind::Get(Some(2)), 30, Some(50)),
        ];
        assert_eq!(check(&h), Verdict::Linearizable);
        // A get of a never-acknowledged put: the put may have happened.
        let h = vec![
            op(0, OpKind::Put(7), 0, None),
            op(1, OpKind::Get(None), 5, Some(6)),
            op(1, OpKind::Get(Some(7)), 100, Some(110)),
        ];
        assert_eq!(check(&h), Verdict::Linearizable);
    }

    #[test]
    fn stale_reads_lost_writes_and_double_cas_are_violations() {
        // A read after a completed write sees the old value: a stale read.
        let h = vec![
            op(0, OpKind::Put(1), 0, Some(10)),
            op(0, OpKind::Put(2), 20, Some(30)),
            op(1, OpKind::Get(Some(1)), 40, Some(50)),
        ];
        assert!(matches!(check(&h), Verdict::Violation { key: 1, .. }));
        // An acknowledged write that a later read does not see.
        let h = vec![
            op(0, OpKind::Put(5), 0, Some(10)),
            op(1, OpKind::Get(None), 20, Some(30)),
        ];
        assert!(matches!(check(&h), Verdict::Violation { .. }));
        // Two CAS from the same value both succeed.
        let h = vec![
            op(0, OpKind::Put(1), 0, Some(10)),
            op(
                1,
                OpKind::Cas {
                    expect: Some(1),
                    new: 2,
                    ok: Some(true),
                },
                20,
                Some(40),
            ),
            op(
                2,
                OpKind::Cas {
                    expect: Some(1),
                    new: 3,
                    ok: Some(true),
                },
                25,
                Some(45),
            ),
        ];
        assert!(matches!(check(&h), Verdict::Violation { .. }));
        // Reads going back in time between two clients.
        let h = vec![
            op(0, OpKind::Put(1), 0, Some(10)),
            op(0, OpKind::Put(2), 20, Some(100)),
            op(1, OpKind::Get(Some(2)), 30, Some(40)),
            op(2, OpKind::Get(Some(1)), 50, Some(60)),
        ];
        let v = check(&h);
        let Verdict::Violation { ops, .. } = v else {
            panic!("{v:?}")
        };
        assert!(ops.len() <= 4 && ops.iter().any(|o| o.kind == OpKind::Get(Some(1))));
    }

    #[test]
    fn keys_are_checked_separately_and_many_ops_stay_fast() {
        let mut h = Vec::new();
        let mut t = 0;
        for i in 0..2000u64 {
            for key in 0..4 {
                h.push(Op {
                    client: key as usize,
                    key,
                    kind: OpKind::Put(i),
                    invoke: t,
                    complete: Some(t + 15),
                });
                h.push(Op {
                    client: 10 + key as usize,
                    key,
                    kind: OpKind::Get(Some(i)),
                    invoke: t + 5,
                    complete: Some(t + 20),
                });
            }
            t += 10;
        }
        assert_eq!(check(&h), Verdict::Linearizable);
    }
}
