//! Tags in Redis (`set`/`getOrSet` `tags`, `invalidateTags`; docs/tags.md).
//!
//! Per tag one sorted set, `native-cache:tag:{t:<tag>}`: its members are the
//! keys written with the tag, each scored with when that write's TTL passes
//! (plus [`TAG_SLACK_MS`]). The `{t:…}` hash tag is never empty, so the index and
//! its snapshot share one slot, and every command here touches one slot only;
//! the keys' own bytes and TTLs are untouched.

use std::sync::atomic::{AtomicU64, Ordering};

use napi_derive::napi;
use redis::{Cmd, Value};

use super::{cluster, scan, Conn, Shared};
use crate::error::{Code, Failure};

/// What every index key starts with.
pub const TAG_PREFIX: &str = "native-cache:tag:";

/// Added to a member's score and to the index's own TTL: the key's `SET` may
/// run a little after its index entry (another primary, another clock).
#[napi]
pub const TAG_SLACK_MS: u32 = 1000;
const SLACK_MS: u64 = TAG_SLACK_MS as u64;

/// Members popped per round of `invalidateTags`.
const POP_COUNT: usize = 1000;

/// The start of every index key (and of its snapshots), for tools that measure them.
#[napi]
#[cfg_attr(test, allow(dead_code))] // read by JavaScript
pub const TAG_INDEX_PREFIX: &str = TAG_PREFIX;

/// Indexes `ARGV[1]` under the tag `KEYS[1]` for `ARGV[2]` ms: drops the
/// members whose time passed (so an index holds at most the keys written
/// within their TTL), adds the key, and keeps the index alive at least that
/// long (so an index whose keys all expired goes by itself).
const INDEX: &str = "local t = redis.call('TIME') \
    local now = t[1] * 1000 + math.floor(t[2] / 1000) \
    local ttl = tonumber(ARGV[2]) \
    redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. now) \
    redis.call('ZADD', KEYS[1], now + ttl, ARGV[1]) \
    if redis.call('PTTL', KEYS[1]) < ttl then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end \
    return 1";

/// Up to `ARGV[1]` members of the snapshot `KEYS[1]` whose time has not passed, removed from it.
const POP_LIVE: &str = "local t = redis.call('TIME') \
    local now = t[1] * 1000 + math.floor(t[2] / 1000) \
    redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. now) \
    local popped = redis.call('ZPOPMIN', KEYS[1], ARGV[1]) \
    local keys = {} \
    for i = 1, #popped, 2 do keys[#keys + 1] = popped[i] end \
    return keys";

/// The index key of `tag`.
pub fn index_key(tag: &str) -> String {
    format!("{TAG_PREFIX}{{t:{tag}}}")
}

/// The command that indexes `key` under `tag` for a write of `ttl_ms`.
pub fn index(tag: &str, key: &str, ttl_ms: u64) -> Cmd {
    let mut c = redis::cmd("EVAL");
    c.arg(INDEX)
        .arg(1)
        .arg(index_key(tag))
        .arg(key)
        .arg(ttl_ms.saturating_add(SLACK_MS));
    c
}

/// A name for one snapshot of `tag`'s index, unique across processes.
fn snapshot_key(tag: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let pid = std::process::id();
    format!("{}:dying:{pid:x}.{nanos:x}.{n:x}", index_key(tag))
}

/// `tag`'s index renamed to a fresh snapshot (keeping its TTL, so a process
/// that dies mid-way leaves it to expire); writes from now on start a new
/// index. `None`: no key has the tag.
pub(super) async fn snapshot(
    shared: &Shared,
    conn: &mut Conn,
    tag: &str,
) -> Result<Option<String>, Failure> {
    let dying = snapshot_key(tag);
    let mut rename = redis::cmd("RENAME");
    rename.arg(index_key(tag)).arg(&dying);
    match one(shared, conn, &rename).await {
        Ok(_) => Ok(Some(dying)),
        Err(f) if f.code == Code::Server && f.message.contains("no such key") => Ok(None),
        Err(f) => Err(f),
    }
}

/// The next members of the snapshot `dying` still indexed; empty when done.
pub(super) async fn pop(
    shared: &Shared,
    conn: &mut Conn,
    dying: &str,
) -> Result<Vec<String>, Failure> {
    let mut c = redis::cmd("EVAL");
    c.arg(POP_LIVE).arg(1).arg(dying).arg(POP_COUNT);
    let v = one(shared, conn, &c).await?;
    redis::from_redis_value(v).map_err(|e| Failure::new(Code::Protocol, e.to_string()))
}

/// One command on the node of its key; a server error reply is a failure.
async fn one(shared: &Shared, conn: &mut Conn, cmd: &Cmd) -> Result<Value, Failure> {
    let v = match conn {
        Conn::Single(c) => scan::round_trip(shared, c, cmd).await?,
        Conn::Cluster(c) => cluster::one(shared, c, cmd).await?,
    };
    match v {
        Value::ServerError(e) => Err(Failure::reply(&e)),
        v => Ok(v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redis::cluster::slot;

    #[test]
    fn an_index_and_its_snapshots_share_a_slot_whatever_the_tag() {
        for tag in ["a", "}", "}x", "{", "a}b", "{}", "x{y}z"] {
            let index = index_key(tag);
            assert_eq!(
                slot(index.as_bytes()),
                slot(snapshot_key(tag).as_bytes()),
                "{tag}"
            );
        }
        assert_ne!(
            slot(index_key("a").as_bytes()),
            slot(index_key("b").as_bytes())
        );
    }
}
