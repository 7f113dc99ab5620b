//! The coherence rules of L1, guards and groups, without Redis or Node.

use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::Value;
use tokio::sync::Notify;

use super::doorkeeper::{Doorkeeper, DOORKEEPER_BITS};
use super::*;
use crate::ops::Op;
use crate::stats::Counters;

#[test]
fn a_doorkeeper_of_any_size_stays_in_bounds() {
    for bytes in [0, 1, 7, 9, 62, 500, 513, 4096] {
        let mut d = Doorkeeper::new(bytes);
        for i in 0..5000 {
            d.seen(&format!("k{i}"));
        }
        let mut again = Doorkeeper::new(bytes);
        again.seen("x");
        assert!(again.seen("x"), "a key read before is seen ({bytes} bytes)");
    }
}

fn local() -> Arc<Local> {
    Local::new(
        1 << 20,
        Duration::from_secs(60),
        Arc::new(Counters::default()),
        Group::new(),
    )
}

#[test]
fn fill_lands_when_nothing_happened() {
    let l = local();
    let t = l.ticket("k");
    assert!(t.fill(Arc::from("1"), -1, Instant::now()));
    assert_eq!(&*l.store.get("k").unwrap().json, "1");
    assert!(l.group.lock().slots.is_empty(), "the slot is released");
}

#[test]
fn invalidation_during_read_spoils_the_fill() {
    let l = local();
    let t = l.ticket("k");
    l.invalidate("k");
    assert!(!t.fill(Arc::from("old"), -1, Instant::now()));
    assert!(l.store.get("k").is_none());
}

#[test]
fn flush_during_read_spoils_the_fill() {
    let l = local();
    let t = l.ticket("k");
    l.flush();
    assert!(!t.fill(Arc::from("old"), -1, Instant::now()));
}

#[test]
fn invalidating_another_key_does_not_spoil() {
    let l = local();
    let t = l.ticket("k");
    l.invalidate("other");
    assert!(t.fill(Arc::from("1"), 5_000, Instant::now()));
}

#[test]
fn a_later_read_of_the_same_key_still_fills() {
    let l = local();
    let early = l.ticket("k");
    l.invalidate("k");
    let late = l.ticket("k");
    assert!(!early.fill(Arc::from("old"), -1, Instant::now()));
    assert!(late.fill(Arc::from("new"), -1, Instant::now()));
    assert_eq!(&*l.store.get("k").unwrap().json, "new");
}

#[test]
fn writes_drop_their_keys_and_spoil_reads_in_flight() {
    let l = local();
    let only = l.prepare(&Op::Del(vec!["x".into()]));
    assert!(only.is_empty(), "one instance: no write ticket to take");
    // Two instances from here on.
    l.group.enter();
    l.group.enter();
    let read = l.ticket("k");
    let tickets = l.prepare(&Op::Set {
        key: "k".into(),
        json: "2".into(),
        ttl_ms: 1000,
        tags: None,
    });
    assert!(
        !read.fill(Arc::from("1"), -1, Instant::now()),
        "the older read must not land"
    );
    assert!(
        !l.ticket("k").tainted,
        "a read on the writer's own connection is answered after the write"
    );
    assert!(
        l.group.ticket(1, Some(&l), "k").tainted,
        "another instance's read taken while the write is in flight must not fill"
    );
    drop(tickets);
    assert!(l.ticket("k").fill(Arc::from("2"), -1, Instant::now()));
}

#[test]
fn a_pattern_delete_spoils_the_reads_in_flight_of_its_keys() {
    let l = local();
    let read = l.ticket("user:1");
    let other = l.ticket("post:1");
    l.prepare(&Op::DelPattern("user:*".into()));
    assert!(!read.fill(Arc::from("old"), -1, Instant::now()));
    assert!(other.fill(Arc::from("1"), -1, Instant::now()));
}

#[test]
fn huge_mgets_take_no_tickets() {
    let l = local();
    let keys: Vec<String> = (0..=MAX_TRACKED_MGET).map(|i| i.to_string()).collect();
    assert!(l.prepare(&Op::MGet(keys.clone())).is_empty());
    assert!(l.prepare(&Op::MGet(keys)).is_empty());
    assert!(l
        .prepare(&Op::MGet(vec!["a".into(), "b".into()]))
        .is_empty());
    assert_eq!(l.prepare(&Op::MGet(vec!["a".into(), "c".into()])).len(), 2);
}

#[test]
fn only_a_second_read_takes_a_ticket() {
    let l = local();
    let get = |k: &str| l.prepare(&Op::Get(k.into())).len();
    assert_eq!(get("k"), 0, "a first read must not fill L1");
    assert_eq!(get("k"), 1);
    assert_eq!(get("other"), 0);
    assert_eq!(
        l.prepare(&Op::GetTtl("new".into())).len(),
        1,
        "getOrSet reads are always tracked"
    );
}

#[test]
fn the_doorkeeper_forgets_and_rarely_errs() {
    let mut d = Doorkeeper::new(DOORKEEPER_BITS as u64 / 8);
    let n = 50_000;
    let false_seen = (0..n).filter(|i| d.seen(&format!("cold:{i}"))).count();
    assert!(
        false_seen < n / 50,
        "{false_seen} of {n} first reads passed for seen"
    );
    assert!((0..100).all(|i| d.seen(&format!("cold:{i}"))));
    for i in 0..DOORKEEPER_BITS / 8 {
        d.seen(&format!("other:{i}"));
    }
    // Started over: the cold keys pass for seen only as often as any key never read (about 1 % here).
    let still = (0..100).filter(|i| d.seen(&format!("cold:{i}"))).count();
    assert!(
        still < 10,
        "the doorkeeper must start over: {still} of 100 cold keys still seen"
    );
    assert_eq!(doorkeeper_bytes(64 << 20), 128 << 10);
    assert_eq!(doorkeeper_bytes(64 << 10), 2 << 10);
    assert_eq!(doorkeeper_bytes(0), 512);
}

#[test]
fn tracking_pushes_invalidate_keys_and_null_flushes() {
    let l = local();
    l.store
        .insert("a", Arc::from("1"), Instant::now() + Duration::from_secs(9));
    l.store
        .insert("b", Arc::from("1"), Instant::now() + Duration::from_secs(9));
    l.on_invalidate(vec![Value::Array(vec![Value::BulkString(b"a".to_vec())])]);
    assert!(l.store.get("a").is_none() && l.store.get("b").is_some());
    let t = l.ticket("b");
    l.on_invalidate(vec![Value::Nil]);
    assert!(l.store.get("b").is_none());
    assert!(!t.fill(Arc::from("old"), -1, Instant::now()));
}

#[test]
fn pushes_and_flushes_wake_watchers_of_their_keys_only() {
    let l = local();
    let keys = ["k".to_string(), "k:__lock".to_string()];
    let n = l.watch(&keys);
    let other = l.watch(&["x".to_string()]);
    l.invalidate("k"); // a local write is not a push
    l.on_invalidate(vec![Value::Array(vec![Value::BulkString(
        b"k:__lock".to_vec(),
    )])]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let soon = |n: Arc<Notify>| {
        rt.block_on(async move {
            tokio::time::timeout(Duration::from_millis(20), n.notified())
                .await
                .is_ok()
        })
    };
    assert!(soon(n.clone()), "the permit was kept for a later await");
    assert!(!soon(other.clone()));
    l.unwatch(&keys, &n);
    l.flush();
    assert!(soon(other.clone()));
    assert!(l.own().watchers.is_empty());
}

#[test]
fn expiry_is_the_smaller_of_pttl_and_max_ttl() {
    let l = local();
    let sent = Instant::now();
    assert!(l.ticket("a").fill(Arc::from("1"), 10, sent));
    assert!(l.store.get("a").unwrap().deadline <= sent + Duration::from_millis(10));
    assert!(l.ticket("b").fill(Arc::from("1"), 10_000_000, sent));
    assert!(l.store.get("b").unwrap().deadline <= sent + Duration::from_secs(60));
    assert!(
        !l.ticket("c").fill(Arc::from("1"), -2, sent),
        "a missing key is not cached"
    );
}

fn member(group: &Arc<Group>) -> Arc<Local> {
    Local::new(
        1 << 20,
        Duration::from_secs(60),
        Arc::new(Counters::default()),
        group.clone(),
    )
}

#[test]
fn a_write_by_one_member_reaches_every_member_at_once() {
    let g = Group::new();
    g.enter();
    g.enter();
    let (a, b) = (member(&g), member(&g));
    assert!(a.ticket("k").fill(Arc::from("old"), -1, Instant::now()));
    let a_read = a.ticket("k");
    let write = g.prepare(1, None, &Op::Del(vec!["k".into()]));
    assert!(
        a.store.get("k").is_none(),
        "dropped from the other member's L1"
    );
    assert!(!a_read.fill(Arc::from("old"), -1, Instant::now()));
    assert!(
        !a.ticket("k").fill(Arc::from("old"), -1, Instant::now()),
        "a read taken while the write is in flight may have been answered before it"
    );
    drop(write);
    assert!(a.ticket("k").fill(Arc::from("new"), -1, Instant::now()));
    let sweep = g.prepare(2, Some(&b), &Op::Clear);
    assert!(a.store.get("k").is_none(), "a clear empties every member");
    assert!(!a.ticket("x").fill(Arc::from("1"), -1, Instant::now()));
    drop(sweep);
    b.close();
    assert!(a.ticket("x").fill(Arc::from("1"), -1, Instant::now()));
}

fn push(key: &str) -> Vec<Value> {
    vec![Value::Array(vec![Value::BulkString(
        key.as_bytes().to_vec(),
    )])]
}

/// `getOrSet`'s guard of `key` and its read, queued and not answered yet.
fn guarded_read(g: &Arc<Group>, l: &Arc<Local>, key: &str) -> (Ticket, Vec<Ticket>) {
    let guard = g.guard(0, Some(l), key);
    let mut read = g.prepare(0, Some(l), &Op::GetTtl(key.into()));
    Group::link(&guard, &mut read);
    (guard, read)
}

#[test]
fn what_arrives_while_the_guarded_read_is_out_is_what_it_will_see() {
    let g = Group::new();
    let l = member(&g);
    let (guard, read) = guarded_read(&g, &l, "k");
    // The push of a write sent before the read, a clear's flush: ahead of its reply on the stream.
    l.on_invalidate(push("k"));
    l.on_invalidate(vec![Value::Nil]);
    assert!(guard.fresh(), "spoiled before its read's reply");
    drop(read);
    assert!(guard.fresh());
    l.flush();
    assert!(!guard.fresh(), "a flush after the read's reply");

    let (guard, _read_out) = guarded_read(&g, &l, "k");
    drop(g.prepare(0, Some(&l), &Op::Del(vec!["k".into()])));
    assert!(
        !guard.fresh(),
        "a write made after the guard, its read still out"
    );
}

#[test]
fn a_guard_is_spoiled_by_writes_pushes_and_sweeps_only() {
    let g = Group::new();
    let l = member(&g);
    let (guard, read) = guarded_read(&g, &l, "k");
    l.on_invalidate(push("k"));
    drop(read);
    assert!(
        guard.fresh(),
        "a push before the read's reply is about a write it saw"
    );
    g.prepare(
        0,
        Some(&l),
        &Op::Set {
            key: "other".into(),
            json: "1".into(),
            ttl_ms: 9,
            tags: None,
        },
    );
    assert!(guard.fresh());
    l.on_invalidate(push("k"));
    assert!(!guard.fresh(), "a push for the key");
    let guard = g.guard(0, None, "k");
    drop(g.prepare(0, None, &Op::Del(vec!["k".into()])));
    assert!(!guard.fresh(), "a write made in this process");
    let guard = g.guard(0, None, "k");
    drop(g.prepare(0, None, &Op::DelPattern("*".into())));
    assert!(!guard.fresh(), "a pattern delete");
}
