//! `metrics()`: `stats()` in the Prometheus text exposition format (0.0.4),
//! so a backend can serve it from its `/metrics` route as it is, or merge it
//! with prom-client's output; `metricFamilies()`: the same families as data,
//! for the prom-client bridge (`registerMetrics` in `index.js`). Names follow
//! Prometheus' conventions: a `native_cache_` prefix, `_total` on counters,
//! base units (`_bytes`, `_seconds`).

use std::collections::HashMap;
use std::fmt::Write;

use napi_derive::napi;

use crate::redis::latency::Summary;
use crate::stats::CacheStats;

#[derive(Clone, Copy)]
enum Kind {
    Counter,
    Gauge,
    Summary,
}

/// One sample of a family.
#[napi(object)]
pub struct MetricSample {
    /// The family's name, or for a summary also `…_sum` and `…_count`.
    pub name: String,
    /// Label names to values (`code`, `kind`, `quantile`); empty for most.
    pub labels: HashMap<String, String>,
    pub value: f64,
}

/// A metric family: what one `# HELP` / `# TYPE` pair announces.
#[napi(object)]
pub struct MetricFamily {
    /// `native_cache_…`
    pub name: String,
    pub help: String,
    #[napi(ts_type = "'counter' | 'gauge' | 'summary'")]
    pub kind: String,
    pub samples: Vec<MetricSample>,
}

struct Out(Vec<MetricFamily>);

impl Out {
    /// A family whose samples are (name suffix, label, value).
    fn family(
        &mut self,
        name: &str,
        kind: Kind,
        help: &str,
        samples: &[(&str, (&str, &str), f64)],
    ) {
        let name = format!("native_cache_{name}");
        let kind = match kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Summary => "summary",
        };
        let samples = samples
            .iter()
            .map(|&(suffix, (label, value_of_label), value)| MetricSample {
                name: format!("{name}{suffix}"),
                labels: if label.is_empty() {
                    HashMap::new()
                } else {
                    HashMap::from([(label.to_string(), value_of_label.to_string())])
                },
                value,
            })
            .collect();
        self.0.push(MetricFamily {
            name,
            help: help.into(),
            kind: kind.into(),
            samples,
        });
    }

    fn one(&mut self, name: &str, kind: Kind, help: &str, value: f64) {
        self.family(name, kind, help, &[("", ("", ""), value)]);
    }
}

/// The families in the text format.
pub fn text(families: &[MetricFamily]) -> String {
    let mut o = String::with_capacity(4096);
    for f in families {
        let _ = writeln!(o, "# HELP {} {}", f.name, f.help);
        let _ = writeln!(o, "# TYPE {} {}", f.name, f.kind);
        for s in &f.samples {
            let labels: Vec<String> = s
                .labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{v}\""))
                .collect();
            let labels = if labels.is_empty() {
                String::new()
            } else {
                format!("{{{}}}", labels.join(","))
            };
            let _ = writeln!(o, "{}{labels} {}", s.name, s.value);
        }
    }
    o
}

fn flag(b: bool) -> f64 {
    if b {
        1.0
    } else {
        0.0
    }
}

pub fn families(s: &CacheStats, latency: Option<Summary>) -> Vec<MetricFamily> {
    use Kind::{Counter, Gauge};
    let mut o = Out(Vec::with_capacity(32));
    let (l, r, e) = (&s.local, &s.redis, &s.redis.errors_by_code);
    o.one(
        "l1_enabled",
        Gauge,
        "Whether the in-process tier (L1) is serving.",
        flag(l.enabled),
    );
    o.one(
        "l1_hits_total",
        Counter,
        "Lookups answered from L1.",
        l.hits,
    );
    o.one(
        "l1_misses_total",
        Counter,
        "Lookups L1 could not answer.",
        l.misses,
    );
    o.one(
        "l1_evictions_total",
        Counter,
        "L1 entries evicted to stay within the byte bound.",
        l.evictions,
    );
    o.one("l1_entries", Gauge, "Entries in L1.", l.entries);
    o.one(
        "l1_bytes",
        Gauge,
        "Keys plus JSON text held in L1.",
        l.bytes,
    );
    o.one("l1_max_bytes", Gauge, "The bound on l1_bytes.", l.max_bytes);
    o.one(
        "invalidations_total",
        Counter,
        "Keys invalidated by Redis tracking pushes.",
        l.invalidations,
    );
    o.one(
        "flushes_total",
        Counter,
        "Whole-L1 flushes from FLUSHDB/FLUSHALL tracking pushes.",
        l.flushes,
    );
    o.one(
        "redis_connected",
        Gauge,
        "Whether the Redis connection is up.",
        flag(r.connected),
    );
    o.one(
        "redis_calls_total",
        Counter,
        "Calls sent to Redis (one per method call).",
        r.calls,
    );
    o.one(
        "redis_hits_total",
        Counter,
        "Keys read from Redis that were there.",
        r.hits,
    );
    o.one(
        "redis_misses_total",
        Counter,
        "Keys read from Redis that were missing.",
        r.misses,
    );
    o.family(
        "redis_errors_total",
        Counter,
        "Calls that took their failure result, by code.",
        &[
            ("", ("code", "ERR_CACHE_TIMEOUT"), e.timeout),
            ("", ("code", "ERR_CACHE_UNAVAILABLE"), e.unavailable),
            ("", ("code", "ERR_CACHE_SERVER"), e.server),
            ("", ("code", "ERR_CACHE_PROTOCOL"), e.protocol),
            ("", ("code", "ERR_CACHE_CLOSED"), e.closed),
        ],
    );
    o.one(
        "redis_reconnects_total",
        Counter,
        "Redis reconnections.",
        r.reconnects,
    );
    o.one(
        "getorset_factory_runs_total",
        Counter,
        "getOrSet factory invocations.",
        s.factory_runs,
    );
    o.one(
        "getorset_coalesced_total",
        Counter,
        "getOrSet calls that joined a factory run in flight.",
        s.coalesced,
    );
    o.one(
        "getorset_failsafe_total",
        Counter,
        "getOrSet answers taken from a fail-safe copy.",
        s.failsafe,
    );
    o.family(
        "getorset_timeouts_total",
        Counter,
        "getOrSet callers whose answer a factory timeout decided.",
        &[
            ("", ("kind", "soft"), s.timeouts.soft),
            ("", ("kind", "hard"), s.timeouts.hard),
        ],
    );
    o.one(
        "getorset_eager_refreshes_total",
        Counter,
        "Background refreshes started by eagerRefresh.",
        s.eager_refreshes,
    );
    o.one(
        "getorset_lock_waits_total",
        Counter,
        "getOrSet runs with lock 'distributed' that found the lease taken and waited.",
        s.lock_waits,
    );
    o.one(
        "getorset_superseded_total",
        Counter,
        "getOrSet results returned but not stored: the key was written or deleted after it was read.",
        s.superseded,
    );
    o.one(
        "grace_entries",
        Gauge,
        "Fail-safe copies kept in process.",
        s.grace.entries,
    );
    o.one(
        "grace_bytes",
        Gauge,
        "Keys plus JSON text of the fail-safe copies.",
        s.grace.bytes,
    );
    // A summary: quantiles over the latest samples, NaN before the first (as
    // Prometheus client libraries write an empty summary), _sum and _count since start.
    let (p50, p99, sum, count) = latency.map_or((f64::NAN, f64::NAN, 0.0, 0.0), |l| {
        (
            l.p50.as_secs_f64(),
            l.p99.as_secs_f64(),
            l.sum.as_secs_f64(),
            l.count as f64,
        )
    });
    o.family(
        "invalidation_latency_seconds",
        Kind::Summary,
        "Time from sending a write to a key this instance tracks to its invalidation push being applied (probed about once a second; quantiles over the latest 64 probes).",
        &[
            ("", ("quantile", "0.5"), p50),
            ("", ("quantile", "0.99"), p99),
            ("_sum", ("", ""), sum),
            ("_count", ("", ""), count),
        ],
    );
    o.0
}
