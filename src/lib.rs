#![deny(clippy::all)]
//! `@medianest/native-cache`: the napi surface. `index.js` wraps [`NativeCache`]
//! with MediaNest's `CacheService` API; everything stateful lives here.

mod board;
mod error;
mod gate;
mod glob;
mod grace;
mod health;
mod hits;
mod human;
mod latency;
mod local;
mod logs;
mod memory;
mod metrics;
mod observe;
mod ops;
mod options;
mod queue;
mod redis;
mod stats;
mod store;

use std::sync::Arc;
use std::time::{Duration, Instant};

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
}

#[derive(Default)]
struct Guards {
    next: u32,
    held: std::collections::HashMap<u32, Ticket>,
}

#[napi(object)]
pub struct LocalStats {
    /// Whether L1 is serving (configured, and the server tracks keys for it).
    pub enabled: bool,
    pub hits: f64,
    /// Of `hits`, those answered in JavaScript from a copy of a recent hit, without a native call.
    pub memo_hits: f64,
    pub misses: f64,
    /// Entries dropped to stay within `maxBytes`.
    pub evictions: f64,
    /// Keys invalidated by Redis tracking pushes.
    pub invalidations: f64,
    /// Whole-L1 flushes from `FLUSHDB`/`FLUSHALL` pushes.
    pub flushes: f64,
    pub entries: f64,
    /// Memory the entries take: keys, JSON text and each entry's bookkeeping, in bytes.
    pub bytes: f64,
    pub max_bytes: f64,
}

#[napi(object)]
pub struct RedisStats {
    pub connected: bool,
    pub hits: f64,
    pub misses: f64,
    /// Calls that took their failure result (down, timeout, error reply).
    pub errors: f64,
    /// `errors` by code.
    pub errors_by_code: ErrorCounts,
    pub reconnects: f64,
    /// Calls sent to Redis (one per method call, however many commands it takes).
    pub calls: f64,
    /// How long invalidations take to reach this instance, measured about once a second.
    pub invalidation_latency: InvalidationLatency,
}

/// Time from this instance sending a write to a key it tracks to the
/// server's invalidation push arriving and being applied (an upper bound on how
/// late another writer's change reaches L1); quantiles over the latest 64
/// samples. `null` until a sample exists (no L1, no tracking, or `'memory'` mode).
#[napi(object)]
pub struct InvalidationLatency {
    pub p50_ms: Either<f64, Null>,
    pub p99_ms: Either<f64, Null>,
    /// The latest sample.
    pub last_ms: Either<f64, Null>,
    /// Samples taken since the instance started.
    pub samples: f64,
}

/// `getOrSet` callers whose answer a timeout decided.
#[napi(object)]
pub struct TimeoutCounts {
    /// Past `timeout.soft`: answered with the fail-safe copy while the factory went on.
    pub soft: f64,
    /// Past `timeout.hard`: answered with the fail-safe copy, or rejected with a `TimeoutError`.
    pub hard: f64,
}

/// `getOrSet`'s fail-safe copies, kept in process for `ttl + grace`.
#[napi(object)]
pub struct GraceStats {
    pub entries: f64,
    /// Keys plus JSON text, in bytes.
    pub bytes: f64,
    pub max_bytes: f64,
}

/// Failed calls by the code their logger message carries.
#[napi(object)]
pub struct ErrorCounts {
    /// `ERR_CACHE_CLOSED`
    pub closed: f64,
    /// `ERR_CACHE_TIMEOUT`
    pub timeout: f64,
    /// `ERR_CACHE_UNAVAILABLE`
    pub unavailable: f64,
    /// `ERR_CACHE_SERVER`
    pub server: f64,
    /// `ERR_CACHE_PROTOCOL`
    pub protocol: f64,
}

#[napi(object)]
pub struct CacheStats {
    #[napi(ts_type = "'redis' | 'memory'")]
    pub mode: String,
    pub local: LocalStats,
    pub redis: RedisStats,
    /// `getOrSet` calls that joined a factory run already in flight instead of running their own.
    pub coalesced: f64,
    /// `getOrSet` factory invocations (misses and background refreshes).
    pub factory_runs: f64,
    /// `getOrSet` answers taken from a fail-safe copy (`grace`).
    pub failsafe: f64,
    pub timeouts: TimeoutCounts,
    /// Background refreshes started by `eagerRefresh`.
    pub eager_refreshes: f64,
    /// `getOrSet` runs with `lock: 'distributed'` that found the lease taken
    /// by another instance and waited (one per run, however many callers share it).
    pub lock_waits: f64,
    /// `getOrSet` results returned to their callers but not stored: the key
    /// was written or deleted after the miss (or the eager refresh) read it.
    pub superseded: f64,
    pub grace: GraceStats,
}

/// What JavaScript counts for `stats()` (`NativeCache.note`).
#[napi]
pub enum Note {
    /// Hits the memo served without crossing (counted as L1 hits too).
    MemoHits,
    /// A `getOrSet` joined a run in flight.
    Coalesced,
    /// A `getOrSet` factory ran.
    FactoryRun,
    /// A `getOrSet` answered with its fail-safe copy.
    Failsafe,
    /// A caller's `timeout.soft` decided its answer.
    SoftTimeout,
    /// A caller's `timeout.hard` decided its answer.
    HardTimeout,
    /// An eager refresh started.
    EagerRefresh,
    /// A `lock: 'distributed'` run found the lease taken and waited.
    LockWait,
}

#[napi(object)]
pub struct LogEntry {
    pub level: String,
    pub message: String,
    /// The failure code it is about (`ERR_CACHE_…`).
    pub code: String,
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

fn ms_or_null(d: Option<Duration>) -> Either<f64, Null> {
    match d {
        Some(d) => Either::A(d.as_secs_f64() * 1e3),
        None => Either::B(Null),
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

    /// `getOrSet`'s read: the value and its `PTTL` (the reply's number);
    /// with `guard` (`guardKey`), the read that guard's write-back depends on.
    #[napi]
    pub fn queue_get_ttl(&self, key: String, guard: Option<u32>) {
        let guards = self.guards();
        let guard = guard.and_then(|id| guards.held.get(&id));
        self.queue.push_guarded(Op::GetTtl(key), guard);
    }

    #[napi]
    pub fn queue_set(&self, key: String, json: String, ttl_ms: f64) -> Result<()> {
        let ttl_ms = ops::ttl_ms(ttl_ms).map_err(invalid)?;
        self.queue(Op::Set { key, json, ttl_ms });
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

    fn guards(&self) -> std::sync::MutexGuard<'_, Guards> {
        self.guards.lock().unwrap_or_else(|e| e.into_inner())
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
        });
        drop(ticket);
        Ok(true)
    }

    #[napi]
    pub fn queue_del_pattern(&self, pattern: String) {
        self.queue(Op::DelPattern(pattern));
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
        Ok(memory::apply(store, &self.counters, ops))
    }

    fn store(&self) -> Option<&Store> {
        match &self.tier {
            Tier::Memory(store) => Some(store),
            Tier::Redis { tier, .. } => tier.shared().l1().map(|l| &l.store),
        }
    }

    /// Counts `n` events JavaScript saw (see [`Note`]).
    #[napi]
    pub fn note(&self, what: Note, n: u32) {
        let c = &self.counters;
        let counter = match what {
            Note::MemoHits => {
                Counters::add(&c.memo_hits, n.into());
                &c.local_hits
            }
            Note::Coalesced => &c.coalesced,
            Note::FactoryRun => &c.factory_runs,
            Note::Failsafe => &c.failsafe,
            Note::SoftTimeout => &c.timeouts_soft,
            Note::HardTimeout => &c.timeouts_hard,
            Note::EagerRefresh => &c.eager_refreshes,
            Note::LockWait => &c.lock_waits,
        };
        Counters::add(counter, n.into());
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

    /// `stats()` in the Prometheus text exposition format.
    #[napi]
    pub fn metrics(&self) -> String {
        metrics::text(&self.metric_families())
    }

    /// What `metrics()` writes, as data (for the prom-client bridge).
    #[napi]
    pub fn metric_families(&self) -> Vec<metrics::MetricFamily> {
        metrics::families(&self.stats(), self.latency())
    }

    /// Invalidation latency samples so far (`latency.rs`), in Redis mode.
    fn latency(&self) -> Option<latency::Summary> {
        match &self.tier {
            Tier::Memory(_) => None,
            Tier::Redis { tier, .. } => tier.shared().probe.summary(),
        }
    }

    #[napi]
    pub fn stats(&self) -> CacheStats {
        let c = &self.counters;
        let (entries, bytes) = self.store().map_or((0, 0), Store::size);
        let (grace_entries, grace_bytes) = self.grace.size();
        let latency = self.latency();
        let (mode, enabled, connected) = match &self.tier {
            Tier::Memory(_) => ("memory", true, false),
            Tier::Redis { tier, local } => (
                "redis",
                local.is_some() && tier.shared().l1().is_some(),
                tier.connected(),
            ),
        };
        CacheStats {
            mode: mode.into(),
            local: LocalStats {
                enabled,
                hits: Counters::read(&c.local_hits),
                memo_hits: Counters::read(&c.memo_hits),
                misses: Counters::read(&c.local_misses),
                evictions: Counters::read(&c.local_evictions),
                invalidations: Counters::read(&c.invalidations),
                flushes: Counters::read(&c.flushes),
                entries: entries as f64,
                bytes: bytes as f64,
                max_bytes: self.max_bytes as f64,
            },
            redis: RedisStats {
                connected,
                hits: Counters::read(&c.redis_hits),
                misses: Counters::read(&c.redis_misses),
                errors: Counters::read(&c.redis_errors),
                errors_by_code: ErrorCounts {
                    closed: Counters::read(&c.errors_closed),
                    timeout: Counters::read(&c.errors_timeout),
                    unavailable: Counters::read(&c.errors_unavailable),
                    server: Counters::read(&c.errors_server),
                    protocol: Counters::read(&c.errors_protocol),
                },
                reconnects: Counters::read(&c.reconnects),
                calls: Counters::read(&c.redis_calls),
                invalidation_latency: InvalidationLatency {
                    p50_ms: ms_or_null(latency.map(|l| l.p50)),
                    p99_ms: ms_or_null(latency.map(|l| l.p99)),
                    last_ms: ms_or_null(latency.map(|l| l.last)),
                    samples: latency.map_or(0.0, |l| l.count as f64),
                },
            },
            coalesced: Counters::read(&c.coalesced),
            factory_runs: Counters::read(&c.factory_runs),
            failsafe: Counters::read(&c.failsafe),
            timeouts: TimeoutCounts {
                soft: Counters::read(&c.timeouts_soft),
                hard: Counters::read(&c.timeouts_hard),
            },
            eager_refreshes: Counters::read(&c.eager_refreshes),
            lock_waits: Counters::read(&c.lock_waits),
            superseded: Counters::read(&c.superseded),
            grace: GraceStats {
                entries: grace_entries as f64,
                bytes: grace_bytes as f64,
                max_bytes: self.grace.max_bytes() as f64,
            },
        }
    }

    /// Messages for the user's logger since the last call.
    #[napi]
    pub fn drain_logs(&self) -> Vec<LogEntry> {
        match &self.tier {
            Tier::Memory(_) => Vec::new(),
            Tier::Redis { tier, .. } => tier
                .shared()
                .logs
                .drain()
                .into_iter()
                .map(|(level, code, message)| LogEntry {
                    level: level.into(),
                    message,
                    code: code.js().into(),
                })
                .collect(),
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
