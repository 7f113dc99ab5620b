#![deny(clippy::all)]
//! `@medianest/native-cache`: the napi surface. `index.js` wraps [`NativeCache`]
//! with MediaNest's `CacheService` API; everything stateful lives here.

mod glob;
mod human;
mod local;
mod logs;
mod memory;
mod ops;
mod options;
mod redis_tier;
mod stats;
mod store;

use std::sync::Arc;

use napi::bindgen_prelude::*;
use napi_derive::napi;

use crate::local::Local;
use crate::ops::Replies;
use crate::options::{Mode, NativeOptions};
use crate::redis_tier::RedisTier;
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

/// The native half of `CacheService`. Not meant to be used directly: `index.js` validates arguments.
#[napi]
pub struct NativeCache {
    tier: Tier,
    counters: Arc<Counters>,
    max_bytes: u64,
}

#[napi(object)]
pub struct LocalStats {
    /// Whether L1 is serving (configured, and the server tracks keys for it).
    pub enabled: bool,
    pub hits: f64,
    pub misses: f64,
    /// Entries dropped to stay within `maxBytes`.
    pub evictions: f64,
    /// Keys invalidated by Redis tracking pushes.
    pub invalidations: f64,
    /// Whole-L1 flushes from `FLUSHDB`/`FLUSHALL` pushes.
    pub flushes: f64,
    pub entries: f64,
    /// Keys plus JSON text, in bytes.
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
    pub reconnects: f64,
}

#[napi(object)]
pub struct CacheStats {
    pub mode: String,
    pub local: LocalStats,
    pub redis: RedisStats,
    /// `getOrSet` calls that joined a factory run already in flight instead of running their own.
    pub coalesced: f64,
}

#[napi(object)]
pub struct LogEntry {
    pub level: String,
    pub message: String,
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
        let tier = match settings.mode {
            Mode::Memory => Tier::Memory(Store::new(max_bytes, counters.clone())),
            Mode::Redis(info) => {
                let local = (max_bytes > 0)
                    .then(|| Local::new(max_bytes, settings.local_max_ttl, counters.clone()));
                let tier = RedisTier::start(
                    *info,
                    local.clone(),
                    counters.clone(),
                    settings.command_timeout,
                );
                Tier::Redis { tier, local }
            }
        };
        Ok(NativeCache {
            tier,
            counters,
            max_bytes,
        })
    }

    fn store(&self) -> Option<&Store> {
        match &self.tier {
            Tier::Memory(store) => Some(store),
            Tier::Redis { tier, .. } => tier.shared().l1().map(|l| &l.store),
        }
    }

    /// The JSON text cached for `key` in this process, or `null`: the synchronous hit path.
    #[napi]
    pub fn local_get(&self, key: String) -> Option<String> {
        let hit = self.store().and_then(|s| s.get(&key));
        let counter = if hit.is_some() {
            &self.counters.local_hits
        } else {
            &self.counters.local_misses
        };
        Counters::add(counter, 1);
        hit.map(|e| e.json.to_string())
    }

    /// `localGet` for many keys at once; `null` where this process has nothing.
    #[napi]
    pub fn local_mget(&self, keys: Vec<String>) -> Vec<Option<String>> {
        keys.into_iter().map(|k| self.local_get(k)).collect()
    }

    /// Runs a batch against Redis; resolves once every op has its reply or failure result.
    #[napi(ts_return_type = "Promise<Replies>")]
    pub fn exec<'env>(
        &self,
        env: &'env Env,
        codes: Vec<u32>,
        strs: Vec<String>,
        nums: Vec<f64>,
    ) -> Result<PromiseRaw<'env, Replies>> {
        let Tier::Redis { tier, .. } = &self.tier else {
            return Err(invalid("exec is for 'redis' mode; use execSync".into()));
        };
        let ops = ops::decode(&codes, strs, &nums).map_err(invalid)?;
        let replies = tier.submit(ops);
        env.spawn_future(async move { Ok(replies.await) })
    }

    /// Runs a batch against the `'memory'` store, synchronously.
    #[napi]
    pub fn exec_sync(&self, codes: Vec<u32>, strs: Vec<String>, nums: Vec<f64>) -> Result<Replies> {
        let Tier::Memory(store) = &self.tier else {
            return Err(invalid("execSync is for 'memory' mode; use exec".into()));
        };
        let ops = ops::decode(&codes, strs, &nums).map_err(invalid)?;
        Ok(memory::apply(store, ops))
    }

    #[napi]
    pub fn note_coalesced(&self) {
        Counters::add(&self.counters.coalesced, 1);
    }

    #[napi]
    pub fn stats(&self) -> CacheStats {
        let c = &self.counters;
        let (entries, bytes) = self.store().map_or((0, 0), Store::size);
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
                reconnects: Counters::read(&c.reconnects),
            },
            coalesced: Counters::read(&c.coalesced),
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
                .map(|(level, message)| LogEntry {
                    level: level.into(),
                    message,
                })
                .collect(),
        }
    }

    /// Drops the connection and stops background work; idempotent.
    #[napi]
    pub fn close(&self) {
        match &self.tier {
            Tier::Memory(store) => store.clear(),
            Tier::Redis { tier, .. } => tier.close(),
        }
    }
}
