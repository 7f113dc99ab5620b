//! The Redis tier: one multiplexed RESP3 connection, a supervisor that
//! (re)connects it, and a serial executor that turns each batch of calls into
//! one pipeline.
//!
//! Why serial: the calls of one instance must take effect in the order they
//! were made. Batches queue in a channel filled on the JavaScript thread in
//! call order; the executor drains everything queued into one pipeline, so
//! under load pipelines grow instead of round trips multiplying.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, ConnectionInfo, ProtocolVersion, PushInfo, PushKind, Value};
use tokio::sync::{mpsc, oneshot, watch, Notify};
use tokio::time::{sleep, timeout, timeout_at};

use crate::local::{Local, Ticket};
use crate::logs::Logs;
use crate::ops::{Op, Replies, Shape};
use crate::stats::Counters;

/// Keys per `SCAN` step of `invalidatePattern`.
const SCAN_COUNT: usize = 1000;
/// Ops merged into one pipeline at most; more wait for the next round trip.
const MAX_PIPELINE_OPS: usize = 4096;

#[derive(Clone)]
enum Link {
    /// No connection yet and none has failed: calls wait for it up to their deadline.
    Connecting,
    Up {
        conn: MultiplexedConnection,
        gen: u64,
    },
    /// The last attempt failed: calls fail at once instead of waiting.
    Down(String),
    Closed,
}

pub struct Shared {
    pub counters: Arc<Counters>,
    pub logs: Logs,
    /// L1, when configured; it is used only while the server tracks keys for us.
    local: Option<Arc<Local>>,
    /// Whether L1 serves: configured, and the server tracks keys for this instance.
    tracking: Arc<AtomicBool>,
    timeout: Duration,
    link: watch::Sender<Link>,
    wake: Notify,
    closed: AtomicBool,
}

struct Job {
    ops: Vec<Op>,
    /// Per op, one ticket per key it reads or writes through L1.
    tickets: Vec<Vec<Ticket>>,
    reply: oneshot::Sender<Replies>,
    deadline: Instant,
}

pub struct RedisTier {
    shared: Arc<Shared>,
    jobs: Mutex<Option<mpsc::UnboundedSender<Job>>>,
}

impl RedisTier {
    /// Starts the supervisor and the executor on napi's tokio runtime; connects in the background.
    pub fn start(
        info: ConnectionInfo,
        local: Option<Arc<Local>>,
        counters: Arc<Counters>,
        timeout: Duration,
    ) -> Self {
        let (link, _) = watch::channel(Link::Connecting);
        let shared = Arc::new(Shared {
            counters,
            logs: Logs::default(),
            tracking: Arc::new(AtomicBool::new(local.is_some())),
            local,
            timeout,
            link,
            wake: Notify::new(),
            closed: AtomicBool::new(false),
        });
        let (tx, rx) = mpsc::unbounded_channel();
        napi::bindgen_prelude::spawn(supervise(shared.clone(), info));
        napi::bindgen_prelude::spawn(execute(shared.clone(), rx));
        RedisTier {
            shared,
            jobs: Mutex::new(Some(tx)),
        }
    }

    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Local effects of `op`, applied when the call is made (see [`prepare_local`]).
    pub fn prepare(&self, op: &Op) -> Vec<Ticket> {
        match self.shared.l1() {
            Some(local) => prepare_local(local, op),
            None => Vec::new(),
        }
    }

    /// Sends a batch (call this on the JavaScript thread, in call order) and
    /// returns a future of its replies that settles by the batch's deadline.
    pub fn submit(
        &self,
        ops: Vec<Op>,
        tickets: Vec<Vec<Ticket>>,
    ) -> impl std::future::Future<Output = Replies> + Send {
        let long = ops.iter().any(|op| matches!(op, Op::DelPattern(_)));
        // invalidatePattern takes as many round trips as the keyspace needs; each
        // one is bounded by the timeout instead.
        let budget = if long {
            self.shared.timeout * 3600
        } else {
            self.shared.timeout
        };
        let deadline = Instant::now() + budget;
        let (reply, rx) = oneshot::channel();
        let shapes: Vec<Shape> = ops.iter().map(Op::shape).collect();
        let sent = self
            .jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|tx| {
                tx.send(Job {
                    ops,
                    tickets,
                    reply,
                    deadline,
                })
                .is_ok()
            })
            .unwrap_or(false);
        let counters = self.shared.counters.clone();
        async move {
            let why = if !sent {
                "the cache is closed"
            } else {
                match timeout_at(deadline.into(), rx).await {
                    Ok(Ok(replies)) => return replies,
                    Ok(Err(_)) => "the cache is closed",
                    Err(_) => "Redis command timed out",
                }
            };
            Counters::add(&counters.redis_errors, shapes.len() as u64);
            let mut r = Replies::with_capacity(shapes.len());
            for shape in shapes {
                r.fail(shape, why);
            }
            r
        }
    }

    pub fn connected(&self) -> bool {
        matches!(&*self.shared.link.borrow(), Link::Up { .. })
    }

    pub fn close(&self) {
        self.shared.closed.store(true, Ordering::SeqCst);
        self.jobs.lock().unwrap_or_else(|e| e.into_inner()).take();
        self.shared.link.send_replace(Link::Closed);
        if let Some(local) = &self.shared.local {
            local.flush();
        }
        self.shared.wake.notify_one();
    }
}

impl Drop for RedisTier {
    fn drop(&mut self) {
        self.close();
    }
}

impl Shared {
    /// The flag the hit path checks before serving from L1.
    pub fn serving(&self) -> Arc<AtomicBool> {
        self.tracking.clone()
    }

    /// L1, if configured and the server is tracking keys for this instance.
    pub fn l1(&self) -> Option<&Arc<Local>> {
        self.local
            .as_ref()
            .filter(|_| self.tracking.load(Ordering::Acquire))
    }

    /// Marks connection `gen` broken (timeout, I/O error, server closed it):
    /// L1 is emptied, since invalidations may have been missed, and the supervisor reconnects.
    fn broken(&self, gen: u64, why: &str) {
        let changed = self.link.send_if_modified(|link| match link {
            Link::Up { gen: g, .. } if *g == gen => {
                *link = Link::Down(why.to_string());
                true
            }
            _ => false,
        });
        if changed {
            if let Some(local) = &self.local {
                local.flush();
            }
            self.logs.push(
                "warn",
                format!("Redis connection lost ({why}); reconnecting"),
            );
            self.wake.notify_one();
        }
    }

    /// Applies a RESP3 push from connection `gen`: invalidations, or the library's disconnect notice.
    fn on_push(&self, gen: u64, push: PushInfo) {
        match push.kind {
            PushKind::Invalidate => {
                let Some(local) = &self.local else { return };
                match push.data.into_iter().next() {
                    Some(Value::Array(keys)) => {
                        Counters::add(&self.counters.invalidations, keys.len() as u64);
                        for key in keys {
                            if let Value::BulkString(bytes) = key {
                                local.invalidate(&String::from_utf8_lossy(&bytes));
                            }
                        }
                    }
                    // A null list means FLUSHALL/FLUSHDB (or the tracking table overflowed).
                    _ => {
                        Counters::add(&self.counters.flushes, 1);
                        local.flush();
                    }
                }
            }
            PushKind::Disconnection => self.broken(gen, "connection closed"),
            _ => {}
        }
    }
}

/// Local effects of a call, applied when it is made: writes drop their keys
/// from L1 at once (so this instance reads its own writes even before they
/// resolve) and spoil reads in flight; reads take tickets to fill L1 with what
/// Redis answers.
///
/// Writes do not fill L1 (no write-through): the next read does, tracked.
/// Writing through needed `MULTI SET EXISTS EXEC` so the server would track
/// the key with no gap for another writer; measured, that and the extra L1
/// bookkeeping cost about 40 % of write throughput.
fn prepare_local(local: &Arc<Local>, op: &Op) -> Vec<Ticket> {
    match op {
        Op::Get(key) => vec![local.ticket(key)],
        Op::MGet(keys) => keys.iter().map(|k| local.ticket(k)).collect(),
        Op::Set { key, .. } => {
            local.invalidate(key);
            Vec::new()
        }
        Op::MSet { entries, .. } => {
            entries.iter().for_each(|(k, _)| local.invalidate(k));
            Vec::new()
        }
        Op::Del(keys) => {
            keys.iter().for_each(|k| local.invalidate(k));
            Vec::new()
        }
        Op::Clear => {
            local.flush();
            Vec::new()
        }
        Op::DelPattern(pattern) => {
            local.purge_matching(pattern);
            Vec::new()
        }
        Op::Exists(_) | Op::Ttl(_) | Op::Ping | Op::Info => Vec::new(),
    }
}

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis((50u64 << attempt.min(5)).min(1000))
}

async fn supervise(shared: Arc<Shared>, mut info: ConnectionInfo) {
    let mut gen = 0u64;
    let mut failures = 0u32;
    let mut ever_up = false;
    while !shared.closed.load(Ordering::SeqCst) {
        gen += 1;
        match connect(&shared, &info, gen).await {
            Ok(conn) => {
                // No flush here: losing the last connection flushed L1 already, and
                // reads queued meanwhile are sent only now, with tracking on.
                let published = shared.link.send_if_modified(|link| {
                    if matches!(link, Link::Closed) {
                        return false;
                    }
                    *link = Link::Up { conn, gen };
                    true
                });
                if !published {
                    return;
                }
                if ever_up {
                    Counters::add(&shared.counters.reconnects, 1);
                    shared.logs.push("info", "Redis connection re-established");
                }
                ever_up = true;
                failures = 0;
                // Wait until this connection is reported broken or the cache closes.
                loop {
                    shared.wake.notified().await;
                    let current =
                        matches!(&*shared.link.borrow(), Link::Up { gen: g, .. } if *g == gen);
                    if !current {
                        break;
                    }
                }
            }
            Err(ConnectError::NoResp3(why)) => {
                // Servers before Redis 6 speak RESP2 only: no tracking, so no L1.
                shared.tracking.store(false, Ordering::Release);
                shared.logs.push(
                    "warn",
                    format!("Redis does not speak RESP3 ({why}); running without the local tier"),
                );
                let redis = info
                    .redis_settings()
                    .clone()
                    .set_protocol(ProtocolVersion::RESP2);
                info = info.set_redis_settings(redis);
                continue;
            }
            Err(ConnectError::Failed(why)) => {
                if failures == 0 {
                    shared
                        .logs
                        .push("error", format!("Redis connection failed: {why}"));
                }
                shared.link.send_if_modified(|link| {
                    if matches!(link, Link::Closed) {
                        return false;
                    }
                    *link = Link::Down(why.clone());
                    true
                });
                let delay = backoff(failures);
                failures = failures.saturating_add(1);
                tokio::select! {
                    _ = sleep(delay) => {}
                    _ = shared.wake.notified() => {}
                }
            }
        }
    }
}

enum ConnectError {
    NoResp3(String),
    Failed(String),
}

async fn connect(
    shared: &Arc<Shared>,
    info: &ConnectionInfo,
    gen: u64,
) -> Result<MultiplexedConnection, ConnectError> {
    let failed = |e: &dyn std::fmt::Display| ConnectError::Failed(e.to_string());
    let client = redis::Client::open(info.clone()).map_err(|e| failed(&e))?;
    let resp3 = info.redis_settings().protocol() != ProtocolVersion::RESP2;
    let mut config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(shared.timeout))
        .set_response_timeout(None);
    if resp3 {
        // Weak: the connection must not keep the instance alive.
        let weak: Weak<Shared> = Arc::downgrade(shared);
        config = config.set_push_sender(move |push: PushInfo| {
            if let Some(shared) = weak.upgrade() {
                shared.on_push(gen, push);
            }
            Ok::<(), ()>(())
        });
    }
    let connecting = client.get_multiplexed_async_connection_with_config(&config);
    let mut conn = match timeout(shared.timeout, connecting).await {
        Err(_) => return Err(ConnectError::Failed("connect timed out".into())),
        Ok(Err(e)) => {
            let text = e.to_string();
            if resp3 && (text.contains("HELLO") || text.contains("NOPROTO")) {
                return Err(ConnectError::NoResp3(text));
            }
            return Err(failed(&e));
        }
        Ok(Ok(conn)) => conn,
    };
    if resp3 && shared.local.is_some() && shared.tracking.load(Ordering::Acquire) {
        // NOLOOP: this instance updates L1 for its own writes itself.
        let mut cmd = redis::cmd("CLIENT");
        cmd.arg("TRACKING").arg("ON").arg("NOLOOP");
        match timeout(shared.timeout, cmd.query_async::<Value>(&mut conn)).await {
            Err(_) => return Err(ConnectError::Failed("CLIENT TRACKING timed out".into())),
            Ok(Ok(Value::ServerError(e))) => tracking_refused(shared, &e.to_string()),
            Ok(Err(e))
                if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::ResponseError)
                    || e.code().is_some() =>
            {
                tracking_refused(shared, &e.to_string())
            }
            Ok(Err(e)) => return Err(failed(&e)),
            Ok(Ok(_)) => {}
        }
    }
    Ok(conn)
}

fn tracking_refused(shared: &Shared, why: &str) {
    shared.tracking.store(false, Ordering::Release);
    if let Some(local) = &shared.local {
        local.flush();
    }
    shared.logs.push(
        "warn",
        format!("Redis refused client tracking ({why}); running without the local tier"),
    );
}

/// The connection to use for a batch due by `deadline`, waiting only while the first connect is under way.
async fn current_link(
    shared: &Shared,
    deadline: Instant,
) -> Result<(MultiplexedConnection, u64), String> {
    let mut rx = shared.link.subscribe();
    loop {
        match &*rx.borrow_and_update() {
            Link::Up { conn, gen } => return Ok((conn.clone(), *gen)),
            Link::Down(why) => return Err(format!("Redis unavailable: {why}")),
            Link::Closed => return Err("the cache is closed".into()),
            Link::Connecting => {}
        }
        match timeout_at(deadline.into(), rx.changed()).await {
            Ok(Ok(())) => continue,
            Ok(Err(_)) => return Err("the cache is closed".into()),
            Err(_) => return Err("Redis connect timed out".into()),
        }
    }
}

async fn execute(shared: Arc<Shared>, mut rx: mpsc::UnboundedReceiver<Job>) {
    while let Some(first) = rx.recv().await {
        let mut jobs = vec![first];
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
        // A call whose caller has already been answered is never sent: a write
        // that timed out must not land later.
        let now = Instant::now();
        jobs.retain(|j| j.deadline > now && !j.reply.is_closed());
        let Some(latest) = jobs.iter().map(|j| j.deadline).max() else {
            continue;
        };
        match current_link(&shared, latest).await {
            Ok((conn, gen)) => run(&shared, conn, gen, jobs).await,
            Err(why) => {
                for job in jobs {
                    fail_job(&shared, job, &why);
                }
            }
        }
    }
}

fn fail_job(shared: &Shared, job: Job, why: &str) {
    Counters::add(&shared.counters.redis_errors, job.ops.len() as u64);
    let mut r = Replies::with_capacity(job.ops.len());
    for op in &job.ops {
        r.fail(op.shape(), why);
    }
    let _ = job.reply.send(r);
}

/// An op of a merged pipeline: the job it belongs to, the op, its L1 tickets.
type Planned = (usize, Op, Vec<Ticket>);

/// Runs `jobs` on one connection, in order: one pipeline for everything up to
/// each `invalidatePattern`, which runs its own SCAN loop in between.
async fn run(shared: &Shared, mut conn: MultiplexedConnection, gen: u64, jobs: Vec<Job>) {
    let tracked = shared.l1().is_some();
    let mut replies: Vec<Replies> = jobs
        .iter()
        .map(|j| Replies::with_capacity(j.ops.len()))
        .collect();
    let mut outs = Vec::with_capacity(jobs.len());
    let mut all_ops: Vec<Planned> = Vec::new();
    for (i, job) in jobs.into_iter().enumerate() {
        outs.push(job.reply);
        all_ops.extend(
            job.ops
                .into_iter()
                .zip(job.tickets)
                .map(|(op, t)| (i, op, t)),
        );
    }
    let mut broken: Option<String> = None;
    let mut rest = all_ops.into_iter().peekable();
    while rest.peek().is_some() {
        let mut segment = Vec::new();
        while let Some(p) = rest.next_if(|(_, op, _)| !matches!(op, Op::DelPattern(_))) {
            segment.push(p);
        }
        if !segment.is_empty() {
            if let Some(why) = &broken {
                for (i, op, _) in &segment {
                    replies[*i].fail(op.shape(), why);
                }
            } else if let Err(why) =
                run_pipeline(shared, &mut conn, segment, tracked, &mut replies).await
            {
                shared.broken(gen, &why);
                broken = Some(why);
            }
        }
        if let Some((i, op, _)) = rest.next() {
            let Op::DelPattern(pattern) = &op else {
                unreachable!("segments end at invalidatePattern")
            };
            match &broken {
                Some(why) => replies[i].fail(op.shape(), why),
                None => match delete_pattern(shared, &mut conn, pattern).await {
                    Ok(()) => replies[i].done(0.0),
                    Err((why, fatal)) => {
                        Counters::add(&shared.counters.redis_errors, 1);
                        replies[i].fail(op.shape(), &why);
                        if fatal {
                            shared.broken(gen, &why);
                            broken = Some(why);
                        }
                    }
                },
            }
        }
    }
    for (out, r) in outs.into_iter().zip(replies) {
        let _ = out.send(r);
    }
}

fn add_commands(pipe: &mut redis::Pipeline, op: &Op, tracked: bool) -> usize {
    match op {
        Op::Get(key) => {
            pipe.cmd("GET").arg(key);
            if tracked {
                pipe.cmd("PTTL").arg(key);
                2
            } else {
                1
            }
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
            pipe.cmd("MGET").arg(keys);
            if tracked {
                for key in keys {
                    pipe.cmd("PTTL").arg(key);
                }
                1 + keys.len()
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
        Op::DelPattern(_) => unreachable!("runs on its own"),
    }
}

/// Sends `segment` as one pipeline. `Err` means the connection failed (and
/// every op of the segment has its failure result); server error replies fail
/// only their own op.
async fn run_pipeline(
    shared: &Shared,
    conn: &mut MultiplexedConnection,
    segment: Vec<Planned>,
    tracked: bool,
    replies: &mut [Replies],
) -> Result<(), String> {
    let mut pipe = redis::pipe();
    let counts: Vec<usize> = segment
        .iter()
        .map(|(_, op, _)| add_commands(&mut pipe, op, tracked))
        .collect();
    let total: usize = counts.iter().sum();
    let sent_at = Instant::now();
    let values = if total == 0 {
        Ok(Vec::new())
    } else {
        match timeout(shared.timeout, conn.send_packed_commands(&pipe, 0, total)).await {
            Ok(Ok(values)) if values.len() == total => Ok(values),
            Ok(Ok(values)) => Err(format!("expected {total} replies, got {}", values.len())),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("Redis command timed out".to_string()),
        }
    };
    let values = match values {
        Ok(values) => values,
        Err(why) => {
            Counters::add(&shared.counters.redis_errors, segment.len() as u64);
            for (i, op, _) in &segment {
                replies[*i].fail(op.shape(), &why);
            }
            return Err(why);
        }
    };
    let mut values = values.into_iter();
    for ((i, op, tickets), n) in segment.into_iter().zip(counts) {
        let vals: Vec<Value> = values.by_ref().take(n).collect();
        let tickets = if tracked { tickets } else { Vec::new() };
        if let Err(why) = apply_reply(shared, &op, vals, sent_at, &mut replies[i], tickets) {
            Counters::add(&shared.counters.redis_errors, 1);
            replies[i].fail(op.shape(), &why);
        }
    }
    Ok(())
}

fn server_error(v: &Value) -> Option<String> {
    match v {
        Value::ServerError(e) => Some(e.to_string()),
        _ => None,
    }
}

fn first_error(vals: &[Value]) -> Option<String> {
    vals.iter().find_map(server_error)
}

fn text(v: Value) -> Result<Option<String>, String> {
    match v {
        Value::Nil => Ok(None),
        // Invalid UTF-8 becomes U+FFFD, as Node's Buffer#toString does for ioredis.
        Value::BulkString(bytes) => Ok(Some(match String::from_utf8(bytes) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        })),
        Value::SimpleString(s) => Ok(Some(s)),
        Value::VerbatimString { text, .. } => Ok(Some(text)),
        Value::ServerError(e) => Err(e.to_string()),
        other => Err(format!("unexpected reply {other:?}")),
    }
}

fn int(v: &Value) -> Result<i64, String> {
    match v {
        Value::Int(n) => Ok(*n),
        Value::ServerError(e) => Err(e.to_string()),
        other => Err(format!("unexpected reply {other:?}")),
    }
}

/// Turns the replies of one op into its result, filling L1 where its tickets allow.
/// `tickets` is empty when L1 is off; `vals` are exactly the replies of the
/// commands [`add_commands`] added for `op` with the same tracking.
fn apply_reply(
    shared: &Shared,
    op: &Op,
    vals: Vec<Value>,
    sent_at: Instant,
    out: &mut Replies,
    tickets: Vec<Ticket>,
) -> Result<(), String> {
    let counters = &shared.counters;
    let tracked = !tickets.is_empty();
    let mut tickets = tickets.into_iter();
    let mut vals = vals.into_iter();
    let mut next = || vals.next().unwrap_or(Value::Nil);
    match op {
        Op::Get(_) => {
            let value = text(next())?;
            let ticket = if tracked { tickets.next() } else { None };
            if let (Some(json), Some(ticket)) = (&value, ticket) {
                let pttl = int(&next()).unwrap_or(-2);
                ticket.fill(Arc::from(json.as_str()), pttl, sent_at);
            }
            let hit = if value.is_some() {
                &counters.redis_hits
            } else {
                &counters.redis_misses
            };
            Counters::add(hit, 1);
            out.texts.push(value);
            out.done(0.0);
        }
        Op::Set { .. } => {
            if let Some(why) = server_error(&next()) {
                return Err(why);
            }
            out.done(0.0);
        }
        Op::Del(keys) => {
            if !keys.is_empty() {
                int(&next())?;
            }
            out.done(0.0);
        }
        Op::MGet(keys) => {
            if keys.is_empty() {
                out.done(0.0);
                return Ok(());
            }
            let values = match next() {
                Value::Array(values) => values,
                other => {
                    return Err(server_error(&other)
                        .unwrap_or_else(|| format!("unexpected reply {other:?}")))
                }
            };
            let mut texts = Vec::with_capacity(keys.len());
            for v in values {
                // A key of another type answers nil in MGET, as it did for the original.
                texts.push(text(v).unwrap_or(None));
            }
            texts.resize(keys.len(), None);
            for value in &texts {
                let pttl = if tracked {
                    int(&next()).unwrap_or(-2)
                } else {
                    -2
                };
                let ticket = if tracked { tickets.next() } else { None };
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
            out.texts.extend(texts);
            out.done(0.0);
        }
        Op::MSet { entries, .. } => {
            let replies: Vec<Value> = (0..entries.len()).map(|_| next()).collect();
            if let Some(why) = first_error(&replies) {
                return Err(why);
            }
            out.done(0.0);
        }
        Op::Exists(_) => out.done(if int(&next())? > 0 { 1.0 } else { 0.0 }),
        Op::Ttl(_) => out.done(int(&next())? as f64),
        Op::Ping => {
            let pong = matches!(text(next())?.as_deref(), Some("PONG"));
            out.done(if pong { 1.0 } else { 0.0 });
        }
        Op::Info => {
            let keys = int(&next())?;
            let info = text(next())?.unwrap_or_default();
            let human = info
                .lines()
                .find_map(|l| l.strip_prefix("used_memory_human:"))
                .map(|v| v.trim().to_string());
            out.texts
                .push(Some(human.unwrap_or_else(|| "unknown".into())));
            out.done(keys as f64);
        }
        Op::Clear => {
            text(next())?;
            out.done(0.0);
        }
        Op::DelPattern(_) => unreachable!("runs on its own"),
    }
    Ok(())
}

/// `SCAN MATCH` the whole keyspace and `UNLINK` what it finds, one bounded round trip at a time.
/// The error says whether the connection itself failed.
async fn delete_pattern(
    shared: &Shared,
    conn: &mut MultiplexedConnection,
    pattern: &str,
) -> Result<(), (String, bool)> {
    let mut cursor = 0u64;
    loop {
        let mut scan = redis::cmd("SCAN");
        scan.arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(SCAN_COUNT);
        let reply: Value = round_trip(shared, conn, &scan).await?;
        let (next, keys) = match reply {
            Value::Array(mut parts) if parts.len() == 2 => {
                let keys = parts.pop().unwrap_or(Value::Nil);
                let next = parts.pop().unwrap_or(Value::Nil);
                let next: u64 =
                    redis::from_redis_value(next).map_err(|e| (e.to_string(), false))?;
                let keys: Vec<Vec<u8>> =
                    redis::from_redis_value(keys).map_err(|e| (e.to_string(), false))?;
                (next, keys)
            }
            other => {
                return Err((
                    server_error(&other)
                        .unwrap_or_else(|| format!("unexpected SCAN reply {other:?}")),
                    false,
                ))
            }
        };
        if !keys.is_empty() {
            let mut unlink = redis::cmd("UNLINK");
            unlink.arg(&keys);
            let reply = round_trip(shared, conn, &unlink).await?;
            if let Some(why) = server_error(&reply) {
                return Err((why, false));
            }
        }
        if next == 0 {
            return Ok(());
        }
        cursor = next;
    }
}

async fn round_trip(
    shared: &Shared,
    conn: &mut MultiplexedConnection,
    cmd: &redis::Cmd,
) -> Result<Value, (String, bool)> {
    match timeout(shared.timeout, conn.send_packed_command(cmd)).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) if e.code().is_some() => Err((e.to_string(), false)),
        Ok(Err(e)) => Err((e.to_string(), true)),
        Err(_) => Err(("Redis command timed out".into(), true)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        assert_eq!(backoff(0), Duration::from_millis(50));
        assert_eq!(backoff(1), Duration::from_millis(100));
        assert_eq!(backoff(10), Duration::from_millis(1000));
    }

    #[test]
    fn writes_drop_their_keys_and_spoil_reads_in_flight() {
        let local = Local::new(
            1 << 20,
            Duration::from_secs(60),
            Arc::new(Counters::default()),
        );
        let read = local.ticket("k");
        let tickets = prepare_local(
            &local,
            &Op::Set {
                key: "k".into(),
                json: "2".into(),
                ttl_ms: 1000,
            },
        );
        assert!(
            !read.fill(Arc::from("1"), -1, Instant::now()),
            "the older read must not land"
        );
        assert!(
            tickets.is_empty(),
            "writes do not fill L1; the next read does"
        );
    }

    #[test]
    fn replies_of_get_fill_l1_and_count_hits() {
        let counters = Arc::new(Counters::default());
        let local = Local::new(1 << 20, Duration::from_secs(60), counters.clone());
        let (link, _) = watch::channel(Link::Connecting);
        let shared = Shared {
            counters,
            logs: Logs::default(),
            local: Some(local.clone()),
            tracking: Arc::new(AtomicBool::new(true)),
            timeout: Duration::from_secs(1),
            link,
            wake: Notify::new(),
            closed: AtomicBool::new(false),
        };
        let op = Op::Get("k".into());
        let tickets = prepare_local(&local, &op);
        let mut out = Replies::default();
        apply_reply(
            &shared,
            &op,
            vec![Value::BulkString(b"{\"a\":1}".to_vec()), Value::Int(5000)],
            Instant::now(),
            &mut out,
            tickets,
        )
        .unwrap();
        assert_eq!(out.texts, vec![Some("{\"a\":1}".to_string())]);
        assert_eq!(&*local.store.get("k").unwrap().json, "{\"a\":1}");
        assert_eq!(Counters::read(&shared.counters.redis_hits), 1.0);
    }
}
