//! What an instance tells about itself: `stats()`, `metrics()`, the
//! messages for the user's logger, and the events JavaScript counts (`note`).

use std::time::Duration;

use napi::bindgen_prelude::{Either, Null};
use napi_derive::napi;

use crate::redis::latency::Summary;
use crate::stats::{
    CacheStats, Counters, ErrorCounts, GraceStats, InvalidationLatency, LocalStats, RedisStats,
    TimeoutCounts,
};
use crate::store::Store;
use crate::{metrics, NativeCache, Tier};

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

fn ms_or_null(d: Option<Duration>) -> Either<f64, Null> {
    match d {
        Some(d) => Either::A(d.as_secs_f64() * 1e3),
        None => Either::B(Null),
    }
}

#[napi]
impl NativeCache {
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
    fn latency(&self) -> Option<Summary> {
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
}
