//! The Redis tier, split by concern as redis-rs splits its connection manager
//! from its multiplexed connection:
//!
//! - `link.rs`: one RESP3 connection, (re)connected by a supervisor with
//!   backoff and jitter, client tracking switched on, a heartbeat proving the
//!   invalidation link alive;
//! - `executor.rs`: the serial executor that turns each batch of calls into
//!   one pipeline and keeps every call's deadline;
//! - `commands.rs`: what each call sends and how its replies are read;
//! - `scan.rs`: `invalidatePattern`'s `SCAN` + `UNLINK` loop;
//! - `sentinel.rs`: with Sentinel, the master's address for every connect,
//!   its role checked, `+switch-master` followed.
//! - `cluster.rs`: the same over a Redis Cluster (redis-rs' cluster-async,
//!   tracking on every node connection) and `direct.rs` (per-key calls as
//!   one pipeline per primary on our own node connections).
//!
//! Tracking pushes are applied to L1 by `local.rs`.

mod cluster;
mod commands;
mod direct;
mod executor;
mod link;
mod scan;
mod sentinel;

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

use executor::Job;

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
    /// Measures how long invalidations take to arrive (see `latency.rs`).
    pub probe: Arc<crate::latency::Probe>,
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
            gate: Arc::new(Gate::leased(local.is_some(), lease)),
            local,
            timeout,
            link,
            wake: Notify::new(),
            closed: AtomicBool::new(false),
            generations: AtomicU64::new(0),
            probe: Default::default(),
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

    /// Local effects of `op`, applied when the call is made (see [`Local::prepare`]).
    pub fn prepare(&self, op: &Op) -> Vec<Ticket> {
        match self.shared.l1() {
            Some(local) => local.prepare(op),
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

/// Runs the task `make` builds, and builds and runs it again should it ever
/// panic: an instance must never be left without its supervisor or executor.
fn spawn_restarting<F, Fut>(shared: Arc<Shared>, what: &'static str, make: F)
where
    F: Fn() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    napi::bindgen_prelude::spawn(async move {
        while !shared.is_closed() {
            match tokio::spawn(make()).await {
                Err(e) if e.is_panic() => shared.logs.push(
                    "error",
                    Code::Unavailable,
                    format!("{what} failed; restarting it"),
                ),
                _ => return,
            }
        }
    });
}

impl Shared {
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
