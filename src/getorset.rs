//! `getOrSet`'s native half: its guarded read and write-back, the
//! distributed lease, waiting for a key to change, and the fail-safe copies
//! (`grace.rs`) with the eager-refresh check.

use std::sync::Arc;
use std::time::Instant;

use napi::bindgen_prelude::*;
use napi_derive::napi;

use crate::local::Ticket;
use crate::ops::{self, Op};
use crate::stats::Counters;
use crate::{invalid, millis, NativeCache, Tier};

#[napi]
impl NativeCache {
    /// `getOrSet`'s read: the value and its `PTTL` (the reply's number);
    /// with `guard` (`guardKey`), the read that guard's write-back depends on.
    #[napi]
    pub fn queue_get_ttl(&self, key: String, guard: Option<u32>) {
        let guards = self.guards();
        let guard = guard.and_then(|id| guards.held.get(&id));
        self.queue.push_guarded(Op::GetTtl(key), guard);
    }

    /// `getOrSet`'s lease: `SET lock_key token NX PX lease_ms`; number 1 when taken.
    #[napi]
    pub fn queue_lock_take(&self, lock_key: String, token: String, lease_ms: f64) -> Result<()> {
        let lease_ms = ops::ttl_ms(lease_ms).map_err(invalid)?;
        self.queue(Op::LockTake {
            key: lock_key,
            token,
            lease_ms,
        });
        Ok(())
    }

    /// Extends the lease if `token` still holds it (compare-and-`PEXPIRE`); number 1 if so.
    #[napi]
    pub fn queue_lock_renew(&self, lock_key: String, token: String, lease_ms: f64) -> Result<()> {
        let lease_ms = ops::ttl_ms(lease_ms).map_err(invalid)?;
        self.queue(Op::LockRenew {
            key: lock_key,
            token,
            lease_ms,
        });
        Ok(())
    }

    /// Releases the lease if `token` still holds it (compare-and-`DEL`); number 1 if so.
    #[napi]
    pub fn queue_lock_release(&self, lock_key: String, token: String) {
        self.queue(Op::LockRelease {
            key: lock_key,
            token,
        });
    }

    /// Resolves `true` when a tracking push names one of `keys` (or L1 is
    /// flushed: a disconnect, `FLUSHALL`), `false` after `ms`. Registered at
    /// the call, so a push arriving before the caller awaits still counts.
    /// Without tracking (`local: false`, a server that cannot track) it is a
    /// plain `ms` sleep: the caller polls.
    #[napi(ts_return_type = "Promise<boolean>")]
    pub fn wait_change<'env>(
        &self,
        env: &'env Env,
        keys: Vec<String>,
        ms: f64,
    ) -> Result<PromiseRaw<'env, bool>> {
        let local = match &self.tier {
            Tier::Redis { tier, .. } => tier.shared().l1().cloned(),
            Tier::Memory(_) => None,
        };
        let wait = millis(ms);
        let watch = local.map(|l| (l.watch(&keys), l));
        env.spawn_future(async move {
            Ok(match watch {
                Some((notify, local)) => {
                    let woke = tokio::time::timeout(wait, notify.notified()).await.is_ok();
                    local.unwatch(&keys, &notify);
                    woke
                }
                None => {
                    tokio::time::sleep(wait).await;
                    false
                }
            })
        })
    }

    /// Guards `getOrSet`'s write-back of `key`: taken before the miss (or
    /// the refresh's) read is queued; a write or delete of the key after this
    /// point (by this instance, another of this process, or anyone, through
    /// the tracking push of that read) spoils it. Give the id to
    /// `queueStoreIf`, or to `releaseGuard` when nothing is stored.
    #[napi]
    pub fn guard_key(&self, key: String) -> u32 {
        let ticket = self.queue.guard(&key);
        let mut guards = self.guards();
        guards.next = guards.next.wrapping_add(1);
        let id = guards.next;
        guards.held.insert(id, ticket);
        id
    }

    /// Whether nothing has spoiled guard `id` yet (a run started before a
    /// write is not joined).
    #[napi]
    pub fn guard_fresh(&self, id: u32) -> bool {
        self.guards().held.get(&id).is_some_and(Ticket::fresh)
    }

    #[napi]
    pub fn release_guard(&self, id: u32) {
        let ticket = self.guards().held.remove(&id);
        drop(ticket);
    }

    /// `getOrSet`'s write-back under guard `id`: queued (answering 1 if
    /// stored, 0 if not) unless the guard is spoiled already, when nothing is
    /// queued, the result counts as superseded and this returns `false`.
    /// Redis decides the rest: stored only while the key is still absent
    /// (`expect` null) or still holds `expect`.
    #[napi]
    pub fn queue_store_if(
        &self,
        key: String,
        json: String,
        ttl_ms: f64,
        id: u32,
        expect: Option<String>,
        tags: Option<Vec<String>>,
    ) -> Result<bool> {
        let ttl_ms = ops::ttl_ms(ttl_ms).map_err(invalid)?;
        let ticket = self.guards().held.remove(&id);
        if !ticket.as_ref().is_some_and(Ticket::fresh) {
            Counters::add(&self.counters.superseded, 1);
            return Ok(false);
        }
        // Released after the write's own ticket is taken: no gap for a read to fill.
        self.queue(Op::StoreIf {
            key,
            json,
            ttl_ms,
            expect,
            tags,
        });
        drop(ticket);
        Ok(true)
    }

    /// Keeps `json` as the fail-safe copy of `key` for `keep_ms`; the key
    /// expires in `expires_in_ms` (negative: no expiry, or not known).
    #[napi]
    pub fn grace_keep(&self, key: String, json: String, expires_in_ms: f64, keep_ms: f64) {
        let now = Instant::now();
        let expires = (expires_in_ms >= 0.0).then(|| now + millis(expires_in_ms));
        self.grace
            .keep(&key, Arc::from(json), expires, now + millis(keep_ms));
    }

    /// The fail-safe copy of `key`, if one is kept.
    #[napi]
    pub fn grace_get(&self, key: String) -> Option<String> {
        self.grace.get(&key).map(|c| c.json.to_string())
    }

    /// A `getOrSet` with options was just answered from this process's tier:
    /// keeps the value as the fail-safe copy for `keep_ms` and returns whether
    /// the key expires within `refresh_when_left_ms` (negative: never asked),
    /// which starts an eager refresh.
    #[napi]
    pub fn on_hit(&self, key: String, keep_ms: f64, refresh_when_left_ms: f64) -> bool {
        let Some(entry) = self.store().and_then(|s| s.get(&key)) else {
            return false;
        };
        let now = Instant::now();
        // The 'memory' store's deadline is the key's; an L1 deadline may be capped by maxTtl.
        let known = matches!(self.tier, Tier::Memory(_)).then_some(entry.deadline);
        let expires = self
            .grace
            .on_hit(&key, &entry.json, known, now + millis(keep_ms));
        match expires {
            Some(at) if refresh_when_left_ms >= 0.0 => {
                at.saturating_duration_since(now) <= millis(refresh_when_left_ms)
            }
            _ => false,
        }
    }
}
