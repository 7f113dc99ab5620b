//! `'memory'` mode: every call answered by the moka store alone, synchronously.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::human::bytes_to_human;
use crate::ops::{Answer, Op, Replies};
use crate::stats::Counters;
use crate::store::Store;
use crate::tags::TagIndex;

/// Applies `ops` in order and returns their replies.
pub fn apply(store: &Store, tags: &TagIndex, counters: &Counters, ops: Vec<Op>) -> Replies {
    let mut r = Replies::with_capacity(ops.len());
    let now = Instant::now();
    let text = |key: &str| store.get(key).map(|e| e.json.to_string());
    for op in ops {
        let shape = op.shape();
        let answer = match op {
            Op::Get(key) => Answer::texts(0.0, vec![text(&key)]),
            Op::GetTtl(key) => match store.get(&key) {
                Some(e) => {
                    let left = e.deadline.saturating_duration_since(now).as_millis();
                    Answer::texts(left as f64, vec![Some(e.json.to_string())])
                }
                None => Answer::texts(-2.0, vec![None]),
            },
            Op::Set {
                key,
                json,
                ttl_ms,
                tags: tagged,
            } => {
                let deadline = now + Duration::from_millis(ttl_ms);
                store.insert(&key, Arc::from(json), deadline);
                if let Some(t) = tagged {
                    tags.attach(store, &key, &t, deadline, now);
                }
                Answer::num(0.0)
            }
            Op::Del(keys) => {
                keys.iter().for_each(|k| store.remove(k));
                Answer::num(0.0)
            }
            Op::MGet(keys) => Answer::texts(0.0, keys.iter().map(|k| text(k)).collect()),
            Op::MSet { entries, ttl_ms } => {
                let deadline = now + Duration::from_millis(ttl_ms);
                for (key, json) in entries {
                    store.insert(&key, Arc::from(json), deadline);
                }
                Answer::num(0.0)
            }
            Op::Exists(key) => Answer::num(if store.get(&key).is_some() { 1.0 } else { 0.0 }),
            Op::Ttl(key) => Answer::num(match store.get(&key) {
                // Redis rounds the remaining milliseconds to the nearest second.
                Some(e) => {
                    ((e.deadline.saturating_duration_since(now).as_millis() + 500) / 1000) as f64
                }
                None => -2.0,
            }),
            Op::Ping => Answer::num(1.0),
            Op::Info => {
                let (entries, bytes) = store.size();
                Answer::texts(entries as f64, vec![Some(bytes_to_human(bytes))])
            }
            Op::Clear => {
                store.clear();
                tags.clear();
                Answer::num(0.0)
            }
            Op::DelPattern(pattern) => {
                store.remove_matching(&pattern);
                Answer::num(0.0)
            }
            Op::DelTags(list) => Answer::num(tags.invalidate(store, &list, now) as f64),
            Op::StoreIf {
                key,
                json,
                ttl_ms,
                expect,
                tags: tagged,
            } => {
                // As `SET NX` (nothing expected) or the compare-and-set script decides it.
                let held = store.get(&key);
                let still = expect.as_deref() == held.as_ref().map(|e| &*e.json);
                if still {
                    let deadline = now + Duration::from_millis(ttl_ms);
                    store.insert(&key, Arc::from(json), deadline);
                    if let Some(t) = tagged {
                        tags.attach(store, &key, &t, deadline, now);
                    }
                } else {
                    Counters::add(&counters.superseded, 1);
                }
                Answer::num(if still { 1.0 } else { 0.0 })
            }
            Op::TagIndex { .. } | Op::Unsent { .. } => unreachable!("made by the Redis executor"),
            // One process: getOrSet's in-process single flight is the whole lock.
            Op::LockTake { .. } | Op::LockRenew { .. } | Op::LockRelease { .. } => Answer::num(1.0),
        };
        r.push(shape, Ok(answer));
    }
    r
}
