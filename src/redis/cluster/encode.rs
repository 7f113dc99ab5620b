//! A per-key call on a cluster: each of its parts (`commands::parts`) with
//! the hash slot that routes it, and the replies of a part sent on a direct
//! node connection turned into what redis-rs answers for it, so both paths
//! reassemble alike (`commands::single_node_shape`).

use redis::cluster_routing::{Route, SlotAddr};
use redis::Value;

use super::slots::{self, misrouted};
use crate::ops::Op;
use crate::redis::commands::{parts, Part};
use crate::redis::tracking::cached;

/// A part of a call, sent to the primary of `slot`.
pub(super) struct Unit<'a> {
    pub(super) slot: u16,
    pub(super) part: Part<'a>,
}

impl Unit<'_> {
    pub(super) fn route(&self) -> Route {
        Route::new(self.slot, SlotAddr::Master)
    }
}

/// The units of a per-key `op`; `tracked`: it fills L1.
pub(super) fn units(op: &Op, tracked: bool) -> Vec<Unit<'_>> {
    parts(op, tracked)
        .into_iter()
        .map(|part| Unit {
            slot: slots::slot(part.key.as_bytes()),
            part,
        })
        .collect()
}

/// A unit's reply from its `n` direct replies, as redis-rs' path answers it;
/// `None`: it must go through redis-rs (misrouted, or not tracked as asked).
/// `read`: the unit reads a value and its `PTTL` ([`Part::reads_pttl`]).
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
        let mut us = units(&op, true);
        assert_ne!(us[0].slot, us[1].slot);
        assert!(us
            .remove(0)
            .part
            .routed()
            .args_iter()
            .next()
            .is_some_and(|a| matches!(a, redis::Arg::Simple(b) if b == b"EVAL")));
    }

    #[test]
    fn direct_replies_become_redis_rs_replies_or_go_back_to_it() {
        let err = |resp: &[u8]| redis::parse_redis_value(resp).unwrap();
        let mut pipe = redis::pipe();
        // A read that fills L1: CLIENT CACHING yes, GET, PTTL.
        let get = Op::Get("k".into());
        let read = units(&get, true).remove(0);
        assert_eq!(read.part.add_to(&mut pipe, true), 3);
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
        let first = units(&get, false).remove(0);
        assert_eq!(first.part.add_to(&mut pipe, true), 1);
    }
}
