//! The moka tier: JSON text per key, weighed in bytes, each entry with its own deadline.
//!
//! One type serves both `'memory'` mode (where it is the whole cache) and the
//! L1 in front of Redis. Values stay JSON text so every read parses a fresh
//! object and callers never share one.

use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::notification::RemovalCause;
use moka::sync::Cache;
use moka::Expiry;

use crate::glob;
use crate::stats::Counters;

pub struct Entry {
    pub json: Arc<str>,
    /// Whether `json` is all ASCII, so it can cross to JavaScript as Latin-1.
    pub ascii: bool,
    /// When the entry stops being served.
    pub deadline: Instant,
}

struct ByDeadline;

impl Expiry<Arc<str>, Arc<Entry>> for ByDeadline {
    fn expire_after_create(
        &self,
        _key: &Arc<str>,
        value: &Arc<Entry>,
        created_at: Instant,
    ) -> Option<Duration> {
        Some(value.deadline.saturating_duration_since(created_at))
    }

    fn expire_after_update(
        &self,
        _key: &Arc<str>,
        value: &Arc<Entry>,
        updated_at: Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        Some(value.deadline.saturating_duration_since(updated_at))
    }
}

#[derive(Clone)]
pub struct Store {
    cache: Cache<Arc<str>, Arc<Entry>>,
    max_bytes: u64,
}

/// Weight of one entry: its key and its JSON text, in UTF-8 bytes.
pub fn weight(key: &str, json: &str) -> u64 {
    key.len() as u64 + json.len() as u64
}

impl Store {
    pub fn new(max_bytes: u64, counters: Arc<Counters>) -> Self {
        let cache = Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|k: &Arc<str>, v: &Arc<Entry>| {
                u32::try_from(weight(k, &v.json)).unwrap_or(u32::MAX)
            })
            .expire_after(ByDeadline)
            .eviction_listener(move |_k, _v, cause| {
                if cause == RemovalCause::Size {
                    Counters::add(&counters.local_evictions, 1);
                }
            })
            .build();
        Store { cache, max_bytes }
    }

    /// The live entry for `key`, if any. moka hides expired entries itself; the
    /// deadline check makes that exact rather than eventual.
    pub fn get(&self, key: &str) -> Option<Arc<Entry>> {
        let entry = self.cache.get(key)?;
        (entry.deadline > Instant::now()).then_some(entry)
    }

    /// Stores `json` until `deadline`. An entry that alone outweighs the bound,
    /// or whose deadline has passed, is not stored (and any older one is dropped).
    pub fn insert(&self, key: &str, json: Arc<str>, deadline: Instant) {
        if weight(key, &json) > self.max_bytes
            || weight(key, &json) > u32::MAX as u64
            || deadline <= Instant::now()
        {
            self.cache.invalidate(key);
            return;
        }
        self.cache.insert(
            Arc::from(key),
            Arc::new(Entry {
                ascii: json.is_ascii(),
                json,
                deadline,
            }),
        );
    }

    pub fn remove(&self, key: &str) {
        self.cache.invalidate(key);
    }

    pub fn clear(&self) {
        self.cache.invalidate_all();
    }

    /// Drops every entry whose key matches the Redis glob `pattern`.
    ///
    /// An explicit walk rather than moka's `invalidate_entries_if`: that one
    /// decides by timestamp whether an entry predates the predicate, and an
    /// entry written within the same clock tick could escape it.
    pub fn remove_matching(&self, pattern: &str) {
        let pattern = pattern.as_bytes();
        for (key, _) in self.cache.iter() {
            if glob::matches(pattern, key.as_bytes()) {
                self.cache.invalidate(&**key);
            }
        }
    }

    /// Entries and bytes after moka has applied pending evictions and expiries.
    pub fn size(&self) -> (u64, u64) {
        self.cache.run_pending_tasks();
        (self.cache.entry_count(), self.cache.weighted_size())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(max: u64) -> Store {
        Store::new(max, Arc::new(Counters::default()))
    }

    fn later(ms: u64) -> Instant {
        Instant::now() + Duration::from_millis(ms)
    }

    #[test]
    fn serves_until_deadline_only() {
        let s = store(1 << 20);
        s.insert("k", Arc::from("1"), later(30));
        assert_eq!(&*s.get("k").unwrap().json, "1");
        std::thread::sleep(Duration::from_millis(40));
        assert!(s.get("k").is_none());
    }

    #[test]
    fn stays_within_max_bytes() {
        let s = store(10_000);
        let v: Arc<str> = Arc::from("x".repeat(100));
        for i in 0..1_000 {
            s.insert(&format!("key{i:04}"), v.clone(), later(60_000));
        }
        let (_, bytes) = s.size();
        assert!(bytes <= 10_000, "weighted size {bytes} exceeds the bound");
    }

    #[test]
    fn oversized_entry_is_not_stored_and_drops_the_old_one() {
        let s = store(50);
        s.insert("k", Arc::from("small"), later(60_000));
        s.insert("k", Arc::from("y".repeat(100)), later(60_000));
        assert!(s.get("k").is_none());
    }

    #[test]
    fn remove_matching_leaves_no_match_behind_across_refills() {
        let s = store(1 << 20);
        let keys: Vec<String> = (0..400).map(|i| format!("k{i}-*-")).collect();
        for round in 0..300 {
            for k in &keys {
                s.insert(k, Arc::from("1"), later(60_000));
            }
            let pattern = if round % 2 == 0 { "**" } else { "k1*" };
            s.remove_matching(pattern);
            let left: Vec<&String> = keys
                .iter()
                .filter(|k| glob::matches(pattern.as_bytes(), k.as_bytes()) && s.get(k).is_some())
                .collect();
            assert!(left.is_empty(), "round {round}: {left:?} escaped {pattern}");
        }
    }

    #[test]
    fn remove_matching_uses_redis_globs() {
        let s = store(1 << 20);
        for k in ["user:1", "user:2", "post:1"] {
            s.insert(k, Arc::from("1"), later(60_000));
        }
        s.remove_matching("user:*");
        assert!(s.get("user:1").is_none() && s.get("user:2").is_none());
        assert!(s.get("post:1").is_some());
    }
}
