//! Tags in Redis (`set`/`getOrSet` `tags`, `invalidateTags`; docs/tags.md).
//!
//! Per tag one sorted set, `native-cache:tag:{t:<tag>}`: its members are the
//! keys written with the tag, each scored with when that write's TTL passes
//! (plus [`TAG_SLACK_MS`]). The `{t:…}` hash tag is never empty, so the index and
//! its dying set share one slot, and every command here touches one slot only;
//! the keys' own bytes and TTLs are untouched.

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

/// Members deleted per round of `invalidateTags`.
const POP_COUNT: usize = 1000;

/// The start of every index key (and of its dying set), for tools that measure them.
#[napi]
#[cfg_attr(test, allow(dead_code))] // read by JavaScript
pub const TAG_INDEX_PREFIX: &str = TAG_PREFIX;

/// Indexes `ARGV[1]` under the tag `KEYS[1]` for `ARGV[2]` ms: drops the
/// members whose time passed (so an index holds at most the keys written
/// within their TTL), adds the key unless it is indexed for longer already (a
/// `getOrSet` write-back that lost must not shorten the winner's entry; no
/// `ZADD GT`, for Redis 6.0), and keeps the index alive at least that long.
const INDEX: &str = "local t = redis.call('TIME') \
    local now = t[1] * 1000 + math.floor(t[2] / 1000) \
    local ttl = tonumber(ARGV[2]) \
    redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. now) \
    local had = redis.call('ZSCORE', KEYS[1], ARGV[1]) \
    if not had or tonumber(had) < now + ttl then redis.call('ZADD', KEYS[1], now + ttl, ARGV[1]) end \
    if redis.call('PTTL', KEYS[1]) < ttl then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end \
    return 1";

/// Moves the index `KEYS[1]` into the tag's dying set `KEYS[2]`. A member in
/// both gets the sum of its scores: later than either, and surely changed, so
/// a call that deleted its key before this newer write finds it changed and
/// leaves it (`DONE`); `MAX` would keep the old score when the newer write's
/// TTL is no longer. `ZUNIONSTORE` drops the destination's TTL: the longer of
/// both is put back, so a dying set nobody drains expires by itself.
const MERGE: &str = "local a = redis.call('PTTL', KEYS[1]) \
    if a == -2 then return 0 end \
    local b = redis.call('PTTL', KEYS[2]) \
    redis.call('ZUNIONSTORE', KEYS[2], 2, KEYS[2], KEYS[1], 'AGGREGATE', 'SUM') \
    redis.call('DEL', KEYS[1]) \
    if a > 0 and b ~= -1 then redis.call('PEXPIRE', KEYS[2], math.max(a, b)) end \
    return 1";

/// Drops the dying set's members whose time passed; answers up to `ARGV[1]`
/// of the rest, each with its score, left in the set.
const LIVE: &str = "local t = redis.call('TIME') \
    local now = t[1] * 1000 + math.floor(t[2] / 1000) \
    redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. now) \
    return redis.call('ZRANGE', KEYS[1], 0, ARGV[1] - 1, 'WITHSCORES')";

/// Removes each member `ARGV[2i-1]` still scored `ARGV[2i]`: one merged in
/// again meanwhile (a newer write) stays for the next round.
const DONE: &str = "for i = 1, #ARGV, 2 do \
    if redis.call('ZSCORE', KEYS[1], ARGV[i]) == ARGV[i + 1] then redis.call('ZREM', KEYS[1], ARGV[i]) end \
    end return 1";

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

/// The one dying set of `tag` (same slot as its index): what every
/// `invalidateTags` of the tag drains; never ends with `}`, so no index is named so.
pub(super) fn dying_key(tag: &str) -> String {
    format!("{}:dying", index_key(tag))
}

/// Moves `tag`'s index into its dying set; writes from now on start a new index.
pub(super) async fn merge(
    shared: &Shared,
    conn: &mut Conn,
    dying: &str,
    tag: &str,
) -> Result<(), Failure> {
    let mut c = redis::cmd("EVAL");
    c.arg(MERGE).arg(2).arg(index_key(tag)).arg(dying);
    one(shared, conn, &c).await.map(|_| ())
}

/// The next live members of the dying set, with their scores; empty when it is.
pub(super) async fn live(
    shared: &Shared,
    conn: &mut Conn,
    dying: &str,
) -> Result<Vec<(String, String)>, Failure> {
    let mut c = redis::cmd("EVAL");
    c.arg(LIVE).arg(1).arg(dying).arg(POP_COUNT);
    let v = one(shared, conn, &c).await?;
    let flat: Vec<String> =
        redis::from_redis_value(v).map_err(|e| Failure::new(Code::Protocol, e.to_string()))?;
    let mut pairs = Vec::with_capacity(flat.len() / 2);
    let mut it = flat.into_iter();
    while let (Some(k), Some(s)) = (it.next(), it.next()) {
        pairs.push((k, s));
    }
    Ok(pairs)
}

/// Takes `members` (deleted by now) out of the dying set.
pub(super) async fn done(
    shared: &Shared,
    conn: &mut Conn,
    dying: &str,
    members: &[(String, String)],
) -> Result<(), Failure> {
    let mut c = redis::cmd("EVAL");
    c.arg(DONE).arg(1).arg(dying);
    for (k, s) in members {
        c.arg(k).arg(s);
    }
    one(shared, conn, &c).await.map(|_| ())
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
    fn an_index_and_its_dying_set_share_a_slot_whatever_the_tag() {
        for tag in ["a", "}", "}x", "{", "a}b", "{}", "x{y}z"] {
            let index = index_key(tag);
            assert_eq!(
                slot(index.as_bytes()),
                slot(dying_key(tag).as_bytes()),
                "{tag}"
            );
        }
        assert_ne!(
            slot(index_key("a").as_bytes()),
            slot(index_key("b").as_bytes())
        );
    }
}
