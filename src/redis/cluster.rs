//! Redis Cluster: redis-rs' `cluster-async` connection (slot map, `MOVED`/`ASK`,
//! per-node reconnects, fan-out), with client tracking switched on for every
//! node connection it opens, and what each call sends per slot.
//!
//! Tracking: redis-rs opens node connections itself (seed nodes, topology
//! refresh, a `MOVED` to a node it has not met, reconnects), and every one of
//! them goes through [`Tracked::connect_with_config`], which sends
//! `CLIENT TRACKING ON` before the connection serves its first read. Pushes
//! of every node arrive through the one push sender of the client, without
//! the node's address; so a `Disconnection` of any node empties all of L1.
//!
//! Liveness: a reply from one node proves nothing about the others, so only
//! the heartbeat proves the gate: a `PING` answered by every primary.
//!
//! Per-key calls: a batch goes out as one pipeline per primary on our own
//! node connections (`direct.rs`, `OPTIN` tracking, reads as on a single
//! node); keys whose slot our map does not cover, and commands a node
//! redirects, go through redis-rs, grouped by slot, one pipeline per slot,
//! sent concurrently. The calls on one key share a slot, so they keep their
//! order. Through redis-rs each key's command carries all it needs (a read
//! that fills L1 is one `EVAL` of `GET` + `PTTL`), so a pipeline that
//! redis-rs retries whole after a redirect still reads each key from one node.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use futures_util::future::{join, join_all};
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::{ClusterConnection, Connect};
use redis::cluster_routing::{
    AggregateOp, MultipleNodeRoutingInfo, ResponsePolicy, Route, RoutingInfo,
    SingleNodeRoutingInfo, SlotAddr,
};
use redis::{
    AsyncConnectionConfig, Cmd, IntoConnectionInfo, ProtocolVersion, PushInfo, PushKind,
    RedisFuture, Value,
};
use tokio::time::{sleep, timeout};

use super::commands::{apply_reply, RELEASE_IF_OWNER, RENEW_IF_OWNER};
use super::direct::{self, Direct};
use super::executor::Planned;
use super::{Conn, Link, Shared};
use crate::error::{classify_connect, Code, ConnectFailure, Failure};
use crate::human::bytes_to_human;
use crate::ops::{Op, Replies};
use crate::options::{ClusterTarget, Target, HEARTBEAT_INTERVAL_MS};

/// redis-rs' cluster connection: routing, redirects, reconnects.
pub type Routed = ClusterConnection<Tracked>;

/// A cluster connection: redis-rs' and, for per-key calls, our direct node
/// connections (`direct.rs`).
#[derive(Clone)]
pub struct Cluster {
    routed: Routed,
    direct: Arc<Direct>,
}

/// A read of one key in one command: its value and its `PTTL`.
const READ: &str = "return {redis.call('GET', KEYS[1]), redis.call('PTTL', KEYS[1])}";

/// Heartbeats in a row that may fail before a new cluster connection is built
/// from the seed nodes and replaces this one. redis-rs refreshes its slot map
/// on `MOVED`, never on a silent node, so a primary that stops answering
/// without closing its connections would keep its slots routed to it after
/// its replica took over.
const REBUILD_AFTER_FAILED_BEATS: u32 = 2;
/// Node connections track every read (`CLIENT TRACKING ON` without OPTIN, see
/// [`Tracked`]), so no read is preceded by `CLIENT CACHING yes`.
const OPTIN: bool = false;

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
            // Without NOLOOP, as on a single node. A refusal fails this
            // connection; redis-rs retries it.
            redis::cmd("CLIENT")
                .arg("TRACKING")
                .arg("ON")
                .query_async::<()>(&mut conn)
                .await?;
            Ok(Tracked(conn))
        })
    }
}

/// Connects to the cluster through its seed nodes (connection `gen`).
pub async fn connect(
    shared: &Arc<Shared>,
    target: &ClusterTarget,
    gen: u64,
    bound: Duration,
) -> Result<Cluster, ConnectFailure> {
    let t = shared.timeout;
    let weak: Weak<Shared> = Arc::downgrade(shared);
    let mut builder = ClusterClientBuilder::new(target.nodes.clone())
        .use_protocol(ProtocolVersion::RESP3)
        .push_sender(move |push: PushInfo| {
            if let Some(shared) = weak.upgrade() {
                on_push(&shared, gen, push);
            }
            Ok::<(), ()>(())
        })
        // redis-rs' default waits start at 1.28 s; a retry must fit in the call's bound.
        .retries(8)
        .min_retry_wait(5)
        .max_retry_wait(100)
        .retry_wait_formula(5, 2)
        .connection_timeout(t)
        .response_timeout(t)
        .overall_response_timeout(Some(t));
    if let Some(certs) = &target.certs {
        builder = builder.certs(certs.clone());
    }
    let client = builder.build().map_err(classify_connect)?;
    // redis-rs waits for every seed node (each within the connect timeout),
    // then for every node of the slot map.
    match timeout(bound, client.get_async_generic_connection::<Tracked>()).await {
        Err(_) => Err(ConnectFailure::Transient(Failure::new(
            Code::Unavailable,
            "cluster connect timed out",
        ))),
        Ok(Err(e)) => Err(classify_connect(e)),
        Ok(Ok(mut routed)) => {
            shared.gate.set_tracking(shared.local.is_some());
            // Every primary answering proves the gate, as the heartbeat does.
            let sent = Instant::now();
            if primaries(shared, &mut routed).await.is_ok() {
                shared.gate.prove(sent);
            }
            let template = target.nodes.first().cloned().ok_or_else(|| {
                ConnectFailure::Transient(Failure::new(Code::Unavailable, "no seed node"))
            })?;
            let direct = Direct::new(shared, template, target.certs.clone(), gen);
            // Without a map (yet), calls go through redis-rs.
            direct.refresh_now(routed.clone()).await;
            Ok(Cluster { routed, direct })
        }
    }
}

/// Pushes of every node: invalidations, or a node's connection closing
/// (its address is not passed on, so all of L1 goes).
pub(super) fn on_push(shared: &Shared, gen: u64, push: PushInfo) {
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

fn all_primaries(policy: Option<ResponsePolicy>) -> RoutingInfo {
    RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, policy))
}

async fn bounded<F>(shared: &Shared, f: F) -> Result<Value, Failure>
where
    F: std::future::Future<Output = redis::RedisResult<Value>>,
{
    match timeout(shared.timeout, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.into()),
        Err(_) => Err(Failure::timeout()),
    }
}

/// `PING` on every primary: their addresses, sorted, when all answered.
async fn primaries(shared: &Shared, conn: &mut Routed) -> Result<Vec<String>, Failure> {
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

/// Every [`HEARTBEAT_INTERVAL_MS`], `PING` on every primary: all answering
/// proves the gate; any failing empties L1 (a node may have lost our
/// invalidations); a changed set of primaries empties it too. After
/// [`REBUILD_AFTER_FAILED_BEATS`] failures a new connection (fresh slot map)
/// replaces this one, which keeps serving until then.
pub async fn heartbeat(shared: Weak<Shared>, mut conn: Cluster, mut gen: u64, target: Arc<Target>) {
    let every = Duration::from_millis(HEARTBEAT_INTERVAL_MS.into());
    let mut known: Option<Vec<String>> = None;
    let mut failed = 0u32;
    loop {
        sleep(every).await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        if !shared.is_current(gen) {
            return;
        }
        let sent = Instant::now();
        match primaries(&shared, &mut conn.routed).await {
            Ok(addrs) => {
                failed = 0;
                if known.as_ref().is_some_and(|k| *k != addrs) {
                    shared.lapse_and_flush();
                }
                known = Some(addrs);
                shared.gate.prove(sent);
            }
            Err(why) => {
                failed += 1;
                shared.broken(gen, &why);
                if failed >= REBUILD_AFTER_FAILED_BEATS {
                    if let Some(nodes) = &target.cluster {
                        let next = shared.generations.fetch_add(1, Ordering::SeqCst) + 1;
                        // The current connection keeps serving meanwhile.
                        let bound = shared.timeout * 4;
                        if let Ok(fresh) = connect(&shared, nodes, next, bound).await {
                            let swapped = shared.link.send_if_modified(|link| match link {
                                Link::Up { gen: g, .. } if *g == gen => {
                                    *link = Link::Up {
                                        conn: Conn::Cluster(fresh.clone()),
                                        gen: next,
                                    };
                                    true
                                }
                                _ => false,
                            });
                            if swapped {
                                shared.logs.push(
                                    "info",
                                    Code::Unavailable,
                                    "Redis Cluster connection rebuilt from the seed nodes",
                                );
                                (conn, gen, known) = (fresh, next, None);
                            } else {
                                return;
                            }
                        }
                    }
                    failed = 0;
                }
            }
        }
    }
}

/// One command of a call, sent to the primary of `slot`.
struct Unit {
    slot: u16,
    /// The command as sent through redis-rs (whose node connections track
    /// every read).
    cmd: Cmd,
    /// Sent on a direct connection instead (`OPTIN` tracking), it becomes
    /// more than one command.
    direct: Direct1,
}

/// A unit's form on a direct node connection.
enum Direct1 {
    /// `cmd` as it is.
    Same,
    /// A read with its `PTTL` (`cmd` is the `EVAL` of both); `tracked`: one
    /// that fills L1, so preceded by `CLIENT CACHING yes`.
    Read { key: String, tracked: bool },
    /// `cmd` preceded by `CLIENT CACHING yes` (the lock key's `PTTL`).
    Tracked,
}

impl Unit {
    fn route(&self) -> Route {
        Route::new(self.slot, SlotAddr::Master)
    }
}

fn unit(key: &str, cmd: Cmd) -> Unit {
    Unit {
        slot: direct::slot(key.as_bytes()),
        cmd,
        direct: Direct1::Same,
    }
}

/// A read of `key`; with `pttl`, of its `PTTL` too (`tracked`: it fills L1).
fn read_unit(key: &str, pttl: bool, tracked: bool) -> Unit {
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
fn add_direct(pipe: &mut redis::Pipeline, u: Unit, optin: bool) -> usize {
    match u.direct {
        Direct1::Same => {
            pipe.add_command(u.cmd);
            1
        }
        Direct1::Read { key, tracked } => {
            let caches = tracked && optin;
            if caches {
                pipe.cmd("CLIENT").arg("CACHING").arg("yes");
            }
            pipe.cmd("GET").arg(&key);
            pipe.cmd("PTTL").arg(&key);
            2 + usize::from(caches)
        }
        Direct1::Tracked => {
            if optin {
                pipe.cmd("CLIENT").arg("CACHING").arg("yes");
            }
            pipe.add_command(u.cmd);
            1 + usize::from(optin)
        }
    }
}

/// A unit's reply from its `n` direct replies, as redis-rs' path answers it;
/// `None`: it must go through redis-rs (misrouted, or not tracked as asked).
fn direct_reply(vals: &mut std::vec::IntoIter<Value>, n: usize, read: bool) -> Option<Value> {
    let mut got: Vec<Value> = vals.take(n).collect();
    if got.len() != n || got.iter().any(direct::misrouted) {
        return None;
    }
    let caching = if read { n == 3 } else { n == 2 };
    if caching {
        let ok = got.remove(0);
        if !(matches!(ok, Value::Okay) || matches!(&ok, Value::SimpleString(s) if s == "OK")) {
            return None;
        }
    }
    if read {
        Some(Value::Array(got))
    } else {
        got.pop()
    }
}

fn read_cmd(key: &str, tracked: bool) -> Cmd {
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
fn units(op: &Op, tracked: bool) -> Vec<Unit> {
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
            super::commands::store_if(key, json, *ttl_ms, expect.as_deref()),
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
fn single_node_shape(op: &Op, tracked: bool, vals: Vec<Value>) -> Vec<Value> {
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

/// Runs a segment of the executor on the cluster: per-key calls grouped by
/// slot, calls on every primary one at a time, all in call order.
pub async fn run(
    shared: &Shared,
    conn: &Cluster,
    gen: u64,
    segment: Vec<Planned>,
    replies: &mut [Replies],
) {
    let mut rest = segment.into_iter().peekable();
    while rest.peek().is_some() {
        let mut keyed = Vec::new();
        while let Some(p) = rest.next_if(|p| !matches!(p.op, Op::Ping | Op::Info | Op::Clear)) {
            keyed.push(p);
        }
        if !keyed.is_empty() {
            run_keyed(shared, conn, gen, keyed, replies).await;
        }
        if let Some(p) = rest.next() {
            let sent_at = Instant::now();
            let result = match fan_out(shared, conn, &p.op).await {
                Ok(vals) => apply_reply(&shared.counters, &p.op, vals, sent_at, p.tickets, OPTIN),
                Err(why) => {
                    if why.breaks_link() {
                        shared.broken(gen, &why);
                    }
                    Err(why)
                }
            };
            replies[p.job].push(p.op.shape(), result);
        }
    }
}

async fn run_keyed(
    shared: &Shared,
    conn: &Cluster,
    gen: u64,
    segment: Vec<Planned>,
    replies: &mut [Replies],
) {
    let routes = conn.direct.routes();
    if routes.is_none() {
        conn.direct.refresh(conn.routed.clone());
    }
    // Per op: its units' indexes. Per node of the map: a pipeline and its
    // units' indexes; units of a slot the map does not cover: per slot.
    let mut spans = Vec::with_capacity(segment.len());
    let optin = conn.direct.optin;
    let mut nodes: Vec<(redis::Pipeline, Vec<Sent1>)> = match &routes {
        Some(r) => (0..r.nodes.len())
            .map(|_| (redis::pipe(), Vec::new()))
            .collect(),
        None => Vec::new(),
    };
    let mut slots: HashMap<Route, (Vec<Cmd>, Vec<usize>)> = HashMap::new();
    let mut total = 0usize;
    for p in &segment {
        let us = units(&p.op, !p.tickets.is_empty());
        spans.push(total..total + us.len());
        for u in us {
            match routes.as_ref().and_then(|r| r.node(u.slot)) {
                Some(n) => {
                    let read = matches!(u.direct, Direct1::Read { .. });
                    let k = add_direct(&mut nodes[n].0, u, optin);
                    nodes[n].1.push((total, k, read));
                }
                None => {
                    let (pipe, idx) = slots.entry(u.route()).or_default();
                    pipe.push(u.cmd);
                    idx.push(total);
                }
            }
            total += 1;
        }
    }
    let sent_at = Instant::now();
    let direct_sends = nodes
        .into_iter()
        .enumerate()
        .filter(|(_, (_, idx))| !idx.is_empty())
        .map(|(n, (pipe, idx))| {
            let mut c = routes.as_ref().map(|r| r.nodes[n].conn.clone());
            async move {
                let k = idx.iter().map(|(_, k, _)| k).sum();
                let Some(c) = c.as_mut() else {
                    unreachable!("nodes exist only with a map")
                };
                let result =
                    match timeout(shared.timeout, c.send_packed_commands(&pipe, 0, k)).await {
                        Ok(Ok(vals)) if vals.len() == k => Sent::Replies(vals),
                        Ok(Ok(vals)) => Sent::Failed(Failure::new(
                            Code::Protocol,
                            format!("expected {k} replies, got {}", vals.len()),
                        )),
                        Ok(Err(_)) => Sent::Lost,
                        Err(_) => Sent::Failed(Failure::timeout()),
                    };
                (n, idx, result)
            }
        });
    let slot_sends = slots.into_iter().map(|(route, (cmds, idx))| {
        let routed = conn.routed.clone();
        async move { (idx, send_bounded(shared, routed, route, cmds).await) }
    });
    let (direct_results, slot_results) = join(join_all(direct_sends), join_all(slot_sends)).await;
    let mut results: Vec<Option<Result<Value, Failure>>> = (0..total).map(|_| None).collect();
    // Units to send again through redis-rs, in call order.
    let mut again: Vec<usize> = Vec::new();
    let mut stale = false;
    for (n, idx, result) in direct_results {
        match result {
            Sent::Replies(vals) => {
                let mut vals = vals.into_iter();
                for (i, k, read) in idx {
                    match direct_reply(&mut vals, k, read) {
                        Some(v) => results[i] = Some(Ok(v)),
                        None => {
                            stale = true;
                            again.push(i);
                        }
                    }
                }
            }
            Sent::Failed(why) => {
                // A silent node: the map may be out of date (a failover).
                stale = true;
                for (i, _, _) in idx {
                    results[i] = Some(Err(why.clone()));
                }
            }
            Sent::Lost => {
                // The connection failed: redis-rs reconnects and retries, as
                // it would have for these commands.
                let addr = routes.as_ref().map(|r| r.nodes[n].addr.clone());
                conn.direct.forget(addr.as_ref());
                stale = true;
                again.extend(idx.into_iter().map(|(i, _, _)| i));
            }
        }
    }
    for (idx, result) in slot_results {
        for (i, r) in idx.into_iter().zip(result) {
            results[i] = Some(r);
        }
    }
    if stale {
        conn.direct.forget(None);
        conn.direct.refresh(conn.routed.clone());
    }
    if !again.is_empty() {
        again.sort_unstable();
        let mut cmds: Vec<Option<Unit>> = segment
            .iter()
            .flat_map(|p| units(&p.op, !p.tickets.is_empty()))
            .map(Some)
            .collect();
        let mut slots: HashMap<Route, (Vec<Cmd>, Vec<usize>)> = HashMap::new();
        for i in again {
            if let Some(u) = cmds.get_mut(i).and_then(Option::take) {
                let (pipe, idx) = slots.entry(u.route()).or_default();
                pipe.push(u.cmd);
                idx.push(i);
            }
        }
        let sends = slots.into_iter().map(|(route, (cmds, idx))| {
            let routed = conn.routed.clone();
            async move { (idx, send_bounded(shared, routed, route, cmds).await) }
        });
        for (idx, result) in join_all(sends).await {
            for (i, r) in idx.into_iter().zip(result) {
                results[i] = Some(r);
            }
        }
    }
    let lost = results.iter().find_map(|r| match r {
        Some(Err(why)) if why.breaks_link() => Some(why.clone()),
        _ => None,
    });
    if let Some(why) = lost {
        shared.broken(gen, &why);
    }
    for (p, span) in segment.into_iter().zip(spans) {
        let mut vals = Vec::with_capacity(span.len());
        let mut failed = None;
        for r in results[span].iter_mut() {
            match r.take() {
                Some(Ok(v)) => vals.push(v),
                Some(Err(why)) => {
                    failed.get_or_insert(why);
                }
                None => {
                    failed.get_or_insert_with(|| Failure::new(Code::Protocol, "no reply"));
                }
            }
        }
        let result = match failed {
            Some(why) => Err(why),
            None => {
                let tracked = !p.tickets.is_empty();
                let vals = single_node_shape(&p.op, tracked, vals);
                apply_reply(&shared.counters, &p.op, vals, sent_at, p.tickets, OPTIN)
            }
        };
        replies[p.job].push(p.op.shape(), result);
    }
}

/// A unit on a node's pipeline: its index, its count of replies, whether a read.
type Sent1 = (usize, usize, bool);

/// How a direct node pipeline went.
enum Sent {
    Replies(Vec<Value>),
    /// No answer in time, or not the answer expected.
    Failed(Failure),
    /// The node connection failed.
    Lost,
}

/// [`send_slot`] within the call bound.
async fn send_bounded(
    shared: &Shared,
    routed: Routed,
    route: Route,
    cmds: Vec<Cmd>,
) -> Vec<Result<Value, Failure>> {
    let n = cmds.len();
    match timeout(shared.timeout, send_slot(routed, route, cmds)).await {
        Ok(r) => r,
        Err(_) => vec![Err(Failure::timeout()); n],
    }
}

/// Sends one slot's commands as one pipeline, and replies in order.
///
/// redis-rs re-sends a pipeline whole when any reply redirects, and `ASKING`
/// covers only its first command, so a pipeline holding keys on both sides of
/// a slot migration keeps bouncing between the two nodes; it then goes one
/// command at a time, in order, each following its own redirect.
async fn send_slot(mut conn: Routed, route: Route, cmds: Vec<Cmd>) -> Vec<Result<Value, Failure>> {
    let n = cmds.len();
    let mut pipe = redis::pipe();
    for c in &cmds {
        pipe.add_command(c.clone());
    }
    let at = SingleNodeRoutingInfo::SpecificNode(route);
    match conn.route_pipeline(pipe, 0, n, at.clone()).await {
        Ok(vals) if vals.len() == n => vals.into_iter().map(Ok).collect(),
        Ok(vals) => {
            let why = Failure::new(
                Code::Protocol,
                format!("expected {n} replies, got {}", vals.len()),
            );
            vec![Err(why); n]
        }
        Err(e) if n > 1 && e.is_cluster_error() => {
            let mut out = Vec::with_capacity(n);
            for c in cmds {
                out.push(
                    conn.route_command(c, RoutingInfo::SingleNode(at.clone()))
                        .await
                        .map_err(Failure::from),
                );
            }
            out
        }
        Err(e) => vec![Err(Failure::from(e)); n],
    }
}

/// `ping`, `getInfo`, `clear` on every primary, answered as a single node would.
async fn fan_out(shared: &Shared, conn: &Cluster, op: &Op) -> Result<Vec<Value>, Failure> {
    let mut conn = conn.routed.clone();
    let all_ok = Some(ResponsePolicy::AllSucceeded);
    match op {
        Op::Ping => {
            let v = bounded(
                shared,
                conn.route_command(redis::cmd("PING"), all_primaries(all_ok)),
            );
            Ok(vec![v.await?])
        }
        Op::Clear => {
            let v = bounded(
                shared,
                conn.route_command(redis::cmd("FLUSHDB"), all_primaries(all_ok)),
            );
            Ok(vec![v.await?])
        }
        Op::Info => {
            let sum = Some(ResponsePolicy::Aggregate(AggregateOp::Sum));
            let keys = bounded(
                shared,
                conn.route_command(redis::cmd("DBSIZE"), all_primaries(sum)),
            )
            .await?;
            let mut info = redis::cmd("INFO");
            info.arg("memory");
            let infos = bounded(shared, conn.route_command(info, all_primaries(None))).await?;
            let Value::Map(infos) = infos else {
                return Err(Failure::new(
                    Code::Protocol,
                    format!("unexpected INFO fan-out reply {infos:?}"),
                ));
            };
            let mut bytes = 0u64;
            for (_, text) in infos {
                let text = match text {
                    Value::BulkString(b) => String::from_utf8_lossy(&b).into_owned(),
                    Value::VerbatimString { text, .. } | Value::SimpleString(text) => text,
                    Value::ServerError(e) => return Err(Failure::new(Code::Server, e.to_string())),
                    other => {
                        return Err(Failure::new(
                            Code::Protocol,
                            format!("unexpected INFO reply {other:?}"),
                        ))
                    }
                };
                bytes += text
                    .lines()
                    .find_map(|l| l.strip_prefix("used_memory:"))
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .unwrap_or(0);
            }
            let human = format!("used_memory_human:{}\r\n", bytes_to_human(bytes));
            Ok(vec![keys, Value::BulkString(human.into_bytes())])
        }
        _ => unreachable!("per-key calls run by slot"),
    }
}

/// `invalidatePattern` on a cluster: `SCAN` + `UNLINK` on every primary.
pub async fn delete_pattern(shared: &Shared, conn: &Cluster, pattern: &str) -> Result<(), Failure> {
    super::scan::drop_local(shared, pattern);
    let mut conn = conn.routed.clone();
    for addr in primaries(shared, &mut conn).await? {
        let Some((host, port)) = addr
            .rsplit_once(':')
            .and_then(|(h, p)| Some((h.to_string(), p.parse::<u16>().ok()?)))
        else {
            return Err(Failure::new(
                Code::Protocol,
                format!("unexpected node address {addr:?}"),
            ));
        };
        let mut cursor = 0u64;
        loop {
            let scan = super::scan::scan(cursor, pattern);
            let route = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                host: host.clone(),
                port,
            });
            let (next, keys) =
                super::scan::scan_reply(bounded(shared, conn.route_command(scan, route)).await?)?;
            if !keys.is_empty() {
                let mut unlink = redis::cmd("UNLINK");
                unlink.arg(&keys);
                // Routed by redis-rs, split by slot (keys of one node can span slots).
                if let Value::ServerError(e) =
                    bounded(shared, conn.req_packed_command(&unlink)).await?
                {
                    return Err(Failure::new(Code::Server, e.to_string()));
                }
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
    }
    Ok(())
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
