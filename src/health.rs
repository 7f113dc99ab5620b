//! `health()`: what an orchestrator's readiness probe reads, from state the
//! instance already holds (no Redis round trip, so it answers at once even
//! while Redis does not).
//!
//! - `down`: Redis mode without a connection (or closed), or a Cluster
//!   whose every primary of the slot map is unreachable (nothing can be served);
//! - `degraded`: connected, but L1 is configured and not serving (tracking
//!   refused, the liveness lease lapsed), or a Cluster primary of the slot
//!   map is unreachable (or no map is built);
//! - `ok` otherwise, and always in `'memory'` mode.

use napi_derive::napi;

use crate::redis::health::{TierHealth, LOCAL_DISABLED};
use crate::{NativeCache, Tier};

#[napi(object)]
pub struct CacheHealth {
    #[napi(ts_type = "'ok' | 'degraded' | 'down'")]
    pub status: String,
    pub redis: RedisHealth,
    pub local: LocalHealth,
}

#[napi(object)]
pub struct RedisHealth {
    /// Whether the connection is up (a Cluster: to the cluster, whatever each primary does).
    pub connected: bool,
    #[napi(ts_type = "'single' | 'sentinel' | 'cluster' | 'memory'")]
    pub topology: String,
    /// Cluster: every primary of the slot map; absent while no map is built.
    pub primaries: Option<Vec<PrimaryHealth>>,
    /// Sentinel: the master (`host:port`) the current connection was confirmed on.
    pub master: Option<String>,
}

#[napi(object)]
pub struct PrimaryHealth {
    /// `host:port`, as `CLUSTER SLOTS` names it.
    pub address: String,
    /// Our connection to it serves: it answered when the slot map was built and has not timed out since.
    pub reachable: bool,
}

#[napi(object)]
pub struct LocalHealth {
    /// Whether hits are answered from this process now.
    pub serving: bool,
    /// Why not, when not serving.
    #[napi(ts_type = "'disabled' | 'tracking-refused' | 'lease-lapsed' | 'closed'")]
    pub reason: Option<String>,
}

/// The status a tier's health adds up to.
fn status(h: &TierHealth) -> &'static str {
    let cluster = h.topology == crate::redis::health::Topology::Cluster;
    let none_reachable = cluster
        && h.primaries
            .as_ref()
            .is_some_and(|p| !p.is_empty() && p.iter().all(|(_, reachable)| !reachable));
    if h.closed || !h.connected || none_reachable {
        return "down";
    }
    let local_off = h.local_off.is_some_and(|why| why != LOCAL_DISABLED);
    let shard_off = cluster
        && h.primaries
            .as_ref()
            .is_none_or(|p| p.iter().any(|(_, reachable)| !reachable));
    if local_off || shard_off {
        "degraded"
    } else {
        "ok"
    }
}

#[napi]
impl NativeCache {
    /// The instance's health (see `health.rs`); synchronous, no Redis round trip.
    #[napi]
    pub fn health(&self) -> CacheHealth {
        let h = match &self.tier {
            Tier::Memory(_) => {
                return CacheHealth {
                    status: "ok".into(),
                    redis: RedisHealth {
                        connected: false,
                        topology: "memory".into(),
                        primaries: None,
                        master: None,
                    },
                    local: LocalHealth {
                        serving: true,
                        reason: None,
                    },
                };
            }
            Tier::Redis { tier, .. } => tier.health(),
        };
        CacheHealth {
            status: status(&h).into(),
            redis: RedisHealth {
                connected: h.connected,
                topology: h.topology.js().into(),
                primaries: h.primaries.as_ref().map(|p| {
                    p.iter()
                        .map(|(address, reachable)| PrimaryHealth {
                            address: address.clone(),
                            reachable: *reachable,
                        })
                        .collect()
                }),
                master: h.master.clone(),
            },
            local: LocalHealth {
                serving: h.local_off.is_none(),
                reason: h.local_off.map(Into::into),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redis::health::{Topology, LOCAL_LEASE_LAPSED};

    fn tier(topology: Topology) -> TierHealth {
        TierHealth {
            connected: true,
            closed: false,
            topology,
            master: None,
            primaries: None,
            local_off: None,
        }
    }

    #[test]
    fn down_without_a_connection_degraded_while_l1_is_off_against_its_configuration() {
        assert_eq!(status(&tier(Topology::Single)), "ok");
        let off = TierHealth {
            connected: false,
            ..tier(Topology::Single)
        };
        assert_eq!(status(&off), "down");
        let lapsed = TierHealth {
            local_off: Some(LOCAL_LEASE_LAPSED),
            ..tier(Topology::Single)
        };
        assert_eq!(status(&lapsed), "degraded");
        let disabled = TierHealth {
            local_off: Some(LOCAL_DISABLED),
            ..tier(Topology::Sentinel)
        };
        assert_eq!(status(&disabled), "ok");
    }

    #[test]
    fn a_cluster_is_degraded_while_a_primary_is_unreachable_or_no_map_is_built_and_down_when_none_is_reachable(
    ) {
        assert_eq!(status(&tier(Topology::Cluster)), "degraded");
        let mut all = tier(Topology::Cluster);
        all.primaries = Some(vec![("a:1".into(), true), ("b:2".into(), true)]);
        assert_eq!(status(&all), "ok");
        all.primaries = Some(vec![("a:1".into(), true), ("b:2".into(), false)]);
        assert_eq!(status(&all), "degraded");
        all.primaries = Some(vec![("a:1".into(), false), ("b:2".into(), false)]);
        assert_eq!(status(&all), "down");
    }
}
