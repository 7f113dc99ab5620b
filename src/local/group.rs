//! What the instances of one process on one Redis target and database share:
//! per-key versions, writes and sweeps in flight, and every member's L1.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use super::ticket::{Kind, Link, Ticket};
use super::{Local, MAX_TRACKED_MGET};
use crate::ops::Op;

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
pub(super) struct InFlight {
    pub(super) count: u32,
    /// The instance that made them, or [`MIXED`].
    pub(super) origin: u64,
}

const MIXED: u64 = u64::MAX;

impl InFlight {
    pub(super) fn add(&mut self, origin: u64) {
        self.origin = if self.count == 0 || self.origin == origin {
            origin
        } else {
            MIXED
        };
        self.count += 1;
    }

    pub(super) fn remove(&mut self) {
        self.count -= 1;
    }

    /// Whether a read by `origin` may have been answered before these writes landed.
    pub(super) fn taints(&self, origin: u64) -> bool {
        self.count > 0 && self.origin != origin
    }
}

/// A number for each instance's queue, naming the origin of its writes.
pub fn origin() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

#[derive(Default)]
pub(super) struct GroupState {
    /// Instances using the group (L1 or not; see [`Group::enter`]).
    pub(super) users: u32,
    /// Bumped by clears and pattern deletes of any member.
    pub(super) epoch: u64,
    /// Clears and pattern deletes in flight.
    pub(super) sweeping: InFlight,
    /// Keys with reads, guards or writes in flight.
    pub(super) slots: HashMap<Box<str>, Slot>,
    pub(super) members: Vec<Weak<Local>>,
}

#[derive(Default)]
pub(super) struct Slot {
    /// Bumped by every write of the key made in this process.
    pub(super) version: u64,
    /// Bumped by every tracking push naming the key.
    pub(super) pushes: u64,
    /// Live tickets of the key (reads, guards and writes).
    pub(super) holders: u32,
    /// Writes of the key in flight.
    pub(super) writing: InFlight,
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

impl Group {
    pub fn new() -> Arc<Self> {
        Arc::new(Group {
            state: Mutex::new(GroupState::default()),
        })
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, GroupState> {
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

    pub(super) fn join(&self, local: &Arc<Local>) {
        let mut state = self.lock();
        state.members.retain(|m| m.strong_count() > 0);
        state.members.push(Arc::downgrade(local));
    }

    pub(super) fn leave(&self, local: &Local) {
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
    pub(super) fn write(self: &Arc<Self>, origin: u64, key: &str) -> Option<Ticket> {
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

    /// What lets `invalidateTags` write the keys it finds as instance `origin`.
    fn writer(self: &Arc<Self>, origin: u64) -> Ticket {
        self.keyless(Kind::Writer { origin })
    }

    /// A ticket on no key (a writer, a sweep): its kind alone says what it holds.
    fn keyless(self: &Arc<Self>, kind: Kind) -> Ticket {
        Ticket {
            group: self.clone(),
            local: None,
            key: "".into(),
            kind,
            group_epoch: 0,
            epoch: 0,
            version: 0,
            pushes: 0,
            link: None,
            tainted: false,
        }
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
        self.keyless(Kind::Sweep)
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
            // Its keys are known in Redis only: the executor writes each before deleting it.
            Op::DelTags(_) => vec![self.writer(origin)],
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
            // Made by the executor only.
            Op::TagIndex { .. } | Op::Unsent { .. } => Vec::new(),
        }
    }
}
