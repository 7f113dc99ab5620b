//! `invalidatePattern`: `SCAN MATCH` the whole keyspace and `UNLINK` what it
//! finds, one bounded round trip at a time, after dropping the matching keys
//! from L1.

use redis::aio::MultiplexedConnection;
use redis::Value;
use tokio::time::timeout;

use super::commands::unlink;
use super::Shared;
use crate::error::{Code, Failure};
use crate::glob;

/// Keys per `SCAN` step.
const SCAN_COUNT: usize = 1000;

pub async fn delete_pattern(
    shared: &Shared,
    conn: &mut MultiplexedConnection,
    pattern: &str,
) -> Result<(), Failure> {
    drop_local(shared, pattern);
    let mut cursor = 0u64;
    loop {
        let (next, keys) = scan_reply(round_trip(shared, conn, &scan(cursor, pattern)).await?)?;
        if !keys.is_empty() {
            if let Value::ServerError(e) = round_trip(shared, conn, &unlink(&keys)).await? {
                return Err(Failure::reply(&e));
            }
        }
        if next == 0 {
            return Ok(());
        }
        cursor = next;
    }
}

/// Drops the keys matching `pattern` from L1.
pub(super) fn drop_local(shared: &Shared, pattern: &str) {
    // Here, not on the JavaScript thread: a walk of a large L1 takes
    // milliseconds. Fills happen only in this executor, so none can slip in
    // between; reads in flight were spoiled when the call was made.
    if let Some(local) = shared.l1() {
        if pattern.bytes().filter(|b| *b == b'*').count() > glob::MAX_NESTING {
            // Servers differ on patterns past Redis' star limit; dropping all of L1 is always safe.
            local.flush();
        } else {
            local.store.remove_matching(pattern);
        }
    }
}

/// `SCAN cursor MATCH pattern COUNT SCAN_COUNT`.
pub(super) fn scan(cursor: u64, pattern: &str) -> redis::Cmd {
    let mut scan = redis::cmd("SCAN");
    scan.arg(cursor)
        .arg("MATCH")
        .arg(pattern)
        .arg("COUNT")
        .arg(SCAN_COUNT);
    scan
}

/// A `SCAN` reply: the next cursor and the keys.
pub(super) fn scan_reply(reply: Value) -> Result<(u64, Vec<Vec<u8>>), Failure> {
    match reply {
        Value::Array(mut parts) if parts.len() == 2 => {
            let protocol = |e: redis::ParsingError| Failure::new(Code::Protocol, e.to_string());
            let keys: Vec<Vec<u8>> =
                redis::from_redis_value(parts.pop().unwrap_or(Value::Nil)).map_err(protocol)?;
            let next: u64 =
                redis::from_redis_value(parts.pop().unwrap_or(Value::Nil)).map_err(protocol)?;
            Ok((next, keys))
        }
        Value::ServerError(e) => Err(Failure::reply(&e)),
        other => Err(Failure::new(
            Code::Protocol,
            format!("unexpected SCAN reply {other:?}"),
        )),
    }
}

pub(super) async fn round_trip(
    shared: &Shared,
    conn: &mut MultiplexedConnection,
    cmd: &redis::Cmd,
) -> Result<Value, Failure> {
    let sent = std::time::Instant::now();
    match timeout(shared.timeout, conn.send_packed_command(cmd)).await {
        Ok(Ok(v)) => {
            shared.gate.prove(sent);
            Ok(v)
        }
        Ok(Err(e)) => Err(e.into()),
        Err(_) => Err(Failure::timeout()),
    }
}
