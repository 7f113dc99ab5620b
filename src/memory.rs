//! `'memory'` mode: every call answered by the moka store alone, synchronously.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::human::bytes_to_human;
use crate::ops::{Op, Replies};
use crate::store::Store;

/// Applies `ops` in order and returns their replies.
pub fn apply(store: &Store, ops: Vec<Op>) -> Replies {
    let mut r = Replies::with_capacity(ops.len());
    let now = Instant::now();
    for op in ops {
        match op {
            Op::Get(key) => {
                r.texts.push(store.get(&key).map(|e| e.json.to_string()));
                r.done(0.0);
            }
            Op::Set { key, json, ttl_ms } => {
                store.insert(&key, Arc::from(json), now + Duration::from_millis(ttl_ms));
                r.done(0.0);
            }
            Op::Del(keys) => {
                keys.iter().for_each(|k| store.remove(k));
                r.done(0.0);
            }
            Op::MGet(keys) => {
                r.texts.extend(
                    keys.iter()
                        .map(|k| store.get(k).map(|e| e.json.to_string())),
                );
                r.done(0.0);
            }
            Op::MSet { entries, ttl_ms } => {
                let deadline = now + Duration::from_millis(ttl_ms);
                for (key, json) in entries {
                    store.insert(&key, Arc::from(json), deadline);
                }
                r.done(0.0);
            }
            Op::Exists(key) => r.done(if store.get(&key).is_some() { 1.0 } else { 0.0 }),
            Op::Ttl(key) => r.done(match store.get(&key) {
                // Redis rounds the remaining milliseconds to the nearest second.
                Some(e) => {
                    ((e.deadline.saturating_duration_since(now).as_millis() + 500) / 1000) as f64
                }
                None => -2.0,
            }),
            Op::Ping => r.done(1.0),
            Op::Info => {
                let (entries, bytes) = store.size();
                r.texts.push(Some(bytes_to_human(bytes)));
                r.done(entries as f64);
            }
            Op::Clear => {
                store.clear();
                r.done(0.0);
            }
            Op::DelPattern(pattern) => {
                store.remove_matching(&pattern);
                r.done(0.0);
            }
        }
    }
    r
}
