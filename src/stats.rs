//! Counters behind `stats()`. Relaxed atomics: they are reports, not synchronisation.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

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
    pub fn failed(&self, code: crate::error::Code, calls: u64) {
        Self::add(&self.redis_errors, calls);
        Self::add(code.counter(self), calls);
    }

    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }

    pub fn read(counter: &AtomicU64) -> f64 {
        counter.load(Relaxed) as f64
    }
}
