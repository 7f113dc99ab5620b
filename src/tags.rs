//! `'memory'` mode's tags: which keys each tag was written with, and until
//! when, as the Redis index keeps it (`redis/tags.rs`, docs/tags.md), bounded
//! by the store: an entry whose key the store no longer holds (evicted,
//! deleted, expired) is dropped, a few entries checked per write.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::store::Store;

/// Entries checked per entry written: more than one, so the queue of
/// entries to check shrinks to about twice the live ones.
const CHECKS: usize = 2;

#[derive(Default)]
pub struct TagIndex {
    inner: Mutex<Inner>,
}

struct Entry {
    deadline: Instant,
    /// Which of the key's turns in `queue` is current.
    turn: u64,
}

#[derive(Default)]
struct Inner {
    /// Per tag, its keys and when their tagged write's TTL passes.
    tags: HashMap<Arc<str>, HashMap<Arc<str>, Entry>>,
    /// Entries over all tags.
    entries: usize,
    /// Each entry's turn to be checked, oldest first; a turn whose entry was
    /// rewritten or dropped meanwhile is stale and skipped.
    queue: VecDeque<(Arc<str>, Arc<str>, u64)>,
    turns: u64,
}

impl TagIndex {
    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `key` (in `store` already) was written with `tags`, to expire at
    /// `deadline`; a longer entry of the key stays (a `getOrSet` write-back
    /// that lost must not shorten the winner's). Checks a few older entries.
    pub fn attach(
        &self,
        store: &Store,
        key: &str,
        tags: &[String],
        deadline: Instant,
        now: Instant,
    ) {
        let mut inner = self.inner();
        let key: Arc<str> = Arc::from(key);
        for tag in tags {
            let tag: Arc<str> = match inner.tags.get_key_value(tag.as_str()) {
                Some((t, _)) => t.clone(),
                None => Arc::from(tag.as_str()),
            };
            inner.turns += 1;
            let turn = inner.turns;
            let keys = inner.tags.entry(tag.clone()).or_default();
            match keys.get_mut(&key) {
                Some(e) if e.deadline >= deadline => continue,
                Some(e) => *e = Entry { deadline, turn },
                None => {
                    keys.insert(key.clone(), Entry { deadline, turn });
                    inner.entries += 1;
                }
            }
            inner.queue.push_back((tag, key.clone(), turn));
            for _ in 0..CHECKS {
                inner.check(store, now);
            }
        }
    }

    /// Deletes from `store` every key that carries one of `tags`; how many were there.
    pub fn invalidate(&self, store: &Store, tags: &[String], now: Instant) -> u64 {
        let mut deleted = 0;
        for tag in tags {
            let Some(keys) = self.take(tag) else { continue };
            for (key, e) in keys {
                if e.deadline > now && store.get_at(&key, now).is_some() {
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

    fn take(&self, tag: &str) -> Option<HashMap<Arc<str>, Entry>> {
        let mut inner = self.inner();
        let keys = inner.tags.remove(tag)?;
        inner.entries -= keys.len();
        if inner.entries == 0 {
            inner.queue = VecDeque::new();
        }
        Some(keys)
    }

    /// Entries held (for tests of the bound).
    #[cfg(test)]
    fn entries(&self) -> usize {
        self.inner().entries
    }
}

impl Inner {
    /// The oldest turn: a stale one goes; an entry whose time passed or whose
    /// key the store no longer holds is dropped; a live one waits its next turn.
    fn check(&mut self, store: &Store, now: Instant) {
        let Some((tag, key, turn)) = self.queue.pop_front() else {
            return;
        };
        let Some(keys) = self.tags.get_mut(&tag) else {
            return;
        };
        match keys.get(&key) {
            Some(e) if e.turn != turn => {}
            None => {}
            Some(e) if e.deadline > now && store.holds(&key) => {
                self.queue.push_back((tag, key, turn));
            }
            Some(_) => {
                keys.remove(&key);
                self.entries -= 1;
                if keys.is_empty() {
                    self.tags.remove(&tag);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Counters;
    use std::time::Duration;

    fn store(max_bytes: u64) -> Store {
        Store::new(max_bytes, Arc::new(Counters::default()))
    }

    #[test]
    fn invalidating_deletes_live_tagged_keys_once() {
        let store = store(1 << 20);
        let index = TagIndex::default();
        let now = Instant::now();
        let later = now + Duration::from_secs(60);
        for k in ["a", "b", "c"] {
            store.insert(k, Arc::from("1"), later);
        }
        index.attach(&store, "a", &["x".into(), "y".into()], later, now);
        index.attach(&store, "b", &["y".into()], later, now);
        assert_eq!(index.invalidate(&store, &["x".into(), "y".into()], now), 2);
        assert!(store.get("a").is_none() && store.get("b").is_none());
        assert!(store.get("c").is_some());
        assert_eq!(index.entries(), 0);
    }

    #[test]
    fn a_shorter_write_keeps_the_longer_entry() {
        let store = store(1 << 20);
        let index = TagIndex::default();
        let now = Instant::now();
        let long = now + Duration::from_secs(60);
        store.insert("k", Arc::from("1"), long);
        index.attach(&store, "k", &["x".into()], long, now);
        index.attach(
            &store,
            "k",
            &["x".into()],
            now + Duration::from_millis(10),
            now,
        );
        let after_short = now + Duration::from_secs(1);
        assert_eq!(index.invalidate(&store, &["x".into()], after_short), 1);
    }

    #[test]
    fn expired_entries_are_dropped_as_the_index_grows() {
        let store = store(1 << 20);
        let index = TagIndex::default();
        let now = Instant::now();
        let gone = now + Duration::from_millis(1);
        let later = now + Duration::from_secs(1);
        for i in 0..100_000 {
            let tag = format!("t{}", i % 5000);
            index.attach(&store, &format!("k{i}"), &[tag], gone, later);
        }
        assert!(index.entries() <= 2, "{}", index.entries());
    }

    #[test]
    fn entries_of_keys_the_store_evicted_are_dropped() {
        let store = store(64 << 10);
        let index = TagIndex::default();
        let now = Instant::now();
        let later = now + Duration::from_secs(3600);
        let mut most = 0;
        for i in 0..200_000 {
            let key = format!("key:{i}");
            store.insert(&key, Arc::from("1"), later);
            index.attach(&store, &key, &["one".into(), "two".into()], later, now);
            most = most.max(index.entries());
        }
        let (held, _) = store.size();
        // Two tags per key: at most about twice that per held key, at any time.
        assert!(held > 100 && held < 5000, "{held}");
        assert!(most <= 2 * 2 * 5000, "{most} entries for {held} keys");
        assert!(
            index.entries() <= 2 * 2 * held as usize + 64,
            "{} for {held}",
            index.entries()
        );
        let queued = index.inner().queue.len();
        assert!(queued <= 2 * index.entries() + 64, "{queued} turns");
    }
}
