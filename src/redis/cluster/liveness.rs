//! Liveness: a reply from one node proves nothing about the others, so only
//! the heartbeat proves the gate: a `PING` answered by every primary. A
//! connection whose primaries keep failing it is rebuilt from the seeds.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use tokio::time::sleep;

use super::connect::{connect, Cluster};
use super::primaries::every_primary;
use crate::error::Code;
use crate::options::{Target, HEARTBEAT_INTERVAL_MS};
use crate::redis::{Conn, Shared};

/// Heartbeats in a row that may fail before a new cluster connection is built
/// from the seed nodes and replaces this one. redis-rs refreshes its slot map
/// on `MOVED`, never on a silent node, so a primary that stops answering
/// without closing its connections would keep its slots routed to it after
/// its replica took over.
const REBUILD_AFTER_FAILED_BEATS: u32 = 2;

/// Every [`HEARTBEAT_INTERVAL_MS`], `PING` on every primary: all answering
/// proves the gate; any failing empties L1 (a node may have lost our
/// invalidations); a changed set of primaries empties it too. After
/// [`REBUILD_AFTER_FAILED_BEATS`] failures a new connection (fresh slot map)
/// replaces this one, which keeps serving until then.
pub async fn heartbeat(shared: Weak<Shared>, mut conn: Cluster, mut gen: u64, target: Arc<Target>) {
    let every = Duration::from_millis(HEARTBEAT_INTERVAL_MS.into());
    let mut known: Option<Vec<String>> = None;
    let mut failed = 0u32;
    loop {
        sleep(every).await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        if !shared.is_current(gen) {
            return;
        }
        let sent = Instant::now();
        match every_primary(&shared, &conn.direct, &conn.routed).await {
            Ok(addrs) => {
                failed = 0;
                if known.as_ref().is_some_and(|k| *k != addrs) {
                    shared.lapse_and_flush();
                }
                known = Some(addrs);
                shared.gate.prove(sent);
            }
            Err(why) => {
                failed += 1;
                shared.broken(gen, &why);
                if failed >= REBUILD_AFTER_FAILED_BEATS {
                    if let Some(nodes) = &target.cluster {
                        let next = shared.generations.fetch_add(1, Ordering::SeqCst) + 1;
                        // The current connection keeps serving meanwhile.
                        let bound = shared.timeout * 4;
                        if let Ok(fresh) = connect(&shared, nodes, next, bound).await {
                            let replacing = Conn::Cluster(fresh.clone());
                            if shared.install(next, replacing, None, Some(gen)) {
                                shared.logs.push(
                                    "info",
                                    Code::Unavailable,
                                    "Redis Cluster connection rebuilt from the seed nodes",
                                );
                                (conn, gen, known) = (fresh, next, None);
                            } else {
                                return;
                            }
                        }
                    }
                    failed = 0;
                }
            }
        }
    }
}
