//! L1 in front of Redis: the moka store plus the rule that keeps it coherent.
//!
//! Every read that may fill L1 takes a [`Ticket`] before it is sent. An
//! invalidation of its key (a tracking push, a local write) bumps the key's
//! version; a flush or disconnect bumps the epoch. The fill lands only if
//! neither moved since the ticket was taken, and the check and the insert
//! happen under the same lock as invalidations, so a stale read can never
//! slip in behind the invalidation that made it stale.
//!
//! [`Group`] (`group.rs`) is what the instances of a process on one Redis
//! target share; [`Ticket`] (`ticket.rs`) is one claim on a key; the
//! doorkeeper (`doorkeeper.rs`) decides which reads are worth a ticket.

mod doorkeeper;
mod group;
#[cfg(test)]
mod tests;
mod ticket;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use redis::Value;
use tokio::sync::Notify;

use crate::stats::Counters;
use crate::store::Store;

pub use doorkeeper::doorkeeper_bytes;
use doorkeeper::Doorkeeper;
pub use group::{group, origin, Group};
pub use ticket::Ticket;

/// An `mget` of more keys than this is answered from Redis without filling L1:
/// its tickets and `PTTL`s would cost more than L1 saves, and one huge call
/// must not hold the executor past the bound.
pub const MAX_TRACKED_MGET: usize = 1000;

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
    pub fn prepare(self: &Arc<Self>, op: &crate::ops::Op) -> Vec<Ticket> {
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
