//! The serial executor: every batch of one instance goes through it in call
//! order, merged into as few pipelines as possible.
//!
//! Why serial: the calls of one instance must take effect in the order they
//! were made. Batches queue in a channel filled on the JavaScript thread in
//! call order; the executor drains everything queued into one pipeline, so
//! under load pipelines grow instead of round trips multiplying.
//!
//! Deadlines: a call still queued at its deadline has been answered as timed
//! out, so it is never sent; every segment re-checks before it goes out. A
//! round still unanswered at its first call's deadline, on a connection whose
//! socket is refusing bytes, cuts that connection (`severable.rs`): the rest
//! of the round would otherwise be written when Redis reads again, after its
//! callers were answered.

use std::sync::Arc;
use std::time::Instant;

use redis::aio::MultiplexedConnection;

use super::Conn;
use tokio::sync::{mpsc, oneshot, Mutex};
use tokio::time::timeout_at;

use super::batch::{Job, Planned};
use super::cluster;
use super::commands::{add_commands, apply_reply};
use super::scan::delete_pattern;
use super::severable::{self, Round};
use super::tagged;
use super::tags;
use super::{Link, Shared};
use crate::error::{Code, Failure};
use crate::local::Ticket;
use crate::ops::{Answer, Op, Replies};

/// Ops merged into one pipeline at most; more wait for the next round trip.
const MAX_PIPELINE_OPS: usize = 4096;

/// Runs the executor, restarted should it ever panic (the calls of that round
/// are answered as failed; later calls are served).
pub fn start(shared: Arc<Shared>, rx: mpsc::UnboundedReceiver<Job>) {
    let rx = Arc::new(Mutex::new(rx));
    let task = shared.clone();
    super::spawn_restarting(shared, "Redis executor", move || {
        execute(task.clone(), rx.clone())
    });
}

/// Runs every batch, in order, until `close()` has dropped the sender and the
/// queue is empty; then shuts the tier down.
///
/// One round out at a time. Several (up to 4, on connections that can be cut)
/// were built and measured: with 64 callers the JavaScript thread is the limit,
/// rounds seldom overlapped (under 15 % of them) and throughput did not move,
/// while every extra round out when Redis stops reading is one more round that
/// runs after its callers were answered "timed out" (bytes the kernel took
/// cannot be called back): a median of 14 such calls against 4 with one round
/// out (`late-send.test.ts`, small writes). JavaScript sends a turn's calls in batches
/// of 16, so the first ones are out while the turn is still making the rest.
async fn execute(shared: Arc<Shared>, rx: Arc<Mutex<mpsc::UnboundedReceiver<Job>>>) {
    let mut rx = rx.lock().await;
    while let Some(first) = rx.recv().await {
        let mut jobs = vec![first];
        shared.test_panic_executor();
        let mut ops = jobs[0].ops.len();
        while ops < MAX_PIPELINE_OPS {
            match rx.try_recv() {
                Ok(job) => {
                    ops += job.ops.len();
                    jobs.push(job);
                }
                Err(_) => break,
            }
        }
        let Some(latest) = jobs.iter().map(|j| j.deadline).max() else {
            continue;
        };
        match current_link(&shared, latest).await {
            Ok((conn, gen)) => run(&shared, conn, gen, jobs).await,
            Err(why) => {
                for job in jobs {
                    let mut r = Replies::with_capacity(job.ops.len());
                    let why = if job.deadline <= Instant::now() {
                        Failure::timeout()
                    } else {
                        why.clone()
                    };
                    for op in &job.ops {
                        r.fail(op.shape(), &why);
                    }
                    deliver(&shared, job.reply, r);
                }
            }
        }
    }
    shared.shut_down();
}

/// Hands a job its replies, counting its failures if its caller still waits.
fn deliver(shared: &Shared, out: oneshot::Sender<Replies>, r: Replies) {
    if !out.is_closed() {
        r.count_failures(&shared.counters);
        let _ = out.send(r);
    }
}

/// The connection to use for a batch due by `deadline`, waiting only while the first connect is under way.
async fn current_link(shared: &Shared, deadline: Instant) -> Result<(Conn, u64), Failure> {
    let mut rx = shared.link.subscribe();
    loop {
        match &*rx.borrow_and_update() {
            Link::Up { conn, gen } => return Ok((conn.clone(), *gen)),
            Link::Down(why) => {
                return Err(Failure::new(
                    Code::Unavailable,
                    format!("Redis unavailable: {}", why.message),
                ))
            }
            Link::Closed => return Err(Failure::closed()),
            Link::Connecting => {}
        }
        match timeout_at(deadline.into(), rx.changed()).await {
            Ok(Ok(())) => continue,
            Ok(Err(_)) => return Err(Failure::closed()),
            Err(_) => return Err(Failure::new(Code::Timeout, "Redis connect timed out")),
        }
    }
}

/// Runs `jobs` on one connection, in order: one pipeline for everything up to
/// each `invalidatePattern` or `invalidateTags`, which runs its own rounds in between.
async fn run(shared: &Shared, mut conn: Conn, gen: u64, jobs: Vec<Job>) {
    let mut replies: Vec<Replies> = jobs
        .iter()
        .map(|j| Replies::with_capacity(j.ops.len()))
        .collect();
    let mut outs = Vec::with_capacity(jobs.len());
    let mut deadlines = Vec::with_capacity(jobs.len());
    let mut planned: Vec<Planned> = Vec::new();
    for (job, j) in jobs.into_iter().enumerate() {
        outs.push(j.reply);
        deadlines.push(j.deadline);
        planned.extend(
            j.ops
                .into_iter()
                .zip(j.tickets)
                .map(|(op, tickets)| Planned { job, op, tickets }),
        );
    }
    let mut broken: Option<Failure> = None;
    let mut rest = planned.into_iter().peekable();
    while rest.peek().is_some() {
        let mut segment = Vec::new();
        while let Some(p) = rest.next_if(|p| !p.op.is_long()) {
            segment.push(p);
        }
        // The connection was replaced meanwhile (a master switch): nothing more goes
        // to it. (A replaced cluster connection still routes correctly.)
        if broken.is_none() && matches!(conn, Conn::Single(_)) && !shared.is_current(gen) {
            broken = Some(Failure::new(
                Code::Unavailable,
                "the connection was replaced",
            ));
        }
        // Answered as timed out already (or about to be): never sent.
        let live = drop_due(segment, (&deadlines[..], &outs[..]), &mut replies);
        if live.iter().any(|p| p.op.is_tagged()) {
            let at = (&deadlines[..], &outs[..]);
            tagged::run(shared, &mut conn, gen, live, at, &mut replies, &mut broken).await;
        } else if !live.is_empty() {
            send(
                shared,
                &mut conn,
                gen,
                live,
                &deadlines,
                &mut replies,
                &mut broken,
            )
            .await;
        }
        if let Some(p) = rest.next() {
            let result = match (&broken, &p.op) {
                (Some(why), _) => Err(why.clone()),
                _ if deadlines[p.job] <= Instant::now() => Err(Failure::timeout()),
                (None, Op::DelPattern(pattern)) => match &mut conn {
                    Conn::Single(c) => delete_pattern(shared, c, pattern).await,
                    Conn::Cluster(c) => cluster::delete_pattern(shared, c, pattern).await,
                }
                .map(|()| 0),
                (None, Op::DelTags(list)) => {
                    delete_tagged(shared, &mut conn, gen, list, p.tickets.first()).await
                }
                _ => unreachable!("segments end at a long op"),
            };
            let single = matches!(conn, Conn::Single(_));
            if let Err(why) = &result {
                if single && broken.is_none() && why.breaks_link() {
                    shared.broken(gen, why);
                    broken = Some(why.clone());
                }
            }
            replies[p.job].push(p.op.shape(), result.map(|n| Answer::num(n as f64)));
        }
    }
    for (out, r) in outs.into_iter().zip(replies) {
        deliver(shared, out, r);
    }
}

/// The calls of `planned` still to send: those whose deadline passed (or
/// whose caller is gone) are answered as timed out here, never sent.
pub(super) fn drop_due(
    planned: Vec<Planned>,
    (deadlines, outs): (&[Instant], &[oneshot::Sender<Replies>]),
    replies: &mut [Replies],
) -> Vec<Planned> {
    let now = Instant::now();
    let (due, live): (Vec<Planned>, Vec<Planned>) = planned
        .into_iter()
        .partition(|p| deadlines[p.job] <= now || outs[p.job].is_closed());
    for p in due {
        replies[p.job].fail(p.op.shape(), &Failure::timeout());
    }
    live
}

/// Sends `live` as one round on `conn` (a cluster: one pipeline per
/// primary), or fails it at once if the connection broke earlier.
pub(super) async fn send(
    shared: &Shared,
    conn: &mut Conn,
    gen: u64,
    live: Vec<Planned>,
    deadlines: &[Instant],
    replies: &mut [Replies],
    broken: &mut Option<Failure>,
) {
    if let Some(why) = broken {
        for p in &live {
            replies[p.job].fail(p.op.shape(), why);
        }
        return;
    }
    let first = live.iter().map(|p| deadlines[p.job]).min();
    let first = first.unwrap_or_else(Instant::now);
    match conn {
        Conn::Single(c) => {
            if let Err(why) = run_pipeline(shared, c, gen, first, live, replies).await {
                if why.breaks_link() {
                    shared.broken(gen, &why);
                    *broken = Some(why);
                }
            }
        }
        // A failing node fails only the calls on its slots.
        Conn::Cluster(c) => cluster::run(shared, c, gen, first, live, replies).await,
    }
}

/// `invalidateTags`: per tag, its index merged into the tag's one dying set,
/// which this call (and any other invalidating the tag meanwhile) drains in
/// rounds: each round's keys deleted as `del` deletes them (`writer` makes
/// each a local write first; on a cluster each key goes to its own slot), and
/// only then taken out of the dying set. So no call resolves while a key it
/// merged is left, and a failed call leaves its keys for the next one.
/// Answers how many keys this call's `UNLINK`s deleted.
async fn delete_tagged(
    shared: &Shared,
    conn: &mut Conn,
    gen: u64,
    list: &[String],
    writer: Option<&Ticket>,
) -> Result<u64, Failure> {
    let mut deleted = 0u64;
    for tag in list {
        let dying = tags::dying_key(tag);
        tags::merge(shared, conn, &dying, tag).await?;
        loop {
            let members = tags::live(shared, conn, &dying).await?;
            if members.is_empty() {
                break;
            }
            let keys: Vec<String> = members.iter().map(|(k, _)| k.clone()).collect();
            let tickets = keys
                .iter()
                .filter_map(|k| writer.and_then(|w| w.write(k)))
                .collect();
            let del = vec![Planned {
                job: 0,
                op: Op::Del(keys),
                tickets,
            }];
            let mut r = [Replies::with_capacity(1)];
            let first = Instant::now() + shared.timeout;
            match conn {
                Conn::Single(c) => run_pipeline(shared, c, gen, first, del, &mut r).await?,
                Conn::Cluster(c) => cluster::run(shared, c, gen, first, del, &mut r).await,
            }
            if let Some(e) = r[0].errors.first() {
                return Err(Failure::new(Code::from_js(&e.code), e.message.clone()));
            }
            deleted += r[0].nums.first().copied().unwrap_or(0.0) as u64;
            tags::done(shared, conn, &dying, &members).await?;
        }
    }
    Ok(deleted)
}

/// Sends `segment` as one pipeline on connection `gen`; `first` is the
/// earliest deadline of its calls. `Err` means the connection failed (and
/// every op of the segment has its failure result); server error replies fail
/// only their own op.
pub(super) async fn run_pipeline(
    shared: &Shared,
    conn: &mut MultiplexedConnection,
    gen: u64,
    first: Instant,
    segment: Vec<Planned>,
    replies: &mut [Replies],
) -> Result<(), Failure> {
    let mut pipe = redis::pipe();
    let optin = shared.l1().is_some();
    let counts: Vec<usize> = segment
        .iter()
        .map(|p| add_commands(&mut pipe, &p.op, !p.tickets.is_empty(), optin))
        .collect();
    let total: usize = counts.iter().sum();
    let sent_at = Instant::now();
    let values = if total == 0 {
        Ok(Vec::new())
    } else {
        let limit = shared.timeout;
        match severable::send_round(conn, &pipe, total, first, limit, || {
            shared.sever_if_stuck(gen)
        })
        .await
        {
            Round::Replies(values) => Ok(values),
            Round::Failed(why) => Err(why),
            Round::Lost(e) => Err(e.into()),
        }
    };
    let values = match values {
        Ok(values) => values,
        Err(why) => {
            for p in &segment {
                replies[p.job].fail(p.op.shape(), &why);
            }
            return Err(why);
        }
    };
    if total > 0 {
        shared.gate.prove(sent_at);
    }
    let mut values = values.into_iter();
    // A reply that breaks the link (`READONLY`: the node is a replica now)
    // fails its own op and then the connection.
    let mut breaking = None;
    for (p, n) in segment.into_iter().zip(counts) {
        let vals: Vec<redis::Value> = values.by_ref().take(n).collect();
        let result = apply_reply(&shared.counters, &p.op, vals, sent_at, p.tickets, optin);
        if let Err(why) = &result {
            if breaking.is_none() && why.breaks_link() {
                breaking = Some(why.clone());
            }
        }
        replies[p.job].push(p.op.shape(), result);
    }
    breaking.map_or(Ok(()), Err)
}
