//! What `health()` reports of the Redis tier, read from state the tier
//! already holds (the link, the gate, the Sentinel master it confirmed, the
//! Cluster slot map): no round trip to Redis.

use std::time::Instant;

use super::{cluster, Conn, Link, RedisTier, Shared};

/// Which kind of deployment the tier talks to.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Topology {
    Single,
    Sentinel,
    Cluster,
}

impl Topology {
    pub fn of(target: &crate::options::Target) -> Self {
        if target.cluster.is_some() {
            Topology::Cluster
        } else if target.sentinel.is_some() {
            Topology::Sentinel
        } else {
            Topology::Single
        }
    }

    pub fn js(self) -> &'static str {
        match self {
            Topology::Single => "single",
            Topology::Sentinel => "sentinel",
            Topology::Cluster => "cluster",
        }
    }
}

/// Why L1 is not serving (`None` in [`TierHealth::local_off`]: it serves).
pub const LOCAL_DISABLED: &str = "disabled";
pub const LOCAL_TRACKING_REFUSED: &str = "tracking-refused";
pub const LOCAL_LEASE_LAPSED: &str = "lease-lapsed";
pub const LOCAL_CLOSED: &str = "closed";

pub struct TierHealth {
    pub connected: bool,
    pub closed: bool,
    pub topology: Topology,
    /// Sentinel: the master the current link was confirmed on (`host:port`).
    pub master: Option<String>,
    /// Cluster: each primary of the slot map (`host:port`) and whether our
    /// connection to it serves; `None` while there is no map.
    pub primaries: Option<Vec<(String, bool)>>,
    /// Why L1 does not serve now, or `None` when it does.
    pub local_off: Option<&'static str>,
}

impl RedisTier {
    pub fn health(&self) -> TierHealth {
        let closed = self
            .jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_none();
        self.shared.health(closed)
    }
}

impl Shared {
    fn health(&self, closed: bool) -> TierHealth {
        let closed = closed || self.is_closed();
        let (connected, gen, primaries) = match &*self.link.borrow() {
            Link::Up { conn, gen } => (
                true,
                Some(*gen),
                match conn {
                    Conn::Cluster(c) => cluster::primaries_health(c),
                    Conn::Single(_) => None,
                },
            ),
            _ => (false, None, None),
        };
        let master = self
            .master
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .filter(|(g, _)| Some(*g) == gen)
            .map(|(_, addr)| addr.clone());
        let local_off = if self.local.is_none() {
            Some(LOCAL_DISABLED)
        } else if closed {
            Some(LOCAL_CLOSED)
        } else if !self.gate.tracking() {
            Some(LOCAL_TRACKING_REFUSED)
        } else if !self.gate.open_at(Instant::now()) {
            Some(LOCAL_LEASE_LAPSED)
        } else {
            None
        };
        TierHealth {
            connected: connected && !closed,
            closed,
            topology: self.topology,
            master,
            primaries: if self.topology == Topology::Cluster && connected {
                primaries
            } else {
                None
            },
            local_off,
        }
    }

    /// Sentinel: link `gen` was confirmed on `addr`, the master.
    pub(super) fn confirmed_master(&self, gen: u64, addr: &(String, u16)) {
        *self.master.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((gen, format!("{}:{}", addr.0, addr.1)));
    }
}
