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
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
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
    /// Every instance of this process on the same Redis target and database.
    group: Arc<Group>,
    own: Mutex<Own>,
    counters: Arc<Counters>,
}

/// This instance's part: its epoch (bumped by its flushes: a disconnect, a
/// `FLUSHDB` push), its lock waiters and its doorkeeper.
#[derive(Default)]
struct Own {
    epoch: u64,
    /// `getOrSet` lock waiters (see [`Local::watch`]), woken by a tracking
    /// push naming one of their keys, or by a flush.
    watchers: HashMap<Box<str>, Vec<Arc<Notify>>>,
    doorkeeper: Option<Doorkeeper>,
}

/// What the instances of one process on one Redis target and database share,
/// so each sees the others' acknowledged writes at once, not through the
/// network: a write drops the key from every member's L1 when it is made and
/// spoils every read in flight of it (on any member), and a read taken while a
/// write of its key is in flight fills nothing (its connection may have
/// reached Redis first). Also what `getOrSet`'s write-back guard checks.
pub struct Group {
    state: Mutex<GroupState>,
}

/// Writes (or sweeps) in flight, and whose: a read sent on the writer's own
/// connection after the write is answered after it, so only another's taints it.
#[derive(Default)]
struct InFlight {
    count: u32,
    /// The instance that made them, or [`MIXED`].
    origin: u64,
}

const MIXED: u64 = u64::MAX;

impl InFlight {
    fn add(&mut self, origin: u64) {
        self.origin = if self.count == 0 || self.origin == origin {
            origin
        } else {
            MIXED
        };
        self.count += 1;
    }

    fn remove(&mut self) {
        self.count -= 1;
    }

    /// Whether a read by `origin` may have been answered before these writes landed.
    fn taints(&self, origin: u64) -> bool {
        self.count > 0 && self.origin != origin
    }
}

/// A number for each instance's queue, naming the origin of its writes.
pub fn origin() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

#[derive(Default)]
struct GroupState {
    /// Instances using the group (L1 or not; see [`Group::enter`]).
    users: u32,
    /// Bumped by clears and pattern deletes of any member.
    epoch: u64,
    /// Clears and pattern deletes in flight.
    sweeping: InFlight,
    /// Keys with reads, guards or writes in flight.
    slots: HashMap<Box<str>, Slot>,
    members: Vec<Weak<Local>>,
}

#[derive(Default)]
struct Slot {
    /// Bumped by every write of the key made in this process.
    version: u64,
    /// Bumped by every tracking push naming the key.
    pushes: u64,
    /// Live tickets of the key (reads, guards and writes).
    holders: u32,
    /// Writes of the key in flight.
    writing: InFlight,
}

/// The group of `target` (its identity: address and database), shared by
/// every instance of this process that uses it.
pub fn group(target: &str) -> Arc<Group> {
    static GROUPS: Mutex<Option<HashMap<String, Weak<Group>>>> = Mutex::new(None);
    let mut groups = GROUPS.lock().unwrap_or_else(|e| e.into_inner());
    let groups = groups.get_or_insert_with(HashMap::new);
    if let Some(g) = groups.get(target).and_then(Weak::upgrade) {
        return g;
    }
    groups.retain(|_, g| g.strong_count() > 0);
    let g = Group::new();
    groups.insert(target.to_string(), Arc::downgrade(&g));
    g
}

enum Kind {
    /// A read: lands only if nothing changed the key meanwhile; with a guard,
    /// tells it, when its reply is in, which pushes the read saw (`link`).
    Read,
    /// `getOrSet`'s write-back guard: spoiled by a write of the key made
    /// after it was taken, or a push (or flush) arriving after its read's
    /// reply ([`Link`]: pushes before that are about writes the read saw, our
    /// own included).
    Guard,
    /// A write in flight: reads of the key taken meanwhile fill nothing.
    Write,
    /// A clear or pattern delete in flight: no read taken meanwhile fills.
    Sweep,
}

/// A claim on one key: a read's right to fill L1 with what it returns, a
/// guard on `getOrSet`'s write-back, or a write in flight (until dropped,
/// after its reply).
pub struct Ticket {
    group: Arc<Group>,
    local: Option<Arc<Local>>,
    key: Box<str>,
    kind: Kind,
    group_epoch: u64,
    epoch: u64,
    version: u64,
    pushes: u64,
    /// A guard's baseline, shared with its read (see [`Link`]).
    link: Option<Arc<Link>>,
    /// Taken while a write of the key (or a sweep) was in flight: never fresh.
    tainted: bool,
}

/// What a guard is measured against, shared with the read it guards. Pushes
/// and flushes share one ordered stream with that read's reply, so while the
/// read is out they are about writes it will see: only those applied after
/// its reply spoil the guard.
struct Link {
    /// Pushes of the key and the instance's epoch as of the read's reply
    /// (as of the guard, before it).
    pushes: AtomicU64,
    epoch: AtomicU64,
    /// Linked reads not answered yet.
    reading: AtomicU32,
}

impl Group {
    pub fn new() -> Arc<Self> {
        Arc::new(Group {
            state: Mutex::new(GroupState::default()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, GroupState> {
        // A panic elsewhere must not turn every later call into one.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An instance starts queueing calls in this group; pair with [`Group::exit`].
    pub fn enter(&self) {
        self.lock().users += 1;
    }

    pub fn exit(&self) {
        let mut state = self.lock();
        state.users = state.users.saturating_sub(1);
    }

    fn join(&self, local: &Arc<Local>) {
        let mut state = self.lock();
        state.members.retain(|m| m.strong_count() > 0);
        state.members.push(Arc::downgrade(local));
    }

    fn leave(&self, local: &Local) {
        self.lock()
            .members
            .retain(|m| m.strong_count() > 0 && !std::ptr::eq(m.as_ptr(), local));
    }

    /// A read's (or guard's) ticket for `key` by instance `origin`, with L1 `local` (if any).
    pub fn ticket(self: &Arc<Self>, origin: u64, local: Option<&Arc<Local>>, key: &str) -> Ticket {
        let epoch = local.map_or(0, |l| l.own().epoch);
        let mut state = self.lock();
        let (group_epoch, swept) = (state.epoch, state.sweeping.taints(origin));
        let slot = state.slots.entry(key.into()).or_default();
        slot.holders += 1;
        Ticket {
            group: self.clone(),
            local: local.cloned(),
            key: key.into(),
            kind: Kind::Read,
            group_epoch,
            epoch,
            version: slot.version,
            pushes: slot.pushes,
            link: None,
            tainted: swept || slot.writing.taints(origin),
        }
    }

    /// `getOrSet`'s write-back guard of `key` (see [`Kind::Guard`]).
    pub fn guard(self: &Arc<Self>, origin: u64, local: Option<&Arc<Local>>, key: &str) -> Ticket {
        let mut t = self.ticket(origin, local, key);
        t.kind = Kind::Guard;
        t.link = Some(Arc::new(Link {
            pushes: AtomicU64::new(t.pushes),
            epoch: AtomicU64::new(t.epoch),
            reading: AtomicU32::new(0),
        }));
        t
    }

    /// Links `reads` (a guarded read's tickets) to `guard`.
    pub fn link(guard: &Ticket, reads: &mut [Ticket]) {
        let Some(link) = &guard.link else { return };
        for r in reads {
            link.reading.fetch_add(1, Ordering::AcqRel);
            r.link = Some(link.clone());
        }
    }

    /// `key` is being written: dropped from every member's L1 and every read
    /// of it in flight spoiled, now; reads taken until the write's reply is
    /// applied (the ticket dropped) fill nothing.
    ///
    /// With one instance in the group nobody else's read can overtake the
    /// write: no ticket, only the reads and guards in flight spoiled.
    fn write(self: &Arc<Self>, origin: u64, key: &str) -> Option<Ticket> {
        let mut state = self.lock();
        if state.users <= 1 {
            if let Some(slot) = state.slots.get_mut(key) {
                slot.version += 1;
            }
            for m in state.members.iter().filter_map(Weak::upgrade) {
                m.store.remove(key);
            }
            return None;
        }
        let slot = state.slots.entry(key.into()).or_default();
        slot.version += 1;
        slot.holders += 1;
        slot.writing.add(origin);
        let version = slot.version;
        for m in state.members.iter().filter_map(Weak::upgrade) {
            m.store.remove(key);
        }
        Some(Ticket {
            group: self.clone(),
            local: None,
            key: key.into(),
            kind: Kind::Write,
            group_epoch: state.epoch,
            epoch: 0,
            version,
            pushes: 0,
            link: None,
            tainted: false,
        })
    }

    /// Every key may change (a clear), or every key matching `pattern`:
    /// spoils the reads and guards in flight of those keys and empties the L1
    /// of every member but `except` (which drops the matching keys itself, off
    /// the JavaScript thread); until the returned ticket drops, other
    /// instances' reads fill nothing.
    fn sweep(
        self: &Arc<Self>,
        origin: u64,
        pattern: Option<&str>,
        except: Option<&Arc<Local>>,
    ) -> Ticket {
        let mut state = self.lock();
        match pattern {
            None => state.epoch += 1,
            Some(p) => state
                .slots
                .iter_mut()
                .filter(|(k, _)| crate::glob::matches(p.as_bytes(), k.as_bytes()))
                .for_each(|(_, slot)| slot.version += 1),
        }
        state.sweeping.add(origin);
        let members: Vec<Arc<Local>> = state.members.iter().filter_map(Weak::upgrade).collect();
        drop(state);
        for m in members {
            if !except.is_some_and(|e| Arc::ptr_eq(e, &m)) {
                m.store.hide_all();
            }
        }
        Ticket {
            group: self.clone(),
            local: None,
            key: "".into(),
            kind: Kind::Sweep,
            group_epoch: 0,
            epoch: 0,
            version: 0,
            pushes: 0,
            link: None,
            tainted: false,
        }
    }

    /// Local effects of a call, applied when it is made (in call order), for
    /// an instance with L1 `local` (or none): writes drop their keys from every
    /// member's L1 at once (so every instance of the process reads them even
    /// before they resolve) and spoil reads in flight; reads take tickets to
    /// fill L1 with what Redis answers.
    ///
    /// Writes do not fill L1 (no write-through): the next read does, tracked.
    /// Writing through needed `MULTI SET EXISTS EXEC` so the server would track
    /// the key with no gap for another writer; measured, that and the extra L1
    /// bookkeeping cost about 40 % of write throughput.
    pub fn prepare(
        self: &Arc<Self>,
        origin: u64,
        local: Option<&Arc<Local>>,
        op: &Op,
    ) -> Vec<Ticket> {
        let write = |key: &str| self.write(origin, key);
        match op {
            Op::Get(key) => match local {
                Some(l) if l.doorkeeper(|d| d.seen(key)) => vec![self.ticket(origin, local, key)],
                _ => Vec::new(),
            },
            // getOrSet: tracked always, as lock waiters and its write-back guard rely on its pushes.
            Op::GetTtl(key) => match local {
                Some(_) => vec![self.ticket(origin, local, key)],
                None => Vec::new(),
            },
            // Tracked (all keys) when any key was read before.
            Op::MGet(keys) if keys.len() <= MAX_TRACKED_MGET => match local {
                Some(l) if l.doorkeeper(|d| keys.iter().fold(false, |any, k| d.seen(k) | any)) => {
                    keys.iter().map(|k| self.ticket(origin, local, k)).collect()
                }
                _ => Vec::new(),
            },
            Op::Set { key, .. } | Op::StoreIf { key, .. } => write(key).into_iter().collect(),
            Op::MSet { entries, .. } => entries.iter().filter_map(|(k, _)| write(k)).collect(),
            Op::Del(keys) => keys.iter().filter_map(|k| write(k)).collect(),
            Op::Clear => vec![self.sweep(origin, None, None)],
            // This instance's matching entries are dropped by the executor before
            // it scans (a walk of L1 does not belong on the JavaScript thread).
            Op::DelPattern(pattern) => vec![self.sweep(origin, Some(pattern), local)],
            Op::LockTake { key, .. } | Op::LockRenew { key, .. } | Op::LockRelease { key, .. } => {
                write(key).into_iter().collect()
            }
            Op::MGet(_) | Op::Exists(_) | Op::Ttl(_) | Op::Ping | Op::Info => Vec::new(),
        }
    }
}

impl Local {
    pub fn new(
        max_bytes: u64,
        max_ttl: Duration,
        counters: Arc<Counters>,
        group: Arc<Group>,
    ) -> Arc<Self> {
        let doorkeeper_bytes = doorkeeper_bytes(max_bytes).min(max_bytes / 2);
        let local = Arc::new(Local {
            store: Store::new(
                max_bytes - doorkeeper_bytes - crate::board::memo_bytes(max_bytes),
                counters.clone(),
            ),
            doorkeeper_bytes,
            max_ttl,
            group: group.clone(),
            own: Mutex::new(Own::default()),
            counters,
        });
        group.join(&local);
        local
    }

    fn own(&self) -> MutexGuard<'_, Own> {
        self.own.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes a ticket for a read of `key` about to be sent (as instance 0).
    #[cfg(test)]
    pub fn ticket(self: &Arc<Self>, key: &str) -> Ticket {
        self.group.ticket(0, Some(self), key)
    }

    fn doorkeeper<T>(&self, f: impl FnOnce(&mut Doorkeeper) -> T) -> T {
        let mut own = self.own();
        let bytes = self.doorkeeper_bytes;
        f(own
            .doorkeeper
            .get_or_insert_with(|| Doorkeeper::new(bytes.max(8))))
    }

    /// `key` changed in Redis: drop it here and spoil reads of it in flight
    /// (on every member: they are about the same key in the same database).
    pub fn invalidate(&self, key: &str) {
        let mut state = self.group.lock();
        if let Some(slot) = state.slots.get_mut(key) {
            slot.pushes += 1;
        }
        self.store.remove(key);
    }

    /// Everything may have changed (flush, disconnect, reconnect): empty L1 and spoil every read in flight.
    pub fn flush(&self) {
        let mut own = self.own();
        own.epoch += 1;
        self.store.hide_all();
        for (_, waiters) in own.watchers.drain() {
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
        let mut own = self.own();
        for key in keys {
            own.watchers
                .entry(key.as_str().into())
                .or_default()
                .push(notify.clone());
        }
        notify
    }

    /// Drops a waiter [`Local::watch`] registered for `keys`.
    pub fn unwatch(&self, keys: &[String], notify: &Arc<Notify>) {
        let mut own = self.own();
        for key in keys {
            if let Some(waiters) = own.watchers.get_mut(key.as_str()) {
                waiters.retain(|n| !Arc::ptr_eq(n, notify));
                if waiters.is_empty() {
                    own.watchers.remove(key.as_str());
                }
            }
        }
    }

    /// `close()`: spoil every read in flight, leave the group and free every entry.
    pub fn close(&self) {
        self.own().epoch += 1;
        self.group.leave(self);
        self.store.close();
    }

    /// See [`Group::prepare`] (as instance 0).
    #[cfg(test)]
    pub fn prepare(self: &Arc<Self>, op: &Op) -> Vec<Ticket> {
        self.group.prepare(0, Some(self), op)
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

    /// Wakes the lock waiters of `key`: it changed in Redis.
    fn wake(&self, key: &str) {
        let mut own = self.own();
        if own.watchers.is_empty() {
            return;
        }
        if let Some(waiters) = own.watchers.remove(key) {
            waiters.iter().for_each(|n| n.notify_one());
        }
    }
}

impl Ticket {
    /// Whether nothing changed the key since the ticket was taken: no write
    /// or push of it, no flush of its instance, no clear or pattern delete.
    fn fresh_in(&self, state: &GroupState) -> bool {
        let Some(slot) = state.slots.get(&self.key) else {
            return false;
        };
        let unpushed = match (&self.kind, &self.link) {
            // Its read is still out: what arrived so far, that read will see.
            (Kind::Guard, Some(l)) if l.reading.load(Ordering::Acquire) > 0 => true,
            (Kind::Guard, Some(l)) => self.unpushed(
                slot,
                l.pushes.load(Ordering::Acquire),
                l.epoch.load(Ordering::Acquire),
            ),
            _ => self.unpushed(slot, self.pushes, self.epoch),
        };
        !self.tainted && state.epoch == self.group_epoch && slot.version == self.version && unpushed
    }

    /// Whether no push of the key and no flush of its instance came since `pushes` and `epoch`.
    fn unpushed(&self, slot: &Slot, pushes: u64, epoch: u64) -> bool {
        slot.pushes == pushes && self.local.as_ref().is_none_or(|l| l.own().epoch == epoch)
    }

    /// [`Ticket::fresh_in`], for `getOrSet`'s write-back guard.
    pub fn fresh(&self) -> bool {
        self.fresh_in(&self.group.lock())
    }

    /// Caches `json`, read from Redis at `sent_at` with `pttl_ms` left (`-1`: no expiry),
    /// unless the key was invalidated since the ticket was taken. Returns whether it landed.
    pub fn fill(self, json: Arc<str>, pttl_ms: i64, sent_at: Instant) -> bool {
        let Some(local) = self.local.clone() else {
            return false;
        };
        let ttl = match pttl_ms {
            -1 => local.max_ttl,
            ms if ms > 0 => Duration::from_millis(ms as u64).min(local.max_ttl),
            _ => return false,
        };
        // Under the group's lock, so no write or push can slip in between the check and the insert.
        let state = self.group.lock();
        let fresh = self.fresh_in(&state);
        if fresh {
            // Counted from when the read was sent, so L1 never outlives the key in Redis.
            local.store.insert(&self.key, json, sent_at + ttl);
        }
        fresh
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut state = self.group.lock();
        if let Kind::Sweep = self.kind {
            state.sweeping.remove();
            return;
        }
        if let Some(slot) = state.slots.get_mut(&self.key) {
            if let (Kind::Read, Some(link)) = (&self.kind, &self.link) {
                // The guarded read's reply is in: pushes and flushes so far are about what it saw.
                link.pushes.store(slot.pushes, Ordering::Release);
                if let Some(l) = &self.local {
                    link.epoch.store(l.own().epoch, Ordering::Release);
                }
                link.reading.fetch_sub(1, Ordering::AcqRel);
            }
            slot.holders -= 1;
            if let Kind::Write = self.kind {
                slot.writing.remove();
            }
            if slot.holders == 0 {
                state.slots.remove(&self.key);
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
            Group::new(),
        )
    }

    #[test]
    fn fill_lands_when_nothing_happened() {
        let l = local();
        let t = l.ticket("k");
        assert!(t.fill(Arc::from("1"), -1, Instant::now()));
        assert_eq!(&*l.store.get("k").unwrap().json, "1");
        assert!(l.group.lock().slots.is_empty(), "the slot is released");
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
        let only = l.prepare(&Op::Del(vec!["x".into()]));
        assert!(only.is_empty(), "one instance: no write ticket to take");
        // Two instances from here on.
        l.group.enter();
        l.group.enter();
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
            !l.ticket("k").tainted,
            "a read on the writer's own connection is answered after the write"
        );
        assert!(
            l.group.ticket(1, Some(&l), "k").tainted,
            "another instance's read taken while the write is in flight must not fill"
        );
        drop(tickets);
        assert!(l.ticket("k").fill(Arc::from("2"), -1, Instant::now()));
    }

    #[test]
    fn a_pattern_delete_spoils_the_reads_in_flight_of_its_keys() {
        let l = local();
        let read = l.ticket("user:1");
        let other = l.ticket("post:1");
        l.prepare(&Op::DelPattern("user:*".into()));
        assert!(!read.fill(Arc::from("old"), -1, Instant::now()));
        assert!(other.fill(Arc::from("1"), -1, Instant::now()));
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
        assert!(l.own().watchers.is_empty());
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

    fn member(group: &Arc<Group>) -> Arc<Local> {
        Local::new(
            1 << 20,
            Duration::from_secs(60),
            Arc::new(Counters::default()),
            group.clone(),
        )
    }

    #[test]
    fn a_write_by_one_member_reaches_every_member_at_once() {
        let g = Group::new();
        g.enter();
        g.enter();
        let (a, b) = (member(&g), member(&g));
        assert!(a.ticket("k").fill(Arc::from("old"), -1, Instant::now()));
        let a_read = a.ticket("k");
        let write = g.prepare(1, None, &Op::Del(vec!["k".into()]));
        assert!(
            a.store.get("k").is_none(),
            "dropped from the other member's L1"
        );
        assert!(!a_read.fill(Arc::from("old"), -1, Instant::now()));
        assert!(
            !a.ticket("k").fill(Arc::from("old"), -1, Instant::now()),
            "a read taken while the write is in flight may have been answered before it"
        );
        drop(write);
        assert!(a.ticket("k").fill(Arc::from("new"), -1, Instant::now()));
        let sweep = g.prepare(2, Some(&b), &Op::Clear);
        assert!(a.store.get("k").is_none(), "a clear empties every member");
        assert!(!a.ticket("x").fill(Arc::from("1"), -1, Instant::now()));
        drop(sweep);
        b.close();
        assert!(a.ticket("x").fill(Arc::from("1"), -1, Instant::now()));
    }

    fn push(key: &str) -> Vec<Value> {
        vec![Value::Array(vec![Value::BulkString(
            key.as_bytes().to_vec(),
        )])]
    }

    #[test]
    fn what_arrives_while_the_guarded_read_is_out_is_what_it_will_see() {
        let g = Group::new();
        let l = member(&g);
        let guard = g.guard(0, Some(&l), "k");
        let mut read = g.prepare(0, Some(&l), &Op::GetTtl("k".into()));
        Group::link(&guard, &mut read);
        // The push of a write sent before the read, a clear's flush: ahead of its reply on the stream.
        l.on_invalidate(push("k"));
        l.on_invalidate(vec![Value::Nil]);
        assert!(guard.fresh(), "spoiled before its read's reply");
        drop(read);
        assert!(guard.fresh());
        l.flush();
        assert!(!guard.fresh(), "a flush after the read's reply");

        let guard = g.guard(0, Some(&l), "k");
        let mut read = g.prepare(0, Some(&l), &Op::GetTtl("k".into()));
        Group::link(&guard, &mut read);
        drop(g.prepare(0, Some(&l), &Op::Del(vec!["k".into()])));
        assert!(
            !guard.fresh(),
            "a write made after the guard, its read still out"
        );
    }

    #[test]
    fn a_guard_is_spoiled_by_writes_pushes_and_sweeps_only() {
        let g = Group::new();
        let l = member(&g);
        let guard = g.guard(0, Some(&l), "k");
        let mut read = g.prepare(0, Some(&l), &Op::GetTtl("k".into()));
        Group::link(&guard, &mut read);
        l.on_invalidate(vec![Value::Array(vec![Value::BulkString(b"k".to_vec())])]);
        drop(read);
        assert!(
            guard.fresh(),
            "a push before the read's reply is about a write it saw"
        );
        g.prepare(
            0,
            Some(&l),
            &Op::Set {
                key: "other".into(),
                json: "1".into(),
                ttl_ms: 9,
            },
        );
        assert!(guard.fresh());
        l.on_invalidate(vec![Value::Array(vec![Value::BulkString(b"k".to_vec())])]);
        assert!(!guard.fresh(), "a push for the key");
        let guard = g.guard(0, None, "k");
        drop(g.prepare(0, None, &Op::Del(vec!["k".into()])));
        assert!(!guard.fresh(), "a write made in this process");
        let guard = g.guard(0, None, "k");
        drop(g.prepare(0, None, &Op::DelPattern("*".into())));
        assert!(!guard.fresh(), "a pattern delete");
    }
}
