//! Fail-safe copies for `getOrSet(…, { grace })`: the last value of a key read
//! or written through such a call, kept in process for `ttl + grace`.
//!
//! Apart from L1 on purpose. L1 must drop a key the moment Redis says it
//! changed; a fail-safe copy must survive exactly that, because it is only
//! answered when the fresh value cannot be had (the factory failed or timed
//! out, Redis is unreachable). `index.js` consults it on those paths only, so
//! a copy is never served over a value Redis holds and this instance can read.
//! Nothing here touches Redis: the main key's bytes and TTL stay the original's.

use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::sync::Cache;

use crate::store::{settled_size, weight, ByDeadline, Deadline};

pub struct Copy {
    pub json: Arc<str>,
    /// When the key expires in its tier, when known (own write, `PTTL` read, `'memory'` store).
    pub expires: Option<Instant>,
    /// When this copy is dropped: `ttl + grace` after it was last read or written.
    pub keep_until: Instant,
}

impl Deadline for Copy {
    fn deadline(&self) -> Instant {
        self.keep_until
    }
}

/// A copy is re-kept on a hit only when its `keep_until` lags by more than
/// this: a hot key costs one moka insert a second, not one per hit.
const REKEEP_SLACK: Duration = Duration::from_secs(1);

pub struct Grace {
    cache: Cache<Arc<str>, Arc<Copy>>,
    max_bytes: u64,
}

impl Grace {
    /// A store bounded like L1: keys plus JSON text, in bytes.
    pub fn new(max_bytes: u64) -> Self {
        let cache = Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|k: &Arc<str>, v: &Arc<Copy>| {
                u32::try_from(weight(k, &v.json)).unwrap_or(u32::MAX)
            })
            .expire_after(ByDeadline)
            .build();
        Grace { cache, max_bytes }
    }

    /// The copy of `key`, unless it was dropped.
    pub fn get(&self, key: &str) -> Option<Arc<Copy>> {
        let copy = self.cache.get(key)?;
        (copy.keep_until > Instant::now()).then_some(copy)
    }

    /// Keeps `json` as the last value of `key` until `keep_until`.
    pub fn keep(&self, key: &str, json: Arc<str>, expires: Option<Instant>, keep_until: Instant) {
        let w = weight(key, &json);
        if w > self.max_bytes || w > u32::MAX as u64 || keep_until <= Instant::now() {
            self.cache.invalidate(key);
            return;
        }
        self.cache.insert(
            Arc::from(key),
            Arc::new(Copy {
                json,
                expires,
                keep_until,
            }),
        );
    }

    /// A hit served `json` (expiring at `expires` when the tier knows): keeps
    /// it as the copy and returns when the key expires, if known.
    pub fn on_hit(
        &self,
        key: &str,
        json: &Arc<str>,
        expires: Option<Instant>,
        keep_until: Instant,
    ) -> Option<Instant> {
        match self.get(key) {
            Some(copy) if copy.json == *json => {
                let expires = expires.or(copy.expires);
                if copy.keep_until + REKEEP_SLACK < keep_until || expires != copy.expires {
                    self.keep(key, copy.json.clone(), expires, keep_until);
                }
                expires
            }
            _ => {
                // Another writer's value (read by a plain get, say): its expiry
                // is not known here unless the tier says so.
                self.keep(key, json.clone(), expires, keep_until);
                expires
            }
        }
    }

    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    pub fn clear(&self) {
        self.cache.invalidate_all();
    }

    /// Entries and bytes after moka has applied pending evictions and expiries.
    pub fn size(&self) -> (u64, u64) {
        settled_size(&self.cache)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn later(ms: u64) -> Instant {
        Instant::now() + Duration::from_millis(ms)
    }

    #[test]
    fn a_copy_lives_until_keep_until_only() {
        let g = Grace::new(1 << 20);
        g.keep("k", Arc::from("1"), None, later(30));
        assert_eq!(&*g.get("k").unwrap().json, "1");
        std::thread::sleep(Duration::from_millis(40));
        assert!(g.get("k").is_none());
    }

    #[test]
    fn stays_within_max_bytes() {
        let g = Grace::new(10_000);
        let v: Arc<str> = Arc::from("x".repeat(100));
        for i in 0..1_000 {
            g.keep(&format!("key{i:04}"), v.clone(), None, later(60_000));
        }
        assert!(g.size().1 <= 10_000);
    }

    #[test]
    fn a_hit_on_the_same_value_keeps_its_known_expiry() {
        let g = Grace::new(1 << 20);
        let json: Arc<str> = Arc::from("\"v\"");
        let expires = later(5_000);
        g.keep("k", json.clone(), Some(expires), later(10_000));
        assert_eq!(
            g.on_hit("k", &Arc::from("\"v\""), None, later(10_000)),
            Some(expires)
        );
        // Another value: the copy follows it, its expiry unknown.
        assert_eq!(
            g.on_hit("k", &Arc::from("\"w\""), None, later(10_000)),
            None
        );
        assert_eq!(&*g.get("k").unwrap().json, "\"w\"");
    }
}
