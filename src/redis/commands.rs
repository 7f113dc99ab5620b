//! What each call sends to Redis, and how its replies become its answer.

use std::sync::Arc;
use std::time::Instant;

use redis::Value;

use crate::error::{Code, Failure};
use crate::local::Ticket;
use crate::ops::{Answer, Op};
use crate::stats::Counters;

/// Extends a lease only while the caller's token holds it.
pub(super) const RENEW_IF_OWNER: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then \
    return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end";
/// Releases a lease only while the caller's token holds it.
pub(super) const RELEASE_IF_OWNER: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then \
    return redis.call('DEL', KEYS[1]) else return 0 end";

/// Stores a value only while the key still holds the text it was read with.
pub(super) const SET_IF_EQUAL: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then \
    redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) return 1 else return 0 end";

/// `StoreIf`'s command: `SET NX` while absent, else the compare-and-set script.
pub(super) fn store_if(key: &str, json: &str, ttl_ms: u64, expect: Option<&str>) -> redis::Cmd {
    match expect {
        None => {
            let mut c = redis::cmd("SET");
            c.arg(key).arg(json).arg("NX").arg("PX").arg(ttl_ms);
            c
        }
        Some(expect) => {
            let mut c = redis::cmd("EVAL");
            c.arg(SET_IF_EQUAL)
                .arg(1)
                .arg(key)
                .arg(expect)
                .arg(json)
                .arg(ttl_ms);
            c
        }
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

/// Tracking is `OPTIN`: the server tracks only the keys of the command right
/// after `CLIENT CACHING yes`, so only reads that fill L1 (or wake lock
/// waiters) add to its tracking table and to its work per read.
fn caching(pipe: &mut redis::Pipeline) {
    pipe.cmd("CLIENT").arg("CACHING").arg("yes");
}

/// Whether the reply to `CLIENT CACHING yes` says the next read is tracked.
fn cached(v: &Value) -> bool {
    matches!(v, Value::Okay) || matches!(v, Value::SimpleString(s) if s == "OK")
}

/// Adds `op`'s commands to `pipe`; returns how many. A `tracked` read (one
/// with L1 tickets) also asks for each key's `PTTL`, so L1 never outlives the
/// key. `optin`: the connection tracks in `OPTIN` mode, so a tracked read (and
/// the lock key's `PTTL`) is preceded by `CLIENT CACHING yes`.
pub fn add_commands(pipe: &mut redis::Pipeline, op: &Op, tracked: bool, optin: bool) -> usize {
    match op {
        Op::Get(key) => {
            let caches = tracked && optin;
            if caches {
                caching(pipe);
            }
            pipe.cmd("GET").arg(key);
            if tracked {
                pipe.cmd("PTTL").arg(key);
                2 + usize::from(caches)
            } else {
                1
            }
        }
        Op::GetTtl(key) => {
            let caches = tracked && optin;
            if caches {
                caching(pipe);
            }
            pipe.cmd("GET").arg(key);
            pipe.cmd("PTTL").arg(key);
            2 + usize::from(caches)
        }
        Op::Set { key, json, ttl_ms } => {
            pipe.cmd("SET").arg(key).arg(json).arg("PX").arg(*ttl_ms);
            1
        }
        Op::Del(keys) if keys.is_empty() => 0,
        Op::Del(keys) => {
            pipe.cmd("UNLINK").arg(keys);
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
        Op::MSet { entries, ttl_ms } => {
            for (key, json) in entries {
                pipe.cmd("SET").arg(key).arg(json).arg("PX").arg(*ttl_ms);
            }
            entries.len()
        }
        Op::Exists(key) => {
            pipe.cmd("EXISTS").arg(key);
            1
        }
        Op::Ttl(key) => {
            pipe.cmd("TTL").arg(key);
            1
        }
        Op::Ping => {
            pipe.cmd("PING");
            1
        }
        Op::Info => {
            pipe.cmd("DBSIZE");
            pipe.cmd("INFO").arg("memory");
            2
        }
        Op::Clear => {
            pipe.cmd("FLUSHDB");
            1
        }
        Op::LockTake {
            key,
            token,
            lease_ms,
        } => {
            pipe.cmd("SET")
                .arg(key)
                .arg(token)
                .arg("NX")
                .arg("PX")
                .arg(*lease_ms);
            if optin {
                caching(pipe);
            }
            pipe.cmd("PTTL").arg(key);
            2 + usize::from(optin)
        }
        Op::LockRenew {
            key,
            token,
            lease_ms,
        } => {
            pipe.cmd("EVAL")
                .arg(RENEW_IF_OWNER)
                .arg(1)
                .arg(key)
                .arg(token)
                .arg(*lease_ms);
            1
        }
        Op::LockRelease { key, token } => {
            pipe.cmd("EVAL")
                .arg(RELEASE_IF_OWNER)
                .arg(1)
                .arg(key)
                .arg(token);
            1
        }
        Op::StoreIf {
            key,
            json,
            ttl_ms,
            expect,
        } => {
            pipe.add_command(store_if(key, json, *ttl_ms, expect.as_deref()));
            1
        }
        Op::DelPattern(_) => unreachable!("runs on its own"),
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
        Op::Del(keys) => {
            if !keys.is_empty() {
                int(&next())?;
            }
            Answer::num(0.0)
        }
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
        Op::DelPattern(_) => unreachable!("runs on its own"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::local::Local;
    use std::time::Duration;

    #[test]
    fn replies_of_get_fill_l1_and_count_hits() {
        let counters = Arc::new(Counters::default());
        let local = Local::new(
            1 << 20,
            Duration::from_secs(60),
            counters.clone(),
            crate::local::Group::new(),
        );
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
        let counters = Arc::new(Counters::default());
        let local = Local::new(
            1 << 20,
            Duration::from_secs(60),
            counters.clone(),
            crate::local::Group::new(),
        );
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
}
