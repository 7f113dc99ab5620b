//! What each per-key op sends on a cluster, one command per key (a [`Unit`]),
//! in its two forms (through redis-rs, on a direct node connection), and its
//! replies reshaped as a single node's, so `commands::apply_reply` reads both
//! alike. An op's cluster encoding is [`units`] (and, for its replies,
//! [`single_node_shape`]).

use redis::cluster_routing::{Route, SlotAddr};
use redis::{Cmd, Value};

use super::slots::{self, misrouted};
use crate::ops::Op;
use crate::redis::commands::{RELEASE_IF_OWNER, RENEW_IF_OWNER};
use crate::redis::tracking::{cached, caching};

/// A read of one key in one command: its value and its `PTTL`.
const READ: &str = "return {redis.call('GET', KEYS[1]), redis.call('PTTL', KEYS[1])}";

/// One command of a call, sent to the primary of `slot`.
pub(super) struct Unit {
    pub(super) slot: u16,
    /// The command as sent through redis-rs (whose node connections track
    /// every read).
    pub(super) cmd: Cmd,
    /// Sent on a direct connection instead (`OPTIN` tracking), it becomes
    /// more than one command.
    pub(super) direct: Direct1,
}

/// A unit's form on a direct node connection.
pub(super) enum Direct1 {
    /// `cmd` as it is.
    Same,
    /// A read with its `PTTL` (`cmd` is the `EVAL` of both); `tracked`: one
    /// that fills L1, so preceded by `CLIENT CACHING yes`.
    Read { key: String, tracked: bool },
    /// `cmd` preceded by `CLIENT CACHING yes` (the lock key's `PTTL`).
    Tracked,
}

impl Unit {
    pub(super) fn route(&self) -> Route {
        Route::new(self.slot, SlotAddr::Master)
    }
}

pub(super) fn unit(key: &str, cmd: Cmd) -> Unit {
    Unit {
        slot: slots::slot(key.as_bytes()),
        cmd,
        direct: Direct1::Same,
    }
}

/// A read of `key`; with `pttl`, of its `PTTL` too (`tracked`: it fills L1).
pub(super) fn read_unit(key: &str, pttl: bool, tracked: bool) -> Unit {
    let mut u = unit(key, read_cmd(key, pttl));
    if pttl {
        u.direct = Direct1::Read {
            key: key.to_string(),
            tracked,
        };
    }
    u
}

/// Adds `u`'s commands to a direct connection's pipeline; returns how many.
/// `optin`: the connection tracks only reads after `CLIENT CACHING yes`.
pub(super) fn add_direct(pipe: &mut redis::Pipeline, u: Unit, optin: bool) -> usize {
    match u.direct {
        Direct1::Same => {
            pipe.add_command(u.cmd);
            1
        }
        Direct1::Read { key, tracked } => {
            let caches = tracked && optin;
            if caches {
                caching(pipe);
            }
            pipe.cmd("GET").arg(&key);
            pipe.cmd("PTTL").arg(&key);
            2 + usize::from(caches)
        }
        Direct1::Tracked => {
            if optin {
                caching(pipe);
            }
            pipe.add_command(u.cmd);
            1 + usize::from(optin)
        }
    }
}

/// A unit's reply from its `n` direct replies, as redis-rs' path answers it;
/// `None`: it must go through redis-rs (misrouted, or not tracked as asked).
pub(super) fn direct_reply(
    vals: &mut std::vec::IntoIter<Value>,
    n: usize,
    read: bool,
) -> Option<Value> {
    let mut got: Vec<Value> = vals.take(n).collect();
    if got.len() != n || got.iter().any(misrouted) {
        return None;
    }
    let caching = if read { n == 3 } else { n == 2 };
    if caching && !cached(&got.remove(0)) {
        return None;
    }
    if read {
        Some(Value::Array(got))
    } else {
        got.pop()
    }
}

pub(super) fn read_cmd(key: &str, tracked: bool) -> Cmd {
    if tracked {
        let mut c = redis::cmd("EVAL");
        c.arg(READ).arg(1).arg(key);
        c
    } else {
        let mut c = redis::cmd("GET");
        c.arg(key);
        c
    }
}

/// The commands of a per-key `op`, one per key (two for a lock take).
pub(super) fn units(op: &Op, tracked: bool) -> Vec<Unit> {
    let cmd = |name: &str| redis::cmd(name);
    match op {
        Op::Get(key) => vec![read_unit(key, tracked, tracked)],
        Op::GetTtl(key) => vec![read_unit(key, true, tracked)],
        Op::Set { key, json, ttl_ms } => {
            let mut c = cmd("SET");
            c.arg(key).arg(json).arg("PX").arg(*ttl_ms);
            vec![unit(key, c)]
        }
        Op::Del(keys) => keys
            .iter()
            .map(|k| {
                let mut c = cmd("UNLINK");
                c.arg(k);
                unit(k, c)
            })
            .collect(),
        Op::MGet(keys) => keys
            .iter()
            .map(|k| read_unit(k, tracked, tracked))
            .collect(),
        Op::MSet { entries, ttl_ms } => entries
            .iter()
            .map(|(k, json)| {
                let mut c = cmd("SET");
                c.arg(k).arg(json).arg("PX").arg(*ttl_ms);
                unit(k, c)
            })
            .collect(),
        Op::Exists(key) => {
            let mut c = cmd("EXISTS");
            c.arg(key);
            vec![unit(key, c)]
        }
        Op::Ttl(key) => {
            let mut c = cmd("TTL");
            c.arg(key);
            vec![unit(key, c)]
        }
        Op::LockTake {
            key,
            token,
            lease_ms,
        } => {
            let mut take = cmd("SET");
            take.arg(key).arg(token).arg("NX").arg("PX").arg(*lease_ms);
            let mut pttl = cmd("PTTL");
            pttl.arg(key);
            // Tracked, so that its change wakes this instance's lock waiters.
            let mut pttl = unit(key, pttl);
            pttl.direct = Direct1::Tracked;
            vec![unit(key, take), pttl]
        }
        Op::LockRenew {
            key,
            token,
            lease_ms,
        } => {
            let mut c = cmd("EVAL");
            c.arg(RENEW_IF_OWNER)
                .arg(1)
                .arg(key)
                .arg(token)
                .arg(*lease_ms);
            vec![unit(key, c)]
        }
        Op::LockRelease { key, token } => {
            let mut c = cmd("EVAL");
            c.arg(RELEASE_IF_OWNER).arg(1).arg(key).arg(token);
            vec![unit(key, c)]
        }
        Op::StoreIf {
            key,
            json,
            ttl_ms,
            expect,
        } => vec![unit(
            key,
            crate::redis::commands::store_if(key, json, *ttl_ms, expect.as_deref()),
        )],
        Op::Ping | Op::Info | Op::Clear | Op::DelPattern(_) => {
            unreachable!("runs on every primary")
        }
    }
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

/// The units' replies of `op`, shaped as a single node's replies to
/// `commands::add_commands`, so [`apply_reply`] reads both alike.
pub(super) fn single_node_shape(op: &Op, tracked: bool, vals: Vec<Value>) -> Vec<Value> {
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

    #[test]
    fn calls_split_into_one_command_per_key_on_its_slot() {
        let op = Op::MSet {
            entries: vec![("a".into(), "1".into()), ("{a}b".into(), "2".into())],
            ttl_ms: 5000,
        };
        let us = units(&op, false);
        assert_eq!(us.len(), 2);
        assert_eq!(us[0].slot, us[1].slot, "a hash tag keeps keys on one slot");
        let op = Op::MGet(vec!["a".into(), "b".into()]);
        let us = units(&op, true);
        assert_ne!(us[0].slot, us[1].slot);
        assert!(us[0]
            .cmd
            .args_iter()
            .next()
            .is_some_and(|a| matches!(a, redis::Arg::Simple(b) if b == b"EVAL")));
    }

    #[test]
    fn direct_replies_become_redis_rs_replies_or_go_back_to_it() {
        let err = |resp: &[u8]| redis::parse_redis_value(resp).unwrap();
        let mut pipe = redis::pipe();
        // A read that fills L1: CLIENT CACHING yes, GET, PTTL.
        let read = units(&Op::Get("k".into()), true).remove(0);
        assert_eq!(add_direct(&mut pipe, read, true), 3);
        let one =
            |vals: Vec<Value>, n: usize, read: bool| direct_reply(&mut vals.into_iter(), n, read);
        assert_eq!(
            one(
                vec![
                    Value::Okay,
                    Value::BulkString(b"1".to_vec()),
                    Value::Int(900)
                ],
                3,
                true
            ),
            Some(Value::Array(vec![
                Value::BulkString(b"1".to_vec()),
                Value::Int(900)
            ]))
        );
        // Not tracked as asked, or misrouted: sent again through redis-rs.
        assert_eq!(
            one(vec![Value::Nil, Value::Nil, Value::Int(-2)], 3, true),
            None
        );
        let moved = err(b"-MOVED 3999 127.0.0.1:6381\r\n");
        assert_eq!(
            one(vec![Value::Okay, moved.clone(), moved.clone()], 3, true),
            None
        );
        assert_eq!(
            one(vec![err(b"-ASK 3999 127.0.0.1:6381\r\n")], 1, false),
            None
        );
        // Other error replies are the call's own.
        let wrongtype = err(b"-WRONGTYPE Operation against a key\r\n");
        assert_eq!(one(vec![wrongtype.clone()], 1, false), Some(wrongtype));
        // A first read is a plain GET.
        let first = units(&Op::Get("k".into()), false).remove(0);
        assert_eq!(add_direct(&mut pipe, first, true), 1);
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
