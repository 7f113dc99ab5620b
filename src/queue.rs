//! Calls queued for the next batch: each applies its L1 effects when it is
//! queued, in call order (`Local::prepare`), and waits for `flush`/`runSync`.
//! Shared by `NativeCache`'s `queue*` methods and the hit path's
//! `localGetOrQueue` (`hits.rs`), which queues a read in the same crossing
//! that found no copy.

use std::sync::{Arc, Mutex, MutexGuard};

use crate::local::Ticket;
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
    counters: Arc<Counters>,
}

impl Queue {
    pub fn new(redis: Option<Arc<Shared>>, counters: Arc<Counters>) -> Self {
        Queue {
            pending: Mutex::default(),
            redis,
            counters,
        }
    }

    pub fn pending(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn push(&self, op: Op) {
        let tickets = match &self.redis {
            Some(shared) => {
                Counters::add(&self.counters.redis_calls, 1);
                shared.prepare(&op)
            }
            None => Vec::new(),
        };
        let mut pending = self.pending();
        pending.ops.push(op);
        pending.tickets.push(tickets);
    }

    /// Whether calls queued here go to Redis (else they run on the memory store).
    pub fn is_redis(&self) -> bool {
        self.redis.is_some()
    }
}
