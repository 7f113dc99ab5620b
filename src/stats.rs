//! Counters behind `stats()`, and what `stats()` reports. Relaxed atomics:
//! they are reports, not synchronisation.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use napi::bindgen_prelude::{Either, Null};
use napi_derive::napi;

use crate::error::Code;

#[derive(Default)]
pub struct Counters {
    pub local_hits: AtomicU64,
    /// Of `local_hits`, those the JavaScript memo answered (no native call).
    pub memo_hits: AtomicU64,
    pub local_misses: AtomicU64,
    pub local_evictions: AtomicU64,
    pub redis_hits: AtomicU64,
    pub redis_misses: AtomicU64,
    pub redis_errors: AtomicU64,
    pub errors_closed: AtomicU64,
    pub errors_timeout: AtomicU64,
    pub errors_unavailable: AtomicU64,
    pub errors_server: AtomicU64,
    pub errors_protocol: AtomicU64,
    pub invalidations: AtomicU64,
    pub flushes: AtomicU64,
    pub reconnects: AtomicU64,
    pub coalesced: AtomicU64,
    /// Calls queued for Redis (one per method call, however many commands it sends).
    pub redis_calls: AtomicU64,
    /// `getOrSet` factory invocations (misses, eager refreshes).
    pub factory_runs: AtomicU64,
    /// `getOrSet` answers taken from a fail-safe copy.
    pub failsafe: AtomicU64,
    /// `getOrSet` callers whose `timeout.soft` or `timeout.hard` decided their answer.
    pub timeouts_soft: AtomicU64,
    pub timeouts_hard: AtomicU64,
    /// Background refreshes started by `eagerRefresh`.
    pub eager_refreshes: AtomicU64,
    /// `getOrSet` runs with `lock: 'distributed'` that found the lease taken and waited.
    pub lock_waits: AtomicU64,
    /// `getOrSet` results not stored: the key was written or deleted after the miss (or refresh) read it.
    pub superseded: AtomicU64,
}

impl Counters {
    /// One call failed with `code`.
    pub fn failed(&self, code: Code, calls: u64) {
        Self::add(&self.redis_errors, calls);
        let of_code = match code {
            Code::Closed => &self.errors_closed,
            Code::Timeout => &self.errors_timeout,
            Code::Unavailable => &self.errors_unavailable,
            Code::Server => &self.errors_server,
            Code::Protocol => &self.errors_protocol,
        };
        Self::add(of_code, calls);
    }

    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }

    pub fn read(counter: &AtomicU64) -> f64 {
        counter.load(Relaxed) as f64
    }
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
