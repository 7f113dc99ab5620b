//! The primaries of a cluster connection's slot map, for `health()`.

use super::connect::Cluster;

/// Each primary of the slot map (`host:port`, in map order) and whether our
/// connection to it serves (it answered when the map was built and has not
/// been cut for failing to answer since); `None` while no map is built.
pub fn primaries_health(c: &Cluster) -> Option<Vec<(String, bool)>> {
    let routes = c.direct.routes()?;
    Some(
        routes
            .nodes
            .iter()
            .map(|n| (format!("{}:{}", n.addr.0, n.addr.1), n.conn().is_some()))
            .collect(),
    )
}
