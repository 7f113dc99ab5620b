#![deny(clippy::all)]
//! `@medianest/native-cache`: the napi surface. `index.js` wraps [`NativeCache`]
//! with MediaNest's `CacheService` API; everything stateful lives here.

mod board;
mod error;
mod gate;
mod getorset;
mod glob;
mod grace;
mod health;
mod hits;
mod human;
mod local;
mod logs;
mod memory;
mod metrics;
mod observe;
mod ops;
mod options;
mod queue;
mod redis;
mod report;
mod stats;
mod store;
mod tags;

use std::sync::Arc;
use std::time::Duration;

use napi::bindgen_prelude::*;
use napi_derive::napi;

use crate::gate::Gate;
use crate::grace::Grace;
use crate::local::{Group, Local, Ticket};
use crate::ops::{Op, Replies};
use crate::options::{Mode, NativeOptions};
use crate::queue::{Pending, Queue};
use crate::redis::RedisTier;
use crate::stats::Counters;
use crate::store::Store;

enum Tier {
    /// `'memory'` mode: the store is the whole cache.
    Memory(Store),
    /// Redis, with L1 in front when configured.
    Redis {
        tier: RedisTier,
        local: Option<Arc<Local>>,
    },
}

/// The native half of `CacheService`. Not meant to be used directly: `index.js`
/// validates arguments. Calls are queued one by one (`queue*`, applying their
/// L1 effects at once, in call order) and run as one batch by `flush` (Redis,
/// async) or `runSync` (`'memory'` mode).
#[napi]
pub struct NativeCache {
    tier: Tier,
    counters: Arc<Counters>,
    max_bytes: u64,
    /// Calls made since the last `flush`/`runSync` (shared with the hit path).
    queue: Arc<Queue>,
    /// This instance's entry in the hit path's handle table (see `hits.rs`).
    handle: u32,
    /// `getOrSet`'s fail-safe copies (see `grace.rs`).
    grace: Grace,
    /// `getOrSet`'s write-back guards, by id (see [`NativeCache::guard_key`]).
    guards: std::sync::Mutex<Guards>,
    /// `'memory'` mode's tags (in Redis they live in Redis: `redis/tags.rs`).
    tags: tags::TagIndex,
}

#[derive(Default)]
struct Guards {
    next: u32,
    held: std::collections::HashMap<u32, Ticket>,
}

/// One tokio worker: each instance's work is a serial chain (batch future ->
/// executor -> connection driver), and with more workers every hop could be a
/// cross-thread wake-up (kernel scheduler time dominated the profile).
/// Measured on 2 cores: 64-in-flight `set` without L1, ~40k/s -> ~50k/s.
#[napi_derive::module_init]
fn init() {
    // rustls needs one process-wide crypto provider; another library may have
    // installed one already, which serves as well.
    let _ = rustls::crypto::ring::default_provider().install_default();
    if let Ok(rt) = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
    {
        napi::bindgen_prelude::create_custom_tokio_runtime(rt);
    }
}

/// Milliseconds from JavaScript (finite, checked there) as a duration; anything else is zero.
fn millis(ms: f64) -> Duration {
    if ms.is_finite() && ms > 0.0 {
        Duration::from_secs_f64((ms / 1000.0).min(1e12))
    } else {
        Duration::ZERO
    }
}

fn invalid(message: String) -> Error {
    Error::new(Status::InvalidArg, message)
}

#[napi]
impl NativeCache {
    #[napi(constructor)]
    pub fn new(options: NativeOptions) -> Result<Self> {
        let settings = options::settings(&options).map_err(invalid)?;
        let counters = Arc::new(Counters::default());
        let max_bytes = settings.local_max_bytes;
        let (tier, group) = match settings.mode {
            Mode::Memory => (
                Tier::Memory(Store::new(
                    max_bytes - board::memo_bytes(max_bytes),
                    counters.clone(),
                )),
                Group::new(),
            ),
            Mode::Redis(target) => {
                let group = local::group(&target.identity());
                let local = (max_bytes > 0).then(|| {
                    Local::new(
                        max_bytes,
                        settings.local_max_ttl,
                        counters.clone(),
                        group.clone(),
                    )
                });
                let tier = RedisTier::start(
                    *target,
                    local.clone(),
                    counters.clone(),
                    settings.command_timeout,
                );
                (Tier::Redis { tier, local }, group)
            }
        };
        let (store, serving) = match &tier {
            Tier::Memory(store) => (
                store.clone(),
                Arc::new(Gate::open_always(Some(store.board().clone()))),
            ),
            Tier::Redis { tier, local } => (
                local
                    .as_ref()
                    .map_or_else(|| Store::new(0, counters.clone()), |l| l.store.clone()),
                tier.shared().gate(),
            ),
        };
        // Bounded like L1; with L1 off, by L1's default bound.
        let grace_bytes = if max_bytes > 0 {
            max_bytes
        } else {
            options::DEFAULT_LOCAL_MAX_BYTES.into()
        };
        let queue = Arc::new(Queue::new(
            match &tier {
                Tier::Redis { tier, .. } => Some(tier.shared().clone()),
                Tier::Memory(_) => None,
            },
            group,
            counters.clone(),
        ));
        let handle = hits::register(hits::Lookup {
            store,
            serving,
            counters: counters.clone(),
            queue: queue.clone(),
        });
        Ok(NativeCache {
            tier,
            counters,
            max_bytes,
            queue,
            handle,
            grace: Grace::new(grace_bytes),
            guards: Default::default(),
            tags: Default::default(),
        })
    }

    /// Bytes the JavaScript memo may hold (`board::memo_bytes`; 0 with L1 off).
    #[napi(getter)]
    pub fn memo_bytes(&self) -> f64 {
        board::memo_bytes(self.max_bytes) as f64
    }

    /// The handle `localGet`/`localMget` take for this instance.
    #[napi(getter)]
    pub fn handle(&self) -> u32 {
        self.handle
    }

    fn queue(&self, op: Op) {
        self.queue.push(op);
    }

    #[napi]
    pub fn queue_get(&self, key: String) {
        self.queue(Op::Get(key));
    }

    /// `tags`: checked in `lib/tags.js` (absent for an untagged write).
    #[napi]
    pub fn queue_set(
        &self,
        key: String,
        json: String,
        ttl_ms: f64,
        tags: Option<Vec<String>>,
    ) -> Result<()> {
        let ttl_ms = ops::ttl_ms(ttl_ms).map_err(invalid)?;
        self.queue(Op::Set {
            key,
            json,
            ttl_ms,
            tags,
        });
        Ok(())
    }

    #[napi]
    pub fn queue_del(&self, keys: Vec<String>) {
        self.queue(Op::Del(keys));
    }

    #[napi]
    pub fn queue_mget(&self, keys: Vec<String>) {
        self.queue(Op::MGet(keys));
    }

    /// `pairs` is `[key, json, key, json, …]`.
    #[napi]
    pub fn queue_mset(&self, pairs: Vec<String>, ttl_ms: f64) -> Result<()> {
        let ttl_ms = ops::ttl_ms(ttl_ms).map_err(invalid)?;
        if !pairs.len().is_multiple_of(2) {
            return Err(invalid("mset pairs must come in twos".into()));
        }
        let mut it = pairs.into_iter();
        let entries = std::iter::from_fn(|| Some((it.next()?, it.next()?))).collect();
        self.queue(Op::MSet { entries, ttl_ms });
        Ok(())
    }

    #[napi]
    pub fn queue_exists(&self, key: String) {
        self.queue(Op::Exists(key));
    }

    #[napi]
    pub fn queue_ttl(&self, key: String) {
        self.queue(Op::Ttl(key));
    }

    #[napi]
    pub fn queue_ping(&self) {
        self.queue(Op::Ping);
    }

    #[napi]
    pub fn queue_info(&self) {
        self.queue(Op::Info);
    }

    #[napi]
    pub fn queue_clear(&self) {
        self.queue(Op::Clear);
    }

    fn guards(&self) -> std::sync::MutexGuard<'_, Guards> {
        self.guards.lock().unwrap_or_else(|e| e.into_inner())
    }

    #[napi]
    pub fn queue_del_pattern(&self, pattern: String) {
        self.queue(Op::DelPattern(pattern));
    }

    /// `invalidateTags`; its number is how many keys were deleted.
    #[napi]
    pub fn queue_del_tags(&self, tags: Vec<String>) {
        self.queue(Op::DelTags(tags));
    }

    /// Sends the queued calls to Redis as one batch; resolves once every call
    /// has its reply or failure result, within `commandTimeoutMs`.
    #[napi(ts_return_type = "Promise<Replies>")]
    pub fn flush<'env>(&self, env: &'env Env) -> Result<PromiseRaw<'env, Replies>> {
        let Tier::Redis { tier, .. } = &self.tier else {
            return Err(invalid("flush is for 'redis' mode; use runSync".into()));
        };
        let Pending { ops, tickets } = std::mem::take(&mut *self.queue.pending());
        let replies = tier.submit(ops, tickets);
        env.spawn_future(async move { Ok(replies.await) })
    }

    /// Runs the queued calls against the `'memory'` store, synchronously.
    #[napi]
    pub fn run_sync(&self) -> Result<Replies> {
        let Tier::Memory(store) = &self.tier else {
            return Err(invalid("runSync is for 'memory' mode; use flush".into()));
        };
        let Pending { ops, .. } = std::mem::take(&mut *self.queue.pending());
        Ok(memory::apply(store, &self.tags, &self.counters, ops))
    }

    fn store(&self) -> Option<&Store> {
        match &self.tier {
            Tier::Memory(store) => Some(store),
            Tier::Redis { tier, .. } => tier.shared().l1().map(|l| &l.store),
        }
    }

    /// Drops the connection and stops background work; idempotent.
    #[napi]
    pub fn close(&self) {
        hits::unregister(self.handle);
        self.guards().held.clear();
        self.grace.clear();
        self.grace.size();
        match &self.tier {
            Tier::Memory(store) => store.close(),
            Tier::Redis { tier, .. } => tier.close(),
        }
    }
}

impl Drop for NativeCache {
    /// An instance garbage-collected without `close()` must not keep its store
    /// alive in the hit path's handle table.
    fn drop(&mut self) {
        hits::unregister(self.handle);
    }
}
