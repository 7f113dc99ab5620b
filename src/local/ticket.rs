//! A claim on one key: a read's right to fill L1, `getOrSet`'s write-back
//! guard, a write or a sweep in flight.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::group::{Group, GroupState, Slot};
use super::Local;

pub(super) enum Kind {
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
    /// `invalidateTags` in flight: it learns its keys in Redis, and writes
    /// each as `del` does before deleting it ([`Ticket::write`]).
    Writer { origin: u64 },
}

/// A claim on one key: a read's right to fill L1 with what it returns, a
/// guard on `getOrSet`'s write-back, or a write in flight (until dropped,
/// after its reply).
pub struct Ticket {
    pub(super) group: Arc<Group>,
    pub(super) local: Option<Arc<Local>>,
    pub(super) key: Box<str>,
    pub(super) kind: Kind,
    pub(super) group_epoch: u64,
    pub(super) epoch: u64,
    pub(super) version: u64,
    pub(super) pushes: u64,
    /// A guard's baseline, shared with its read (see [`Link`]).
    pub(super) link: Option<Arc<Link>>,
    /// Taken while a write of the key (or a sweep) was in flight: never fresh.
    pub(super) tainted: bool,
}

/// What a guard is measured against, shared with the read it guards. Pushes
/// and flushes share one ordered stream with that read's reply, so while the
/// read is out they are about writes it will see: only those applied after
/// its reply spoil the guard.
pub(super) struct Link {
    /// Pushes of the key and the instance's epoch as of the read's reply
    /// (as of the guard, before it).
    pub(super) pushes: AtomicU64,
    pub(super) epoch: AtomicU64,
    /// Linked reads not answered yet.
    pub(super) reading: AtomicU32,
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

    /// A writer's write of `key` found in Redis (see [`Group::prepare`]'s
    /// `del`): dropped from every member's L1 and its reads and guards spoiled,
    /// now; the returned ticket lives until the delete's reply.
    pub fn write(&self, key: &str) -> Option<Ticket> {
        match self.kind {
            Kind::Writer { origin } => self.group.write(origin, key),
            _ => None,
        }
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
        match self.kind {
            Kind::Sweep => return state.sweeping.remove(),
            Kind::Writer { .. } => return,
            _ => {}
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
