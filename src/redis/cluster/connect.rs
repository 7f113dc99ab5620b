//! A cluster connection: redis-rs' cluster connection, built from the seed
//! nodes with tracking on every node connection, and our direct node
//! connections for per-key calls.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use redis::cluster::ClusterClientBuilder;
use redis::{ProtocolVersion, PushInfo};
use tokio::time::timeout;

use super::direct::Direct;
use super::nodes::{on_push, Routed, Tracked};
use super::primaries::primaries;
use crate::error::{classify_connect, Code, ConnectFailure, Failure};
use crate::options::ClusterTarget;
use crate::redis::Shared;

/// A cluster connection: redis-rs' and, for per-key calls, our direct node
/// connections (`direct.rs`).
#[derive(Clone)]
pub struct Cluster {
    pub(super) routed: Routed,
    pub(super) direct: Arc<Direct>,
}

/// Connects to the cluster through its seed nodes (connection `gen`).
pub async fn connect(
    shared: &Arc<Shared>,
    target: &ClusterTarget,
    gen: u64,
    bound: Duration,
) -> Result<Cluster, ConnectFailure> {
    let t = shared.timeout;
    let weak: Weak<Shared> = Arc::downgrade(shared);
    let mut builder = ClusterClientBuilder::new(target.nodes.clone())
        .use_protocol(ProtocolVersion::RESP3)
        .push_sender(move |push: PushInfo| {
            if let Some(shared) = weak.upgrade() {
                on_push(&shared, gen, push);
            }
            Ok::<(), ()>(())
        })
        // redis-rs' default waits start at 1.28 s; a retry must fit in the call's bound.
        .retries(8)
        .min_retry_wait(5)
        .max_retry_wait(100)
        .retry_wait_formula(5, 2)
        .connection_timeout(t)
        .response_timeout(t)
        .overall_response_timeout(Some(t));
    if let Some(certs) = &target.certs {
        builder = builder.certs(certs.clone());
    }
    let client = builder.build().map_err(classify_connect)?;
    // redis-rs waits for every seed node (each within the connect timeout),
    // then for every node of the slot map.
    match timeout(bound, client.get_async_generic_connection::<Tracked>()).await {
        Err(_) => Err(ConnectFailure::Transient(Failure::new(
            Code::Unavailable,
            "cluster connect timed out",
        ))),
        Ok(Err(e)) => Err(classify_connect(e)),
        Ok(Ok(mut routed)) => {
            shared.gate.set_tracking(shared.local.is_some());
            // Every primary answering proves the gate, as the heartbeat does.
            let sent = Instant::now();
            if primaries(shared, &mut routed).await.is_ok() {
                shared.gate.prove(sent);
            }
            let template = target.nodes.first().cloned().ok_or_else(|| {
                ConnectFailure::Transient(Failure::new(Code::Unavailable, "no seed node"))
            })?;
            let direct = Direct::new(shared, template, target.certs.clone(), gen);
            // Without a map (yet), calls go through redis-rs.
            direct.refresh_now(routed.clone()).await;
            Ok(Cluster { routed, direct })
        }
    }
}
