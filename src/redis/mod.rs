//! The Redis tier, split by concern as redis-rs splits its connection manager
//! from its multiplexed connection:
//!
//! - `link.rs`: one RESP3 connection, (re)connected by a supervisor with
//!   backoff and jitter, client tracking switched on, a heartbeat proving the
//!   invalidation link alive;
//! - `severable.rs`: plain TCP connections whose driver task is ours, so a
//!   connection given up writes nothing more, and the one rule for sending a
//!   round on any connection (`send_round`);
//! - `tracking.rs`: client tracking switched on, and reads opted in
//!   (`CLIENT CACHING yes`), for every topology;
//! - `batch.rs`: a batch of calls as the executor takes and runs it;
//! - `executor.rs`: the serial executor that turns each batch of calls into
//!   one pipeline and keeps every call's deadline;
//! - `commands.rs`: each operation defined once: what it sends per key on
//!   every topology, and how its replies become its answer;
//! - `latency.rs`: the invalidation latency probe;
//! - `scan.rs`: `invalidatePattern`'s `SCAN` + `UNLINK` loop;
//! - `sentinel.rs`: with Sentinel, the master's address for every connect,
//!   its role checked, `+switch-master` followed.
//! - `cluster/`: the same over a Redis Cluster (redis-rs' cluster-async,
//!   tracking on every node connection, and per-key calls as one pipeline per
//!   primary on our own node connections; see its `mod.rs`).
//!
//! A connection comes into service only through `Shared::install`, which
//! empties L1 when it replaces one that was up.
//!
//! Tracking pushes are applied to L1 by `local/mod.rs`.

mod batch;
mod cluster;
mod commands;
mod executor;
pub mod health;
pub mod latency;
mod link;
mod scan;
mod sentinel;
mod severable;
mod tagged;
mod tags;
mod tracking;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use tokio::sync::{mpsc, oneshot, watch, Notify};
use tokio::time::timeout_at;

use crate::error::{Code, Failure};
use crate::gate::Gate;
use crate::local::{Local, Ticket};
use crate::logs::Logs;
use crate::ops::{Op, Replies, Shape};
use crate::options::{Target, LIVENESS_LEASE_MS};
use crate::stats::Counters;

use batch::Job;

/// One server, or a Redis Cluster through redis-rs' cluster connection.
#[derive(Clone)]
enum Conn {
    Single(MultiplexedConnection),
    Cluster(cluster::Cluster),
}

#[derive(Clone)]
enum Link {
    /// No connection yet and none has failed: calls wait for it up to their deadline.
    Connecting,
    Up {
        conn: Conn,
        gen: u64,
    },
    /// The last attempt failed: calls fail at once instead of waiting.
    Down(Failure),
    Closed,
}

/// State shared by the tier's front, its supervisor, executor and heartbeat.
pub struct Shared {
    pub counters: Arc<Counters>,
    pub logs: Logs,
    /// L1, when configured; it is used only while the server tracks keys for us.
    local: Option<Arc<Local>>,
    /// Whether L1 serves: tracked, and the link proven alive within the lease.
    gate: Arc<Gate>,
    timeout: Duration,
    link: watch::Sender<Link>,
    wake: Notify,
    closed: AtomicBool,
    /// Connections opened so far: numbers every connection, also across a
    /// restarted supervisor, so nothing from an old one passes for current.
    generations: AtomicU64,
    /// How to cut the current connection, when it is plain TCP (`severable.rs`).
    cut: Mutex<Option<(u64, severable::Cut)>>,
    /// Measures how long invalidations take to arrive (see `latency.rs`).
    pub probe: Arc<latency::Probe>,
    /// Test-only panics (see [`TestPanics`]); `None` in production.
    test_panics: Option<Box<TestPanics>>,
    /// What [`Shared::say_once`] has said.
    said: Mutex<std::collections::HashSet<String>>,
    topology: health::Topology,
    /// Sentinel: the link (by generation) and the master it was confirmed on.
    master: Mutex<Option<(u64, String)>>,
}

pub struct RedisTier {
    shared: Arc<Shared>,
    jobs: Mutex<Option<mpsc::UnboundedSender<Job>>>,
}

impl RedisTier {
    /// Starts the supervisor and the executor on napi's tokio runtime; connects in the background.
    pub fn start(
        target: Target,
        local: Option<Arc<Local>>,
        counters: Arc<Counters>,
        timeout: Duration,
    ) -> Self {
        let (link, _) = watch::channel(Link::Connecting);
        let lease = Duration::from_millis(LIVENESS_LEASE_MS.into());
        let shared = Arc::new(Shared {
            counters,
            logs: Logs::default(),
            gate: Arc::new(Gate::leased(
                local.is_some(),
                lease,
                local.as_ref().map(|l| l.store.board().clone()),
            )),
            local,
            timeout,
            link,
            wake: Notify::new(),
            closed: AtomicBool::new(false),
            generations: AtomicU64::new(0),
            cut: Mutex::new(None),
            probe: Default::default(),
            test_panics: TestPanics::from_env(),
            said: Mutex::default(),
            topology: health::Topology::of(&target),
            master: Mutex::default(),
        });
        let (tx, rx) = mpsc::unbounded_channel();
        link::start(shared.clone(), target);
        executor::start(shared.clone(), rx);
        RedisTier {
            shared,
            jobs: Mutex::new(Some(tx)),
        }
    }

    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Sends a batch (call this on the JavaScript thread, in call order) and
    /// returns a future of its replies that settles by the batch's deadline.
    pub fn submit(
        &self,
        ops: Vec<Op>,
        tickets: Vec<Vec<Ticket>>,
    ) -> impl std::future::Future<Output = Replies> + Send {
        let long = ops.iter().any(Op::is_long);
        // invalidatePattern and invalidateTags take as many round trips as the keys need; each
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
            .is_some_and(|tx| {
                tx.send(Job {
                    ops,
                    tickets,
                    reply,
                    deadline,
                })
                .is_ok()
            });
        let shared = self.shared.clone();
        async move {
            let why = if !sent {
                Failure::closed()
            } else {
                match timeout_at(deadline.into(), rx).await {
                    Ok(Ok(replies)) => return replies,
                    Ok(Err(_)) if shared.closed.load(Ordering::SeqCst) => Failure::closed(),
                    Ok(Err(_)) => Failure::new(
                        Code::Unavailable,
                        "the request was abandoned by a failed background task",
                    ),
                    Err(_) => Failure::timeout(),
                }
            };
            let mut r = Replies::with_capacity(shapes.len());
            for shape in shapes {
                r.fail(shape, &why);
            }
            r.count_failures(&shared.counters);
            r.unanswered = true;
            r
        }
    }

    pub fn connected(&self) -> bool {
        matches!(&*self.shared.link.borrow(), Link::Up { .. })
    }

    /// Takes no more calls and frees L1 at once; calls made before it still
    /// run (each within its deadline), then the executor drops the connection.
    pub fn close(&self) {
        self.jobs.lock().unwrap_or_else(|e| e.into_inner()).take();
        self.shared.gate.lapse();
        if let Some(local) = &self.shared.local {
            local.close();
        }
    }
}

impl Drop for RedisTier {
    fn drop(&mut self) {
        self.close();
    }
}

/// First delay before a task that panicked is run again; it doubles with each
/// panic up to [`RESTART_MAX`], so a task that panics on every run costs a
/// few runs a second instead of a core (and a flood of panic messages).
const RESTART_FIRST: Duration = Duration::from_millis(10);
const RESTART_MAX: Duration = Duration::from_secs(1);
/// A run this long without a panic ends the burst: the next panic is
/// reported again and restarts after [`RESTART_FIRST`].
const RESTART_CALM: Duration = Duration::from_secs(10);

/// The delay before the next run after a panic, given the previous delay of
/// this burst (`None`: no panic yet) and how long the run lasted; `true` when
/// the panic starts a new burst.
fn restart_delay(last: Option<Duration>, ran: Duration) -> (Duration, bool) {
    match last {
        Some(d) if ran < RESTART_CALM => ((d * 2).min(RESTART_MAX), false),
        _ => (RESTART_FIRST, true),
    }
}

/// The text a panic was raised with.
fn panic_text(payload: &(dyn std::any::Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("no message")
}

/// Runs the task `make` builds, and builds and runs it again should it ever
/// panic (with backoff): an instance must never be left without its
/// supervisor or executor. Calls made meanwhile keep their own deadlines.
fn spawn_restarting<F, Fut>(shared: Arc<Shared>, what: &'static str, make: F)
where
    F: Fn() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    napi::bindgen_prelude::spawn(async move {
        let mut last = None;
        while !shared.is_closed() {
            let started = Instant::now();
            let payload = match tokio::spawn(make()).await {
                Err(e) if e.is_panic() => e.into_panic(),
                _ => return,
            };
            let (delay, burst) = restart_delay(last, started.elapsed());
            last = Some(delay);
            if burst {
                // Once per burst: a task panicking on every run must not flood the logger.
                shared.logs.push(
                    "error",
                    Code::Unavailable,
                    format!(
                        "{what} failed with a panic ({}); restarting it, after {} ms doubling to {} ms while it keeps failing",
                        panic_text(&*payload),
                        RESTART_FIRST.as_millis(),
                        RESTART_MAX.as_millis(),
                    ),
                );
            }
            tokio::time::sleep(delay).await;
        }
    });
}

/// Test-only: `NATIVE_CACHE_TEST_PANIC=supervisor:3,executor:always`, read
/// once per process, makes each instance's supervisor panic on its first 3
/// runs (at their start) and its executor on every round it takes, so tests
/// can check restarts. Unset (production), an instance has none and its
/// rounds check one field.
#[derive(Default)]
struct TestPanics {
    supervisor: std::sync::atomic::AtomicU32,
    executor: std::sync::atomic::AtomicU32,
}

impl TestPanics {
    const ALWAYS: u32 = u32::MAX;

    /// An instance's panics, if the process was started with the variable.
    fn from_env() -> Option<Box<Self>> {
        static SPEC: std::sync::OnceLock<Option<(u32, u32)>> = std::sync::OnceLock::new();
        let (supervisor, executor) = (*SPEC.get_or_init(|| {
            std::env::var("NATIVE_CACHE_TEST_PANIC")
                .ok()
                .map(|spec| Self::parse(&spec))
        }))?;
        Some(Box::new(TestPanics {
            supervisor: supervisor.into(),
            executor: executor.into(),
        }))
    }

    /// `(supervisor, executor)` panics the variable asks for.
    fn parse(spec: &str) -> (u32, u32) {
        let (mut supervisor, mut executor) = (0, 0);
        for part in spec.split(',') {
            let (task, times) = part.split_once(':').unwrap_or((part, "1"));
            let times = match times.trim() {
                "always" => Self::ALWAYS,
                n => n.parse().unwrap_or(0),
            };
            match task.trim() {
                "supervisor" => supervisor = times,
                "executor" => executor = times,
                _ => {}
            }
        }
        (supervisor, executor)
    }

    /// Whether a test panic is due now (one fewer left).
    fn take(counter: &std::sync::atomic::AtomicU32) -> bool {
        counter
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| match n {
                0 => None,
                Self::ALWAYS => Some(n),
                n => Some(n - 1),
            })
            .is_ok()
    }

    fn check(counter: &std::sync::atomic::AtomicU32, task: &str) {
        if Self::take(counter) {
            panic!("NATIVE_CACHE_TEST_PANIC: test panic in the {task}");
        }
    }
}

impl Shared {
    /// Test-only panic points (see [`TestPanics`]).
    fn test_panic_supervisor(&self) {
        if let Some(p) = &self.test_panics {
            TestPanics::check(&p.supervisor, "supervisor");
        }
    }

    fn test_panic_executor(&self) {
        if let Some(p) = &self.test_panics {
            TestPanics::check(&p.executor, "executor");
        }
    }

    /// Tells the logger `message` (a warning) the first time `what` happens
    /// to this instance only.
    fn say_once(&self, what: String, code: Code, message: String) {
        let new = self
            .said
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(what);
        if new {
            self.logs.push("warn", code, message);
        }
    }

    /// The gate the hit path checks before serving from L1.
    pub fn gate(&self) -> Arc<Gate> {
        self.gate.clone()
    }

    /// L1, if configured and the server is tracking keys for this instance.
    pub fn l1(&self) -> Option<&Arc<Local>> {
        self.local.as_ref().filter(|_| self.gate.tracking())
    }

    /// The last queued call has run after `close()`: drop the connection and stop.
    fn shut_down(&self) {
        self.closed.store(true, Ordering::SeqCst);
        drop(self.cut().take());
        self.probe.close();
        self.link.send_replace(Link::Closed);
        self.gate.lapse();
        self.wake.notify_one();
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    fn is_up(&self) -> bool {
        matches!(&*self.link.borrow(), Link::Up { .. })
    }

    fn cut(&self) -> std::sync::MutexGuard<'_, Option<(u64, severable::Cut)>> {
        self.cut.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keeps how to cut connection `gen` (replacing, and so cutting, the last one's).
    fn set_cut(&self, gen: u64, cut: Option<severable::Cut>) {
        *self.cut() = cut.map(|c| (gen, c));
    }

    /// Makes `conn` (connection `gen`, cut by `cut`) the one calls use, in
    /// place of connection `replacing` (`None`: of whatever is there); never
    /// after `close()`. The one way a connection comes into service, for
    /// every topology: a connection replaced while up takes what L1 holds
    /// with it, since that was tracked on it and its invalidations stop with
    /// it (a connection that broke emptied L1 then). `false`: not installed,
    /// and `cut` has cut it.
    fn install(
        &self,
        gen: u64,
        conn: Conn,
        cut: Option<severable::Cut>,
        replacing: Option<u64>,
    ) -> bool {
        let mut was_up = false;
        let installed = self.link.send_if_modified(|link| {
            let wanted = match (&*link, replacing) {
                (Link::Closed, _) => false,
                (Link::Up { gen: g, .. }, Some(r)) => *g == r,
                (_, Some(_)) => false,
                (_, None) => true,
            };
            if wanted {
                was_up = matches!(link, Link::Up { .. });
                *link = Link::Up { conn, gen };
            }
            wanted
        });
        if !installed {
            return false;
        }
        self.set_cut(gen, cut);
        if was_up {
            if let Some(local) = &self.local {
                local.flush();
            }
        }
        true
    }

    /// Cuts connection `gen`: what it has not written yet is never written.
    fn sever(&self, gen: u64) {
        let mut cut = self.cut();
        if matches!(&*cut, Some((g, _)) if *g == gen) {
            drop(cut.take());
        }
    }

    /// Cuts connection `gen` if its socket is refusing bytes (see [`severable::Cut::stuck`]).
    fn sever_if_stuck(&self, gen: u64) -> bool {
        let mut cut = self.cut();
        let stuck = matches!(&*cut, Some((g, c)) if *g == gen && c.stuck());
        if stuck {
            drop(cut.take());
        }
        stuck
    }

    fn is_current(&self, gen: u64) -> bool {
        matches!(&*self.link.borrow(), Link::Up { gen: g, .. } if *g == gen)
    }

    /// Marks connection `gen` broken (timeout, I/O error, silence, server closed it):
    /// L1 is emptied, since invalidations may have been missed, and the supervisor reconnects.
    /// On a cluster only L1 goes: redis-rs reconnects the node that failed.
    fn broken(&self, gen: u64, why: &Failure) {
        let cluster = matches!(&*self.link.borrow(),
            Link::Up { conn: Conn::Cluster(_), gen: g } if *g == gen);
        if cluster {
            // Logged once per outage: while L1 is closed, later failures say nothing new.
            let serving = self.gate.open_at(Instant::now());
            self.lapse_and_flush();
            if !serving {
                return;
            }
            self.logs.push(
                "warn",
                why.code,
                format!(
                    "Redis Cluster node failed ({}); local tier emptied",
                    why.message
                ),
            );
        } else {
            self.rebuild(gen, why);
        }
    }

    /// L1 serves nothing until the link is proven again.
    fn lapse_and_flush(&self) {
        self.gate.lapse();
        if let Some(local) = &self.local {
            local.flush();
        }
    }

    /// Drops connection `gen`, empties L1, and has the supervisor connect anew.
    fn rebuild(&self, gen: u64, why: &Failure) {
        let changed = self.link.send_if_modified(|link| match link {
            Link::Up { gen: g, .. } if *g == gen => {
                *link = Link::Down(why.clone());
                true
            }
            _ => false,
        });
        // Given up: nothing it still holds may reach Redis after its callers were answered.
        self.sever(gen);
        if changed {
            self.gate.lapse();
            if let Some(local) = &self.local {
                local.flush();
            }
            self.logs.push(
                "warn",
                why.code,
                format!("Redis connection lost ({}); reconnecting", why.message),
            );
            self.wake.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restarts_back_off_to_a_second_and_start_over_after_a_calm_run() {
        let quick = Duration::from_millis(1);
        let (mut d, burst) = restart_delay(None, quick);
        assert_eq!((d, burst), (RESTART_FIRST, true));
        let mut seen = vec![d.as_millis()];
        for _ in 0..8 {
            let (next, burst) = restart_delay(Some(d), quick);
            assert!(!burst);
            d = next;
            seen.push(d.as_millis());
        }
        assert_eq!(seen, [10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
        assert_eq!(restart_delay(Some(d), RESTART_CALM), (RESTART_FIRST, true));
    }

    #[test]
    fn test_panic_specs_parse() {
        assert_eq!(
            TestPanics::parse("supervisor:3,executor:always"),
            (3, TestPanics::ALWAYS)
        );
        assert_eq!(TestPanics::parse(" executor "), (0, 1));
        assert_eq!(TestPanics::parse("other:2,supervisor:x"), (0, 0));
    }

    #[test]
    fn test_panics_count_down_and_always_stays() {
        let p = TestPanics::default();
        p.supervisor.store(2, Ordering::Relaxed);
        p.executor.store(TestPanics::ALWAYS, Ordering::Relaxed);
        let sup: Vec<bool> = (0..3).map(|_| TestPanics::take(&p.supervisor)).collect();
        let exe: Vec<bool> = (0..3).map(|_| TestPanics::take(&p.executor)).collect();
        assert_eq!(sup, [true, true, false]);
        assert_eq!(exe, [true, true, true]);
    }
}
