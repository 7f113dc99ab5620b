//! Each operation defined once, for every topology: what it sends per key
//! ([`parts`]: the key that routes it, its commands on a node, its one
//! command through redis-rs' cluster connection), a single node's form of the
//! whole call ([`add_commands`]), and how the replies become what JavaScript
//! receives ([`apply_reply`]), a cluster's per-key replies read as a single
//! node's first ([`single_node_shape`]).

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Instant;

use redis::{Cmd, Value};

use super::tags;
use super::tracking::{cached, caching};
use crate::error::{Code, Failure};
use crate::local::Ticket;
use crate::ops::{Answer, Op};
use crate::stats::Counters;

/// Extends a lease only while the caller's token holds it.
const RENEW_IF_OWNER: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then \
    return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end";
/// Releases a lease only while the caller's token holds it.
const RELEASE_IF_OWNER: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then \
    return redis.call('DEL', KEYS[1]) else return 0 end";

/// Stores a value only while the key still holds the text it was read with.
const SET_IF_EQUAL: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then \
    redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) return 1 else return 0 end";

/// A read of one key in one command: its value and its `PTTL`.
const READ_WITH_PTTL: &str = "return {redis.call('GET', KEYS[1]), redis.call('PTTL', KEYS[1])}";

/// `SET key value [NX] PX ms`: every write of a value or a lease.
fn set_px(key: &str, value: &str, ms: u64, nx: bool) -> Cmd {
    let mut c = redis::cmd("SET");
    c.arg(key).arg(value);
    if nx {
        c.arg("NX");
    }
    c.arg("PX").arg(ms);
    c
}

/// A command of one key and nothing else (`GET`, `PTTL`, `EXISTS`, ...).
fn of_key(name: &str, key: &str) -> Cmd {
    let mut c = redis::cmd(name);
    c.arg(key);
    c
}

/// `UNLINK` of `keys` (`del` and `invalidatePattern`).
pub(super) fn unlink<K: redis::ToRedisArgs>(keys: K) -> Cmd {
    let mut c = redis::cmd("UNLINK");
    c.arg(keys);
    c
}

/// `EVAL script 1 key args...`.
fn eval_on(script: &str, key: &str) -> Cmd {
    let mut c = redis::cmd("EVAL");
    c.arg(script).arg(1).arg(key);
    c
}

/// `StoreIf`'s command: `SET NX` while absent, else the compare-and-set script.
fn store_if(key: &str, json: &str, ttl_ms: u64, expect: Option<&str>) -> Cmd {
    match expect {
        None => set_px(key, json, ttl_ms, true),
        Some(expect) => {
            let mut c = eval_on(SET_IF_EQUAL, key);
            c.arg(expect).arg(json).arg(ttl_ms);
            c
        }
    }
}

/// One key's share of an op: the key that routes it (its hash slot on a
/// cluster) and what it sends. Owned only for a tag's index key.
pub struct Part<'a> {
    pub key: Cow<'a, str>,
    pub kind: Kind,
}

pub enum Kind {
    /// `GET`, and the key's `PTTL` when `pttl` (so L1 never outlives the
    /// key); `tracked`: a read that fills L1.
    Read { pttl: bool, tracked: bool },
    /// A command sent as it is.
    Plain(Cmd),
    /// A command whose key the server must track for this client (the lock
    /// key's `PTTL`, so that its release or expiry wakes a waiter).
    Tracked(Cmd),
}

impl Part<'_> {
    /// Adds the part's commands for one node (a single server, a Sentinel's
    /// master, a cluster primary's direct connection); returns how many.
    /// `optin`: the connection tracks in `OPTIN` mode, so a tracked read (and
    /// a `Tracked` command) is preceded by `CLIENT CACHING yes`.
    pub fn add_to(self, pipe: &mut redis::Pipeline, optin: bool) -> usize {
        match self.kind {
            Kind::Read { pttl, tracked } => {
                let caches = tracked && optin;
                if caches {
                    caching(pipe);
                }
                pipe.cmd("GET").arg(&*self.key);
                if pttl {
                    pipe.cmd("PTTL").arg(&*self.key);
                }
                1 + usize::from(pttl) + usize::from(caches)
            }
            Kind::Plain(c) => {
                pipe.add_command(c);
                1
            }
            Kind::Tracked(c) => {
                if optin {
                    caching(pipe);
                }
                pipe.add_command(c);
                1 + usize::from(optin)
            }
        }
    }

    /// Whether its replies on a node are a read's value and `PTTL`.
    pub fn reads_pttl(&self) -> bool {
        matches!(self.kind, Kind::Read { pttl: true, .. })
    }

    /// The one command that stands for the part on redis-rs' cluster
    /// connection (whose node connections track every read): a read with its
    /// `PTTL` is one `EVAL` of both, so a pipeline that redis-rs retries
    /// whole after a redirect still reads both from one node.
    pub fn routed(self) -> Cmd {
        match self.kind {
            Kind::Read { pttl: true, .. } => eval_on(READ_WITH_PTTL, &self.key),
            Kind::Read { pttl: false, .. } => of_key("GET", &self.key),
            Kind::Plain(c) | Kind::Tracked(c) => c,
        }
    }
}

/// What a per-key `op` sends, one key at a time; `tracked`: it has L1
/// tickets. A cluster sends exactly these; a single node sends them too,
/// except that `mget` and `del` go as one multi-key command
/// ([`add_commands`]).
pub fn parts(op: &Op, tracked: bool) -> Vec<Part<'_>> {
    fn part(key: &str, kind: Kind) -> Part<'_> {
        Part {
            key: Cow::Borrowed(key),
            kind,
        }
    }

    let read = |key, pttl| part(key, Kind::Read { pttl, tracked });
    let plain = |key, c| part(key, Kind::Plain(c));
    match op {
        Op::Get(key) => vec![read(key, tracked)],
        Op::GetTtl(key) => vec![read(key, true)],
        Op::MGet(keys) => keys.iter().map(|k| read(k, tracked)).collect(),
        // A tagged write's index goes first, as its own `TagIndex` (`tagged.rs`).
        Op::Set {
            key, json, ttl_ms, ..
        } => vec![plain(key, set_px(key, json, *ttl_ms, false))],
        Op::MSet { entries, ttl_ms } => entries
            .iter()
            .map(|(k, json)| plain(k, set_px(k, json, *ttl_ms, false)))
            .collect(),
        Op::Del(keys) => keys.iter().map(|k| plain(k, unlink(k))).collect(),
        Op::Exists(key) => vec![plain(key, of_key("EXISTS", key))],
        Op::Ttl(key) => vec![plain(key, of_key("TTL", key))],
        Op::LockTake {
            key,
            token,
            lease_ms,
        } => vec![
            plain(key, set_px(key, token, *lease_ms, true)),
            part(key, Kind::Tracked(of_key("PTTL", key))),
        ],
        Op::LockRenew {
            key,
            token,
            lease_ms,
        } => {
            let mut c = eval_on(RENEW_IF_OWNER, key);
            c.arg(token).arg(*lease_ms);
            vec![plain(key, c)]
        }
        Op::LockRelease { key, token } => {
            let mut c = eval_on(RELEASE_IF_OWNER, key);
            c.arg(token);
            vec![plain(key, c)]
        }
        Op::StoreIf {
            key,
            json,
            ttl_ms,
            expect,
            ..
        } => vec![plain(key, store_if(key, json, *ttl_ms, expect.as_deref()))],
        // Each on its tag's slot.
        Op::TagIndex { key, tags, ttl_ms } => tags
            .iter()
            .map(|t| Part {
                key: Cow::Owned(tags::index_key(t)),
                kind: Kind::Plain(tags::index(t, key, *ttl_ms)),
            })
            .collect(),
        Op::Ping
        | Op::Info
        | Op::Clear
        | Op::DelPattern(_)
        | Op::DelTags(_)
        | Op::Unsent { .. } => Vec::new(),
    }
}

/// What a whole-database op (`ping`, `getInfo`, `clear`) sends; a cluster
/// sends each command to every primary and combines the replies.
pub fn whole(op: &Op) -> Vec<Cmd> {
    match op {
        Op::Ping => vec![redis::cmd("PING")],
        Op::Info => {
            let mut info = redis::cmd("INFO");
            info.arg("memory");
            vec![redis::cmd("DBSIZE"), info]
        }
        Op::Clear => vec![redis::cmd("FLUSHDB")],
        _ => Vec::new(),
    }
}

/// Adds `op`'s commands for a single node to `pipe`; returns how many. A
/// `tracked` read (one with L1 tickets) also asks for each key's `PTTL`, so
/// L1 never outlives the key. `optin`: see [`Part::add_to`].
pub fn add_commands(pipe: &mut redis::Pipeline, op: &Op, tracked: bool, optin: bool) -> usize {
    match op {
        Op::Del(keys) if keys.is_empty() => 0,
        Op::Del(keys) => {
            pipe.add_command(unlink(keys));
            1
        }
        Op::MGet(keys) if keys.is_empty() => 0,
        Op::MGet(keys) => {
            let caches = tracked && optin;
            if caches {
                caching(pipe);
            }
            pipe.cmd("MGET").arg(keys);
            if tracked {
                for key in keys {
                    pipe.cmd("PTTL").arg(key);
                }
                1 + keys.len() + usize::from(caches)
            } else {
                1
            }
        }
        Op::Ping | Op::Info | Op::Clear => whole(op)
            .into_iter()
            .map(|c| {
                pipe.add_command(c);
                1
            })
            .sum(),
        Op::DelPattern(_) | Op::DelTags(_) => unreachable!("runs on its own"),
        _ => parts(op, tracked)
            .into_iter()
            .map(|p| p.add_to(pipe, optin))
            .sum(),
    }
}

/// Whether `StoreIf`'s reply says it stored: `OK` from `SET NX`, 1 from the script.
fn stored(v: &Value) -> Result<bool, Failure> {
    match v {
        Value::Okay | Value::Int(1) => Ok(true),
        Value::SimpleString(s) => Ok(s == "OK"),
        Value::Nil | Value::Int(_) => Ok(false),
        other => Err(unexpected(other)),
    }
}

fn server_error(v: &Value) -> Option<Failure> {
    match v {
        Value::ServerError(e) => Some(Failure::reply(e)),
        _ => None,
    }
}

fn unexpected(v: &Value) -> Failure {
    server_error(v)
        .unwrap_or_else(|| Failure::new(Code::Protocol, format!("unexpected reply {v:?}")))
}

fn text(v: Value) -> Result<Option<String>, Failure> {
    match v {
        Value::Nil => Ok(None),
        // Invalid UTF-8 becomes U+FFFD, as Node's Buffer#toString does for ioredis.
        Value::BulkString(bytes) => Ok(Some(match String::from_utf8(bytes) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        })),
        Value::SimpleString(s) => Ok(Some(s)),
        Value::VerbatimString { text, .. } => Ok(Some(text)),
        other => Err(unexpected(&other)),
    }
}

fn int(v: &Value) -> Result<i64, Failure> {
    match v {
        Value::Int(n) => Ok(*n),
        other => Err(unexpected(other)),
    }
}

/// Fills L1 with `value` where `ticket` allows, and counts the Redis hit or miss.
fn read(
    counters: &Counters,
    value: &Option<String>,
    ticket: Option<Ticket>,
    pttl: i64,
    sent_at: Instant,
) {
    if let (Some(json), Some(ticket)) = (value, ticket) {
        ticket.fill(Arc::from(json.as_str()), pttl, sent_at);
    }
    let hit = if value.is_some() {
        &counters.redis_hits
    } else {
        &counters.redis_misses
    };
    Counters::add(hit, 1);
}

/// Turns the replies of one op into its answer, filling L1 where its tickets
/// allow. `vals` are exactly the replies of the commands [`add_commands`]
/// added for `op`, tracked when `tickets` is not empty. A read whose
/// `CLIENT CACHING yes` was refused was not tracked: it fills nothing.
pub fn apply_reply(
    counters: &Counters,
    op: &Op,
    vals: Vec<Value>,
    sent_at: Instant,
    tickets: Vec<Ticket>,
    optin: bool,
) -> Result<Answer, Failure> {
    let tracked = !tickets.is_empty();
    let mut vals = vals.into_iter();
    let mut next = || vals.next().unwrap_or(Value::Nil);
    let reads = matches!(op, Op::Get(_) | Op::GetTtl(_) | Op::MGet(_));
    let tickets = if tracked && reads && optin && !cached(&next()) {
        Vec::new()
    } else {
        tickets
    };
    let mut tickets = tickets.into_iter();
    Ok(match op {
        Op::Get(_) => {
            let value = text(next())?;
            let pttl = if tracked {
                int(&next()).unwrap_or(-2)
            } else {
                -2
            };
            read(counters, &value, tickets.next(), pttl, sent_at);
            Answer::texts(0.0, vec![value])
        }
        Op::GetTtl(_) => {
            let value = text(next())?;
            let pttl = int(&next()).unwrap_or(-2);
            let pttl = if value.is_some() { pttl } else { -2 };
            read(counters, &value, tickets.next(), pttl, sent_at);
            Answer::texts(pttl as f64, vec![value])
        }
        Op::Set { .. } => match server_error(&next()) {
            Some(why) => return Err(why),
            None => Answer::num(0.0),
        },
        // How many were deleted (what invalidateTags counts).
        Op::Del(keys) if keys.is_empty() => Answer::num(0.0),
        Op::Del(_) => Answer::num(int(&next())? as f64),
        Op::MGet(keys) => {
            if keys.is_empty() {
                return Ok(Answer::num(0.0));
            }
            let values = match next() {
                Value::Array(values) => values,
                other => return Err(unexpected(&other)),
            };
            // A key of another type answers nil in MGET, as it did for the original.
            let mut texts: Vec<Option<String>> = values
                .into_iter()
                .map(|v| text(v).unwrap_or(None))
                .collect();
            texts.resize(keys.len(), None);
            for value in &texts {
                let pttl = if tracked {
                    int(&next()).unwrap_or(-2)
                } else {
                    -2
                };
                read(counters, value, tickets.next(), pttl, sent_at);
            }
            Answer::texts(0.0, texts)
        }
        Op::MSet { entries, .. } => {
            let replies: Vec<Value> = (0..entries.len()).map(|_| next()).collect();
            if let Some(why) = replies.iter().find_map(server_error) {
                return Err(why);
            }
            Answer::num(0.0)
        }
        Op::Exists(_) => Answer::num(if int(&next())? > 0 { 1.0 } else { 0.0 }),
        Op::Ttl(_) => Answer::num(int(&next())? as f64),
        Op::Ping => {
            let pong = matches!(text(next())?.as_deref(), Some("PONG"));
            Answer::num(if pong { 1.0 } else { 0.0 })
        }
        Op::Info => {
            let keys = int(&next())?;
            let info = text(next())?.unwrap_or_default();
            let human = info
                .lines()
                .find_map(|l| l.strip_prefix("used_memory_human:"))
                .map(|v| v.trim().to_string());
            Answer::texts(
                keys as f64,
                vec![Some(human.unwrap_or_else(|| "unknown".into()))],
            )
        }
        Op::Clear => match next() {
            Value::Okay | Value::SimpleString(_) => Answer::num(0.0),
            other => return Err(unexpected(&other)),
        },
        Op::LockTake { .. } => {
            let taken = match next() {
                Value::Okay => true,
                Value::SimpleString(s) => s == "OK",
                Value::Nil => false,
                other => return Err(unexpected(&other)),
            };
            if optin {
                next(); // CLIENT CACHING yes: a refusal leaves the lock key untracked, as without tracking
            }
            // The PTTL is there for tracking only; an error reply still fails the call.
            if let Some(why) = server_error(&next()) {
                return Err(why);
            }
            Answer::num(if taken { 1.0 } else { 0.0 })
        }
        Op::LockRenew { .. } | Op::LockRelease { .. } => {
            Answer::num(if int(&next())? == 1 { 1.0 } else { 0.0 })
        }
        Op::StoreIf { .. } => {
            let stored = stored(&next())?;
            if !stored {
                Counters::add(&counters.superseded, 1);
            }
            Answer::num(if stored { 1.0 } else { 0.0 })
        }
        Op::TagIndex { tags, .. } => {
            let replies: Vec<Value> = (0..tags.len()).map(|_| next()).collect();
            if let Some(why) = replies.iter().find_map(server_error) {
                return Err(why);
            }
            Answer::num(0.0)
        }
        Op::Unsent { why, .. } => return Err(why.clone()),
        Op::DelPattern(_) | Op::DelTags(_) => unreachable!("runs on its own"),
    })
}

/// A missing key read inside a script comes back as RESP3 `false`.
fn nil_if_false(v: Value) -> Value {
    match v {
        Value::Boolean(false) => Value::Nil,
        v => v,
    }
}

/// A read's `[value, pttl]`, from `EVAL`'s array or a plain `GET`.
fn read_reply(v: Value, tracked: bool) -> (Value, Value) {
    match v {
        Value::Array(mut pair) if tracked && pair.len() == 2 => {
            let pttl = pair.pop().unwrap_or(Value::Nil);
            (nil_if_false(pair.pop().unwrap_or(Value::Nil)), pttl)
        }
        v if tracked => (v, Value::Nil),
        v => (v, Value::Int(-2)),
    }
}

/// The replies of `op`'s [`parts`], one per part as redis-rs answers its
/// [`Part::routed`] command, shaped as a single node's replies to
/// [`add_commands`] (without `OPTIN`), so [`apply_reply`] reads both alike.
pub fn single_node_shape(op: &Op, tracked: bool, vals: Vec<Value>) -> Vec<Value> {
    match op {
        Op::Get(_) | Op::GetTtl(_) => {
            let tracked = tracked || matches!(op, Op::GetTtl(_));
            let (v, pttl) = read_reply(vals.into_iter().next().unwrap_or(Value::Nil), tracked);
            vec![v, pttl]
        }
        Op::MGet(_) => {
            let (values, pttls): (Vec<Value>, Vec<Value>) =
                vals.into_iter().map(|v| read_reply(v, tracked)).unzip();
            let mut out = vec![Value::Array(values)];
            if tracked {
                out.extend(pttls);
            }
            out
        }
        Op::Del(_) => {
            if let Some(e) = vals.iter().find(|v| matches!(v, Value::ServerError(_))) {
                return vec![e.clone()];
            }
            let n = vals
                .iter()
                .map(|v| if let Value::Int(n) = v { *n } else { 0 })
                .sum();
            vec![Value::Int(n)]
        }
        _ => vals,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::local::Local;
    use std::time::Duration;

    fn l1() -> (Arc<Counters>, Arc<Local>) {
        let counters = Arc::new(Counters::default());
        let local = Local::new(
            1 << 20,
            Duration::from_secs(60),
            counters.clone(),
            crate::local::Group::new(),
        );
        (counters, local)
    }

    #[test]
    fn replies_of_get_fill_l1_and_count_hits() {
        let (counters, local) = l1();
        let op = Op::Get("k".into());
        assert!(local.prepare(&op).is_empty(), "a first read fills nothing");
        let tickets = local.prepare(&op);
        let mut pipe = redis::pipe();
        assert_eq!(add_commands(&mut pipe, &op, true, true), 3);
        let answer = apply_reply(
            &counters,
            &op,
            vec![
                Value::Okay,
                Value::BulkString(b"{\"a\":1}".to_vec()),
                Value::Int(5000),
            ],
            Instant::now(),
            tickets,
            true,
        )
        .unwrap();
        assert_eq!(answer.texts, vec![Some("{\"a\":1}".to_string())]);
        assert_eq!(&*local.store.get("k").unwrap().json, "{\"a\":1}");
        assert_eq!(Counters::read(&counters.redis_hits), 1.0);
    }

    #[test]
    fn a_read_the_server_did_not_track_fills_nothing() {
        let (counters, local) = l1();
        let op = Op::Get("k".into());
        local.prepare(&op);
        let tickets = local.prepare(&op);
        assert_eq!(tickets.len(), 1);
        // Anything but OK (an error reply, say): the read went untracked.
        let refused = Value::Nil;
        let answer = apply_reply(
            &counters,
            &op,
            vec![refused, Value::BulkString(b"1".to_vec()), Value::Int(5000)],
            Instant::now(),
            tickets,
            true,
        )
        .unwrap();
        assert_eq!(answer.texts, vec![Some("1".to_string())]);
        assert!(local.store.get("k").is_none());
    }

    #[test]
    fn unexpected_replies_are_protocol_failures() {
        let counters = Counters::default();
        let odd = apply_reply(
            &counters,
            &Op::Ttl("k".into()),
            vec![Value::Okay],
            Instant::now(),
            Vec::new(),
            false,
        );
        assert_eq!(odd.unwrap_err().code, Code::Protocol);
    }

    #[test]
    fn replies_reassemble_as_a_single_node_answers() {
        let op = Op::MGet(vec!["a".into(), "b".into()]);
        let vals = vec![
            Value::Array(vec![Value::BulkString(b"1".to_vec()), Value::Int(900)]),
            Value::Array(vec![Value::Boolean(false), Value::Int(-2)]),
        ];
        assert_eq!(
            single_node_shape(&op, true, vals),
            vec![
                Value::Array(vec![Value::BulkString(b"1".to_vec()), Value::Nil]),
                Value::Int(900),
                Value::Int(-2)
            ]
        );
        let del = Op::Del(vec!["a".into(), "b".into()]);
        assert_eq!(
            single_node_shape(&del, false, vec![Value::Int(1), Value::Int(0)]),
            vec![Value::Int(1)]
        );
    }
}
