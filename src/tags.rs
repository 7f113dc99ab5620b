//! `'memory'` mode's tags: which keys each tag was written with, and until
//! when, as the Redis index keeps it (`redis/tags.rs`, docs/tags.md).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use crate::store::Store;

/// Entries below which the index is never pruned.
const PRUNE_FLOOR: usize = 1024;

#[derive(Default)]
pub struct TagIndex {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Per tag, its keys and when their tagged write's TTL passes.
    tags: HashMap<Box<str>, HashMap<Box<str>, Instant>>,
    /// Entries over all tags.
    entries: usize,
    /// Entries at which the next prune runs: twice what the last one kept,
    /// so pruning costs O(1) per write and the index stays within twice the
    /// keys whose tagged write's TTL has not passed.
    prune_at: usize,
}

impl TagIndex {
    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `key` was written with `tags`, to expire at `deadline`.
    pub fn attach(&self, key: &str, tags: &[String], deadline: Instant, now: Instant) {
        let mut inner = self.inner();
        for tag in tags {
            let keys = inner.tags.entry(tag.as_str().into()).or_default();
            if keys.insert(key.into(), deadline).is_none() {
                inner.entries += 1;
            }
        }
        if inner.entries > inner.prune_at.max(PRUNE_FLOOR) {
            inner.prune(now);
        }
    }

    /// Deletes from `store` every key that carries one of `tags`; how many were there.
    pub fn invalidate(&self, store: &Store, tags: &[String], now: Instant) -> u64 {
        let mut deleted = 0;
        for tag in tags {
            let Some(keys) = self.take(tag) else { continue };
            for (key, deadline) in keys {
                if deadline > now && store.get_at(&key, now).is_some() {
                    store.remove(&key);
                    deleted += 1;
                }
            }
        }
        deleted
    }

    /// `clear()`: every key is gone, so is every tag.
    pub fn clear(&self) {
        *self.inner() = Inner::default();
    }

    fn take(&self, tag: &str) -> Option<HashMap<Box<str>, Instant>> {
        let mut inner = self.inner();
        let keys = inner.tags.remove(tag)?;
        inner.entries -= keys.len();
        Some(keys)
    }

    /// Entries held (for tests of the bound).
    #[cfg(test)]
    fn entries(&self) -> usize {
        self.inner().entries
    }
}

impl Inner {
    fn prune(&mut self, now: Instant) {
        self.tags.retain(|_, keys| {
            keys.retain(|_, deadline| *deadline > now);
            !keys.is_empty()
        });
        self.entries = self.tags.values().map(HashMap::len).sum();
        self.prune_at = self.entries * 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Counters;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn invalidating_deletes_live_tagged_keys_once() {
        let store = Store::new(1 << 20, Arc::new(Counters::default()));
        let index = TagIndex::default();
        let now = Instant::now();
        let later = now + Duration::from_secs(60);
        for k in ["a", "b", "c"] {
            store.insert(k, Arc::from("1"), later);
        }
        index.attach("a", &["x".into(), "y".into()], later, now);
        index.attach("b", &["y".into()], later, now);
        assert_eq!(index.invalidate(&store, &["x".into(), "y".into()], now), 2);
        assert!(store.get("a").is_none() && store.get("b").is_none());
        assert!(store.get("c").is_some());
        assert_eq!(index.entries(), 0);
    }

    #[test]
    fn expired_entries_are_pruned_as_the_index_grows() {
        let index = TagIndex::default();
        let now = Instant::now();
        let gone = now + Duration::from_millis(1);
        let later = now + Duration::from_secs(1);
        for i in 0..100_000 {
            let tag = format!("t{}", i % 5000);
            index.attach(&format!("k{i}"), &[tag], gone, later);
        }
        assert!(index.entries() <= 2 * PRUNE_FLOOR, "{}", index.entries());
    }
}
