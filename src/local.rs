//! L1 in front of Redis: the moka store plus the rule that keeps it coherent.
//!
//! Every read that may fill L1 takes a [`Ticket`] before it is sent. An
//! invalidation of its key (a tracking push, a local write) bumps the key's
//! version; a flush or disconnect bumps the epoch. The fill lands only if
//! neither moved since the ticket was taken, and the check and the insert
//! happen under the same lock as invalidations, so a stale read can never
//! slip in behind the invalidation that made it stale.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use redis::Value;
use tokio::sync::Notify;

use crate::ops::Op;
use crate::stats::Counters;
use crate::store::Store;

/// An `mget` of more keys than this is answered from Redis without filling L1:
/// its tickets and `PTTL`s would cost more than L1 saves, and one huge call
/// must not hold the executor past the bound.
pub const MAX_TRACKED_MGET: usize = 1000;

/// The doorkeeper's largest size in bits (128 KiB): at 131,072 keys recorded,
/// when it starts over, a key never read before passes for seen about 5 % of
/// the time; at 50,000 keys, under 1 %.
const DOORKEEPER_BITS: usize = 1 << 20;

/// The doorkeeper's size for an L1 of `max_bytes`: a 32nd of it, a power of
/// two from 512 bytes to 128 KiB. It is taken off the store's budget, so
/// `maxBytes` bounds both.
pub fn doorkeeper_bytes(max_bytes: u64) -> u64 {
    let b = (max_bytes / 32).clamp(512, DOORKEEPER_BITS as u64 / 8);
    1 << (63 - b.leading_zeros())
}

/// Which keys were read recently (a Bloom filter of two bits per key, cleared
/// after `DOORKEEPER_BITS / 8` keys): L1 is filled only on a key's second read.
/// A first read sends `GET` alone, untracked, as the original does, so a
/// stream of keys read once costs Redis no `PTTL` and no tracking-table entry.
struct Doorkeeper {
    bits: Vec<u64>,
    size: usize,
    recorded: usize,
    hasher: RandomState,
}

impl Doorkeeper {
    fn new(bytes: u64) -> Self {
        Doorkeeper {
            bits: Vec::new(),
            // Whole 64-bit words, at least one: every bit `seen` picks is in `bits`.
            size: (bytes as usize / 8).max(1) * 64,
            recorded: 0,
            hasher: RandomState::new(),
        }
    }

    /// Records `key`; returns whether it was recorded before.
    fn seen(&mut self, key: &str) -> bool {
        if self.bits.is_empty() || self.recorded >= self.size / 8 {
            self.bits.clear();
            self.bits.resize(self.size / 64, 0);
            self.recorded = 0;
        }
        let h = self.hasher.hash_one(key);
        let mut seen = true;
        for bit in [h as usize, (h >> 32) as usize] {
            let bit = bit % self.size;
            let (word, mask) = (bit / 64, 1u64 << (bit % 64));
            seen &= self.bits[word] & mask != 0;
            self.bits[word] |= mask;
        }
        if !seen {
            self.recorded += 1;
        }
        seen
    }
}

pub struct Local {
    pub store: Store,
    doorkeeper_bytes: u64,
    max_ttl: Duration,
    fills: Mutex<Fills>,
    counters: Arc<Counters>,
}

#[derive(Default)]
struct Fills {
    epoch: u64,
    /// Keys with reads in flight: how many, and how often the key was invalidated meanwhile.
    slots: HashMap<Box<str>, Slot>,
    /// `getOrSet` lock waiters (see [`Local::watch`]), woken by a tracking
    /// push naming one of their keys, or by a flush.
    watchers: HashMap<Box<str>, Vec<Arc<Notify>>>,
    doorkeeper: Option<Doorkeeper>,
}

struct Slot {
    version: u64,
    readers: u32,
}

/// A claim to fill one key with what a read in flight returns.
pub struct Ticket {
    local: Arc<Local>,
    key: Box<str>,
    epoch: u64,
    version: u64,
}

impl Local {
    pub fn new(max_bytes: u64, max_ttl: Duration, counters: Arc<Counters>) -> Arc<Self> {
        let doorkeeper_bytes = doorkeeper_bytes(max_bytes).min(max_bytes / 2);
        Arc::new(Local {
            store: Store::new(
                max_bytes - doorkeeper_bytes - crate::board::memo_bytes(max_bytes),
                counters.clone(),
            ),
            doorkeeper_bytes,
            max_ttl,
            fills: Mutex::new(Fills::default()),
            counters,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Fills> {
        // A panic elsewhere must not turn every later call into one.
        self.fills.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes a ticket for a read of `key` about to be sent.
    pub fn ticket(self: &Arc<Self>, key: &str) -> Ticket {
        let mut fills = self.lock();
        let epoch = fills.epoch;
        let slot = fills.slots.entry(key.into()).or_insert(Slot {
            version: 0,
            readers: 0,
        });
        slot.readers += 1;
        Ticket {
            local: self.clone(),
            key: key.into(),
            epoch,
            version: slot.version,
        }
    }

    /// A ticket for a read of `key` if the key was read before (see [`Doorkeeper`]).
    fn ticket_if_seen(self: &Arc<Self>, key: &str) -> Vec<Ticket> {
        let seen = self.doorkeeper(|d| d.seen(key));
        if seen {
            vec![self.ticket(key)]
        } else {
            Vec::new()
        }
    }

    fn doorkeeper<T>(&self, f: impl FnOnce(&mut Doorkeeper) -> T) -> T {
        let mut fills = self.lock();
        let bytes = self.doorkeeper_bytes;
        f(fills
            .doorkeeper
            .get_or_insert_with(|| Doorkeeper::new(bytes.max(8))))
    }

    /// `key` changed in Redis (or is about to, by this instance): drop it and spoil reads in flight.
    pub fn invalidate(&self, key: &str) {
        let mut fills = self.lock();
        if let Some(slot) = fills.slots.get_mut(key) {
            slot.version += 1;
        }
        self.store.remove(key);
    }

    /// Everything may have changed (flush, disconnect, reconnect): empty L1 and spoil every read in flight.
    pub fn flush(&self) {
        let mut fills = self.lock();
        fills.epoch += 1;
        self.store.hide_all();
        for (_, waiters) in fills.watchers.drain() {
            waiters.iter().for_each(|n| n.notify_one());
        }
    }

    /// A waiter for the next tracking push naming one of `keys` (or a flush).
    /// Registered now, so a push that arrives before it is awaited still
    /// counts (`Notify` keeps the permit). The server sends a push only for
    /// keys this connection read since their last push: the caller reads them
    /// right after. Pair with [`Local::unwatch`].
    pub fn watch(&self, keys: &[String]) -> Arc<Notify> {
        let notify = Arc::new(Notify::new());
        let mut fills = self.lock();
        for key in keys {
            fills
                .watchers
                .entry(key.as_str().into())
                .or_default()
                .push(notify.clone());
        }
        notify
    }

    /// Drops a waiter [`Local::watch`] registered for `keys`.
    pub fn unwatch(&self, keys: &[String], notify: &Arc<Notify>) {
        let mut fills = self.lock();
        for key in keys {
            if let Some(waiters) = fills.watchers.get_mut(key.as_str()) {
                waiters.retain(|n| !Arc::ptr_eq(n, notify));
                if waiters.is_empty() {
                    fills.watchers.remove(key.as_str());
                }
            }
        }
    }

    /// `close()`: spoil every read in flight and free every entry.
    pub fn close(&self) {
        let mut fills = self.lock();
        fills.epoch += 1;
        self.store.close();
    }

    /// Local effects of a call, applied when it is made: writes drop their
    /// keys from L1 at once (so this instance reads its own writes even before
    /// they resolve) and spoil reads in flight; reads take tickets to fill L1
    /// with what Redis answers.
    ///
    /// Writes do not fill L1 (no write-through): the next read does, tracked.
    /// Writing through needed `MULTI SET EXISTS EXEC` so the server would track
    /// the key with no gap for another writer; measured, that and the extra L1
    /// bookkeeping cost about 40 % of write throughput.
    pub fn prepare(self: &Arc<Self>, op: &Op) -> Vec<Ticket> {
        match op {
            Op::Get(key) => self.ticket_if_seen(key),
            // getOrSet with options: tracked always, as lock waiters rely on its pushes.
            Op::GetTtl(key) => vec![self.ticket(key)],
            // Tracked (all keys) when any key was read before.
            Op::MGet(keys) if keys.len() <= MAX_TRACKED_MGET => {
                let seen = self.doorkeeper(|d| keys.iter().fold(false, |any, k| d.seen(k) | any));
                if seen {
                    keys.iter().map(|k| self.ticket(k)).collect()
                } else {
                    Vec::new()
                }
            }
            Op::Set { key, .. } => {
                self.invalidate(key);
                Vec::new()
            }
            Op::MSet { entries, .. } => {
                entries.iter().for_each(|(k, _)| self.invalidate(k));
                Vec::new()
            }
            Op::Del(keys) => {
                keys.iter().for_each(|k| self.invalidate(k));
                Vec::new()
            }
            Op::Clear => {
                self.flush();
                Vec::new()
            }
            // Spoil reads in flight now; the executor drops the matching entries
            // before it scans (a walk of L1 does not belong on the JavaScript thread).
            Op::DelPattern(_) => {
                self.lock().epoch += 1;
                Vec::new()
            }
            Op::LockTake { key, .. } | Op::LockRenew { key, .. } | Op::LockRelease { key, .. } => {
                self.invalidate(key);
                Vec::new()
            }
            Op::MGet(_) | Op::Exists(_) | Op::Ttl(_) | Op::Ping | Op::Info => Vec::new(),
        }
    }

    /// A tracking push: the keys it names changed in Redis; `null` means
    /// everything may have (`FLUSHALL`, `FLUSHDB`, a tracking table reset).
    pub fn on_invalidate(&self, data: Vec<Value>) {
        match data.into_iter().next() {
            Some(Value::Array(keys)) => {
                Counters::add(&self.counters.invalidations, keys.len() as u64);
                for key in keys {
                    if let Value::BulkString(bytes) = key {
                        let key = String::from_utf8_lossy(&bytes);
                        self.invalidate(&key);
                        self.wake(&key);
                    }
                }
            }
            _ => {
                Counters::add(&self.counters.flushes, 1);
                self.flush();
            }
        }
    }
}

impl Local {
    /// Wakes the lock waiters of `key`: it changed in Redis.
    fn wake(&self, key: &str) {
        let mut fills = self.lock();
        if fills.watchers.is_empty() {
            return;
        }
        if let Some(waiters) = fills.watchers.remove(key) {
            waiters.iter().for_each(|n| n.notify_one());
        }
    }
}

impl Ticket {
    /// Caches `json`, read from Redis at `sent_at` with `pttl_ms` left (`-1`: no expiry),
    /// unless the key was invalidated since the ticket was taken. Returns whether it landed.
    pub fn fill(self, json: Arc<str>, pttl_ms: i64, sent_at: Instant) -> bool {
        let ttl = match pttl_ms {
            -1 => self.local.max_ttl,
            ms if ms > 0 => Duration::from_millis(ms as u64).min(self.local.max_ttl),
            _ => return false,
        };
        let fills = self.local.lock();
        let fresh = fills.epoch == self.epoch
            && fills.slots.get(&self.key).map(|s| s.version) == Some(self.version);
        if fresh {
            // Counted from when the read was sent, so L1 never outlives the key in Redis.
            self.local.store.insert(&self.key, json, sent_at + ttl);
        }
        fresh
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut fills = self.local.lock();
        if let Some(slot) = fills.slots.get_mut(&self.key) {
            slot.readers -= 1;
            if slot.readers == 0 {
                fills.slots.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_doorkeeper_of_any_size_stays_in_bounds() {
        for bytes in [0, 1, 7, 9, 62, 500, 513, 4096] {
            let mut d = Doorkeeper::new(bytes);
            for i in 0..5000 {
                d.seen(&format!("k{i}"));
            }
            let mut again = Doorkeeper::new(bytes);
            again.seen("x");
            assert!(again.seen("x"), "a key read before is seen ({bytes} bytes)");
        }
    }

    fn local() -> Arc<Local> {
        Local::new(
            1 << 20,
            Duration::from_secs(60),
            Arc::new(Counters::default()),
        )
    }

    #[test]
    fn fill_lands_when_nothing_happened() {
        let l = local();
        let t = l.ticket("k");
        assert!(t.fill(Arc::from("1"), -1, Instant::now()));
        assert_eq!(&*l.store.get("k").unwrap().json, "1");
        assert!(l.lock().slots.is_empty(), "the slot is released");
    }

    #[test]
    fn invalidation_during_read_spoils_the_fill() {
        let l = local();
        let t = l.ticket("k");
        l.invalidate("k");
        assert!(!t.fill(Arc::from("old"), -1, Instant::now()));
        assert!(l.store.get("k").is_none());
    }

    #[test]
    fn flush_during_read_spoils_the_fill() {
        let l = local();
        let t = l.ticket("k");
        l.flush();
        assert!(!t.fill(Arc::from("old"), -1, Instant::now()));
    }

    #[test]
    fn invalidating_another_key_does_not_spoil() {
        let l = local();
        let t = l.ticket("k");
        l.invalidate("other");
        assert!(t.fill(Arc::from("1"), 5_000, Instant::now()));
    }

    #[test]
    fn a_later_read_of_the_same_key_still_fills() {
        let l = local();
        let early = l.ticket("k");
        l.invalidate("k");
        let late = l.ticket("k");
        assert!(!early.fill(Arc::from("old"), -1, Instant::now()));
        assert!(late.fill(Arc::from("new"), -1, Instant::now()));
        assert_eq!(&*l.store.get("k").unwrap().json, "new");
    }

    #[test]
    fn writes_drop_their_keys_and_spoil_reads_in_flight() {
        let l = local();
        let read = l.ticket("k");
        let tickets = l.prepare(&Op::Set {
            key: "k".into(),
            json: "2".into(),
            ttl_ms: 1000,
        });
        assert!(
            !read.fill(Arc::from("1"), -1, Instant::now()),
            "the older read must not land"
        );
        assert!(
            tickets.is_empty(),
            "writes do not fill L1; the next read does"
        );
    }

    #[test]
    fn a_pattern_delete_spoils_every_read_in_flight() {
        let l = local();
        let read = l.ticket("user:1");
        l.prepare(&Op::DelPattern("user:*".into()));
        assert!(!read.fill(Arc::from("old"), -1, Instant::now()));
    }

    #[test]
    fn huge_mgets_take_no_tickets() {
        let l = local();
        let keys: Vec<String> = (0..=MAX_TRACKED_MGET).map(|i| i.to_string()).collect();
        assert!(l.prepare(&Op::MGet(keys.clone())).is_empty());
        assert!(l.prepare(&Op::MGet(keys)).is_empty());
        assert!(l
            .prepare(&Op::MGet(vec!["a".into(), "b".into()]))
            .is_empty());
        assert_eq!(l.prepare(&Op::MGet(vec!["a".into(), "c".into()])).len(), 2);
    }

    #[test]
    fn only_a_second_read_takes_a_ticket() {
        let l = local();
        let get = |k: &str| l.prepare(&Op::Get(k.into())).len();
        assert_eq!(get("k"), 0, "a first read must not fill L1");
        assert_eq!(get("k"), 1);
        assert_eq!(get("other"), 0);
        assert_eq!(
            l.prepare(&Op::GetTtl("new".into())).len(),
            1,
            "getOrSet reads are always tracked"
        );
    }

    #[test]
    fn the_doorkeeper_forgets_and_rarely_errs() {
        let mut d = Doorkeeper::new(DOORKEEPER_BITS as u64 / 8);
        let n = 50_000;
        let false_seen = (0..n).filter(|i| d.seen(&format!("cold:{i}"))).count();
        assert!(
            false_seen < n / 50,
            "{false_seen} of {n} first reads passed for seen"
        );
        assert!(d.seen("cold:7"));
        for i in 0..DOORKEEPER_BITS / 8 {
            d.seen(&format!("other:{i}"));
        }
        assert!(!d.seen("cold:7"), "the doorkeeper must start over");
        assert_eq!(doorkeeper_bytes(64 << 20), 128 << 10);
        assert_eq!(doorkeeper_bytes(64 << 10), 2 << 10);
        assert_eq!(doorkeeper_bytes(0), 512);
    }

    #[test]
    fn tracking_pushes_invalidate_keys_and_null_flushes() {
        let l = local();
        l.store
            .insert("a", Arc::from("1"), Instant::now() + Duration::from_secs(9));
        l.store
            .insert("b", Arc::from("1"), Instant::now() + Duration::from_secs(9));
        l.on_invalidate(vec![Value::Array(vec![Value::BulkString(b"a".to_vec())])]);
        assert!(l.store.get("a").is_none() && l.store.get("b").is_some());
        let t = l.ticket("b");
        l.on_invalidate(vec![Value::Nil]);
        assert!(l.store.get("b").is_none());
        assert!(!t.fill(Arc::from("old"), -1, Instant::now()));
    }

    #[test]
    fn pushes_and_flushes_wake_watchers_of_their_keys_only() {
        let l = local();
        let keys = ["k".to_string(), "k:__lock".to_string()];
        let n = l.watch(&keys);
        let other = l.watch(&["x".to_string()]);
        l.invalidate("k"); // a local write is not a push
        l.on_invalidate(vec![Value::Array(vec![Value::BulkString(
            b"k:__lock".to_vec(),
        )])]);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let soon = |n: Arc<Notify>| {
            rt.block_on(async move {
                tokio::time::timeout(Duration::from_millis(20), n.notified())
                    .await
                    .is_ok()
            })
        };
        assert!(soon(n.clone()), "the permit was kept for a later await");
        assert!(!soon(other.clone()));
        l.unwatch(&keys, &n);
        l.flush();
        assert!(soon(other.clone()));
        assert!(l.lock().watchers.is_empty());
    }

    #[test]
    fn expiry_is_the_smaller_of_pttl_and_max_ttl() {
        let l = local();
        let sent = Instant::now();
        assert!(l.ticket("a").fill(Arc::from("1"), 10, sent));
        assert!(l.store.get("a").unwrap().deadline <= sent + Duration::from_millis(10));
        assert!(l.ticket("b").fill(Arc::from("1"), 10_000_000, sent));
        assert!(l.store.get("b").unwrap().deadline <= sent + Duration::from_secs(60));
        assert!(
            !l.ticket("c").fill(Arc::from("1"), -2, sent),
            "a missing key is not cached"
        );
    }
}
