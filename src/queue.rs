//! Calls queued for the next batch: each applies its L1 effects when it is
//! queued, in call order (`Local::prepare`), and waits for `flush`/`runSync`.
//! Shared by `NativeCache`'s `queue*` methods and the hit path's
//! `localGetOrQueue` (`hits.rs`), which queues a read in the same crossing
//! that found no copy.

use std::sync::{Arc, Mutex, MutexGuard};

use crate::local::{Group, Ticket};
use crate::ops::Op;
use crate::redis::Shared;
use crate::stats::Counters;

#[derive(Default)]
pub struct Pending {
    pub ops: Vec<Op>,
    pub tickets: Vec<Vec<Ticket>>,
}

pub struct Queue {
    pending: Mutex<Pending>,
    /// The Redis tier's shared state (`None` in `'memory'` mode).
    redis: Option<Arc<Shared>>,
    /// The instances of this process on the same Redis target and database (see `local/group.rs`).
    group: Arc<Group>,
    /// This instance among them.
    origin: u64,
    counters: Arc<Counters>,
}

impl Queue {
    pub fn new(redis: Option<Arc<Shared>>, group: Arc<Group>, counters: Arc<Counters>) -> Self {
        group.enter();
        Queue {
            pending: Mutex::default(),
            redis,
            group,
            origin: crate::local::origin(),
            counters,
        }
    }

    pub fn pending(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `op`, a read guarded by `guard` (see `Kind::Guard`).
    pub fn push_guarded(&self, op: Op, guard: Option<&Ticket>) {
        self.push_with(op, |tickets| {
            if let Some(g) = guard {
                Group::link(g, tickets);
            }
        });
    }

    pub fn push(&self, op: Op) {
        self.push_with(op, |_| ());
    }

    fn push_with(&self, op: Op, link: impl FnOnce(&mut [Ticket])) {
        let local = self.redis.as_ref().and_then(|shared| {
            Counters::add(&self.counters.redis_calls, 1);
            shared.l1()
        });
        let mut tickets = self.group.prepare(self.origin, local, &op);
        link(&mut tickets);
        let mut pending = self.pending();
        pending.ops.push(op);
        pending.tickets.push(tickets);
    }

    /// A guard for `getOrSet`'s write-back of `key` (see `Group::ticket`).
    pub fn guard(&self, key: &str) -> Ticket {
        let local = self.redis.as_ref().and_then(|shared| shared.l1());
        self.group.guard(self.origin, local, key)
    }
}

impl Drop for Queue {
    fn drop(&mut self) {
        self.group.exit();
    }
}

impl Queue {
    /// Whether calls queued here go to Redis (else they run on the memory store).
    pub fn is_redis(&self) -> bool {
        self.redis.is_some()
    }
}
