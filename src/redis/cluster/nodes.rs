//! redis-rs' node connections: each tracks the keys it reads from its first
//! command on ([`Tracked`]); their pushes ([`on_push`]).

use std::sync::atomic::{AtomicBool, Ordering};

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster_async::{ClusterConnection, Connect};
use redis::{
    AsyncConnectionConfig, Cmd, IntoConnectionInfo, PushInfo, PushKind, RedisFuture, Value,
};

use super::super::Shared;
use crate::error::{Code, Failure};

/// redis-rs' cluster connection: routing, redirects, reconnects.
pub type Routed = ClusterConnection<Tracked>;

/// Node connections track every read (`CLIENT TRACKING ON` without OPTIN, see
/// [`Tracked`]), so no read is preceded by `CLIENT CACHING yes`.
pub const OPTIN: bool = false;

/// A node connection that tracks the keys it reads from its first command on.
#[derive(Clone)]
pub struct Tracked(MultiplexedConnection);

impl ConnectionLike for Tracked {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        self.0.req_packed_command(cmd)
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        self.0.req_packed_commands(pipeline, offset, count)
    }

    fn get_db(&self) -> i64 {
        self.0.get_db()
    }
}

impl Connect for Tracked {
    fn connect_with_config<'a, T>(info: T, config: AsyncConnectionConfig) -> RedisFuture<'a, Self>
    where
        T: IntoConnectionInfo + Send + 'a,
    {
        Box::pin(async move {
            // redis-rs' own config: its push sender reports this node's
            // pushes and its disconnect, which makes redis-rs reconnect it.
            let mut conn = MultiplexedConnection::connect_with_config(info, config).await?;
            // A node refusing tracking for good serves without it (its keys
            // are not kept in L1, see `run_keyed`); any other failure fails
            // this connection and redis-rs retries it.
            match crate::redis::tracking::track(&mut conn, OPTIN).await {
                Ok(None) => {}
                Ok(Some(_)) => refused_tracking(),
                Err(why) => return Err(std::io::Error::other(why.message).into()),
            }
            Ok(Tracked(conn))
        })
    }
}

/// Set once a cluster node refused `CLIENT TRACKING` in this process. redis-rs
/// does not say which node a command went to, so from then on a read it
/// routes fills L1 only when our slot map names a tracking node for its key.
/// (Process-wide: redis-rs opens node connections without our instance.)
static A_NODE_REFUSED_TRACKING: AtomicBool = AtomicBool::new(false);

pub fn refused_tracking() {
    A_NODE_REFUSED_TRACKING.store(true, Ordering::Relaxed);
}

/// Whether a node refused tracking in this process (see [`refused_tracking`]).
pub fn a_node_refused_tracking() -> bool {
    A_NODE_REFUSED_TRACKING.load(Ordering::Relaxed)
}

/// Pushes of every node: invalidations, or a node's connection closing
/// (its address is not passed on, so all of L1 goes).
pub fn on_push(shared: &Shared, gen: u64, push: PushInfo) {
    match push.kind {
        PushKind::Invalidate => {
            if let Some(local) = &shared.local {
                local.on_invalidate(push.data);
            }
        }
        PushKind::Disconnection => shared.broken(
            gen,
            &Failure::new(Code::Unavailable, "a cluster node's connection closed"),
        ),
        _ => {}
    }
}
