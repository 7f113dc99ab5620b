//! Runs a segment of the executor's calls on a cluster: per-key calls as one
//! pipeline per primary on direct connections (`direct.rs`), the rest (no
//! map yet, redirects, failed connections) through redis-rs one pipeline per
//! slot; calls on every primary (`ping`, `getInfo`, `clear`,
//! `invalidatePattern`) one at a time.

use std::collections::HashMap;
use std::time::Instant;

use futures_util::future::{join, join_all};
use redis::aio::ConnectionLike;
use redis::cluster_routing::{
    AggregateOp, ResponsePolicy, Route, RoutingInfo, SingleNodeRoutingInfo,
};
use redis::{Cmd, Value};
use tokio::time::timeout;

use super::connect::Cluster;
use super::direct::tracks;
use super::encode::{direct_reply, units, Unit};
use super::nodes::{Routed, OPTIN};
use super::primaries::{all_primaries, bounded, every_primary, primaries};
use crate::error::{Code, Failure};
use crate::human::bytes_to_human;
use crate::ops::{Op, Replies};
use crate::redis::batch::Planned;
use crate::redis::commands::{apply_reply, single_node_shape, unlink, whole};
use crate::redis::severable::{self, Round};
use crate::redis::Shared;

/// Runs a segment of the executor on the cluster: per-key calls grouped by
/// slot, calls on every primary one at a time, all in call order.
pub async fn run(
    shared: &Shared,
    conn: &Cluster,
    gen: u64,
    first: Instant,
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
            run_keyed(shared, conn, gen, first, keyed, replies).await;
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
    first: Instant,
    mut segment: Vec<Planned>,
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
    // Units on a node that is down: answered at once, sent nowhere.
    let mut unsent: Vec<(usize, Failure)> = Vec::new();
    let mut total = 0usize;
    for p in &mut segment {
        let mut us = units(&p.op, !p.tickets.is_empty());
        if !p.tickets.is_empty() && !us.iter().all(|u| tracks(routes.as_deref(), u.slot)) {
            // A key on a node that does not track: the call fills nothing.
            p.tickets.clear();
            us = units(&p.op, false);
        }
        spans.push(total..total + us.len());
        for u in us {
            match routes.as_ref().and_then(|r| Some((r, r.node(u.slot)?))) {
                Some((r, n)) if r.nodes[n].conn().is_none() => {
                    let (host, port) = &r.nodes[n].addr;
                    let why =
                        format!("Redis unavailable: cluster node {host}:{port} is not answering");
                    unsent.push((total, Failure::new(Code::Unavailable, why)));
                }
                Some((r, n)) => {
                    let read = u.part.reads_pttl();
                    let k = u.part.add_to(&mut nodes[n].0, optin && r.nodes[n].tracks);
                    nodes[n].1.push((total, k, read));
                }
                None => {
                    let (pipe, idx) = slots.entry(u.route()).or_default();
                    pipe.push(u.part.routed());
                    idx.push(total);
                }
            }
            total += 1;
        }
    }
    let sent_at = Instant::now();
    let direct = &conn.direct;
    let direct_sends = nodes
        .into_iter()
        .enumerate()
        .filter(|(_, (_, idx))| !idx.is_empty())
        .map(|(n, (pipe, idx))| {
            let routes = routes.as_deref().expect("nodes exist only with a map");
            let c = routes.nodes[n].conn();
            async move {
                let k = idx.iter().map(|(_, k, _)| k).sum();
                let Some(mut c) = c else {
                    unreachable!("units of a node that is down are not sent")
                };
                let limit = shared.timeout;
                let cut = || direct.down_if_stuck(routes, n);
                let result = severable::send_round(&mut c, &pipe, k, first, limit, cut).await;
                (n, idx, result)
            }
        });
    let slot_sends = slots.into_iter().map(|(route, (cmds, idx))| {
        let routed = conn.routed.clone();
        async move { (idx, send_bounded(shared, routed, route, cmds).await) }
    });
    let (direct_results, slot_results) = join(join_all(direct_sends), join_all(slot_sends)).await;
    let mut results: Vec<Option<Result<Value, Failure>>> = (0..total).map(|_| None).collect();
    // A node down: a new map may reach it (or name another primary); a
    // redirect or a failed connection: the map is wrong, redis-rs routes meanwhile.
    let mut stale = !unsent.is_empty();
    let mut wrong_map = false;
    for (i, why) in unsent {
        results[i] = Some(Err(why));
    }
    // Units to send again through redis-rs, in call order.
    let mut again: Vec<usize> = Vec::new();
    for (n, idx, result) in direct_results {
        match result {
            Round::Replies(vals) => {
                let mut vals = vals.into_iter();
                for (i, k, read) in idx {
                    match direct_reply(&mut vals, k, read) {
                        Some(v) => results[i] = Some(Ok(v)),
                        None => {
                            wrong_map = true;
                            again.push(i);
                        }
                    }
                }
            }
            Round::Failed(why) => {
                // Whatever it still holds must not run after its callers
                // were answered; the map may be out of date too (a failover).
                if let Some(routes) = &routes {
                    conn.direct.down(routes, n);
                }
                stale = true;
                for (i, _, _) in idx {
                    results[i] = Some(Err(why.clone()));
                }
            }
            Round::Lost(_) if routes.as_ref().is_some_and(|r| r.nodes[n].is_down()) => {
                // Cut meanwhile (the heartbeat found the node silent): as a timeout.
                stale = true;
                for (i, _, _) in idx {
                    results[i] = Some(Err(Failure::timeout()));
                }
            }
            Round::Lost(_) => {
                // The connection failed: redis-rs reconnects and retries, as
                // it would have for these commands.
                let addr = routes.as_ref().map(|r| r.nodes[n].addr.clone());
                conn.direct.forget(addr.as_ref());
                wrong_map = true;
                again.extend(idx.into_iter().map(|(i, _, _)| i));
            }
        }
    }
    for (idx, result) in slot_results {
        for (i, r) in idx.into_iter().zip(result) {
            results[i] = Some(r);
        }
    }
    if wrong_map {
        conn.direct.forget(None);
    }
    if stale || wrong_map {
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
                pipe.push(u.part.routed());
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
async fn fan_out(shared: &Shared, cluster: &Cluster, op: &Op) -> Result<Vec<Value>, Failure> {
    let mut conn = cluster.routed.clone();
    let all_ok = Some(ResponsePolicy::AllSucceeded);
    match op {
        Op::Ping => {
            every_primary(shared, &cluster.direct, &cluster.routed).await?;
            Ok(vec![Value::SimpleString("PONG".into())])
        }
        Op::Clear => {
            let [flush] = commands::<1>(op);
            let v = bounded(shared, conn.route_command(flush, all_primaries(all_ok)));
            Ok(vec![v.await?])
        }
        Op::Info => {
            let [dbsize, info] = commands::<2>(op);
            let sum = Some(ResponsePolicy::Aggregate(AggregateOp::Sum));
            let keys = bounded(shared, conn.route_command(dbsize, all_primaries(sum))).await?;
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

/// The `N` commands a whole-database `op` sends (`commands::whole`).
fn commands<const N: usize>(op: &Op) -> [Cmd; N] {
    whole(op)
        .try_into()
        .unwrap_or_else(|_| unreachable!("{op:?} sends {N} commands"))
}

/// One command routed by its key through redis-rs (`invalidateTags`' steps).
pub async fn one(shared: &Shared, conn: &Cluster, cmd: &Cmd) -> Result<Value, Failure> {
    bounded(shared, conn.routed.clone().req_packed_command(cmd)).await
}

/// `invalidatePattern` on a cluster: `SCAN` + `UNLINK` on every primary.
pub async fn delete_pattern(shared: &Shared, conn: &Cluster, pattern: &str) -> Result<(), Failure> {
    crate::redis::scan::drop_local(shared, pattern);
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
            let scan = crate::redis::scan::scan(cursor, pattern);
            let route = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                host: host.clone(),
                port,
            });
            let (next, keys) = crate::redis::scan::scan_reply(
                bounded(shared, conn.route_command(scan, route)).await?,
            )?;
            if !keys.is_empty() {
                // Routed by redis-rs, split by slot (keys of one node can span slots).
                if let Value::ServerError(e) =
                    bounded(shared, conn.req_packed_command(&unlink(&keys))).await?
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
