//! A command on every primary: `PING` (liveness, `ping()`), and the fan-out
//! redis-rs routes (`getInfo`, `clear`, `invalidatePattern`).

use std::sync::Arc;

use redis::cluster_routing::{MultipleNodeRoutingInfo, ResponsePolicy, RoutingInfo};
use redis::Value;
use tokio::time::timeout;

use super::direct::Direct;
use super::nodes::Routed;
use crate::error::{Code, Failure};
use crate::redis::Shared;

pub(super) fn all_primaries(policy: Option<ResponsePolicy>) -> RoutingInfo {
    RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, policy))
}

pub(super) async fn bounded<F>(shared: &Shared, f: F) -> Result<Value, Failure>
where
    F: std::future::Future<Output = redis::RedisResult<Value>>,
{
    match timeout(shared.timeout, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.into()),
        Err(_) => Err(Failure::timeout()),
    }
}

/// `PING` on every primary of the slot map (`direct.rs`), or through
/// redis-rs while there is no map: their addresses, sorted, when every one
/// answered. (redis-rs' fan-out leaves out a node it has no connection to,
/// so a dead primary would pass.)
pub(super) async fn every_primary(
    shared: &Shared,
    direct: &Arc<Direct>,
    routed: &Routed,
) -> Result<Vec<String>, Failure> {
    match direct.ping_all(shared).await {
        Some(Ok(mut addrs)) => {
            addrs.sort();
            Ok(addrs)
        }
        Some(Err(why)) => {
            direct.refresh(routed.clone());
            Err(why)
        }
        None => primaries(shared, &mut routed.clone()).await,
    }
}

/// `PING` on every primary redis-rs knows: their addresses, sorted, when all answered.
pub(super) async fn primaries(shared: &Shared, conn: &mut Routed) -> Result<Vec<String>, Failure> {
    let reply = bounded(
        shared,
        conn.route_command(redis::cmd("PING"), all_primaries(None)),
    )
    .await?;
    let Value::Map(answers) = reply else {
        return Err(Failure::new(
            Code::Protocol,
            format!("unexpected fan-out reply {reply:?}"),
        ));
    };
    let mut addrs = Vec::with_capacity(answers.len());
    for (addr, answer) in answers {
        if let Value::ServerError(e) = answer {
            return Err(Failure::new(Code::Server, e.to_string()));
        }
        addrs.push(match addr {
            Value::SimpleString(s) => s,
            Value::BulkString(b) => String::from_utf8_lossy(&b).into_owned(),
            other => format!("{other:?}"),
        });
    }
    if addrs.is_empty() {
        return Err(Failure::new(Code::Unavailable, "no cluster primary known"));
    }
    addrs.sort();
    Ok(addrs)
}
