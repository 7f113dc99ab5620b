//! Staleness measured, not assumed: how long an invalidation takes to reach
//! this instance.
//!
//! Every [`PROBE_EVERY_BEATS`]th heartbeat (about once a second) starts a
//! probe: `STRLEN k` on the tracked connection (a read: the server now tracks
//! the internal per-instance key `k` for this client), then
//! `MULTI; SET k 1; DEL k; EXEC` on a second, untracked connection of the
//! instance, as another writer would. The server sends the tracked connection
//! the invalidation of `k`; the time from sending the write to that push
//! reaching the handler that applies invalidations to L1 is one sample. The
//! push takes the path every other invalidation takes (the server's output
//! buffer, the network, the tracked connection's reader behind whatever replies
//! are queued before it, the push handler); the sample also holds the writer's
//! way to the server, so it is an upper bound on how late a change by another
//! writer reaches L1. The SET and DEL run in one transaction, so no other
//! client ever sees the key. The write goes on its own connection so that a
//! server holding writes back (`CLIENT PAUSE WRITE`, as `FAILOVER` does) holds
//! up only the probe, never the heartbeat behind it; a write held up past the
//! command timeout gives no sample.

use std::collections::VecDeque;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use redis::{RedisResult, Value};
use tokio::sync::Notify;
use tokio::time::timeout;

use super::tracking::caching;

/// One probe per this many heartbeats (250 ms each): about one a second.
pub const PROBE_EVERY_BEATS: u32 = 4;
/// After the server refuses a probe (ACL, a read-only replica), skip this many beats (about a minute).
const REFUSED_SKIP_BEATS: u32 = 240;
/// Quantiles are taken over the latest this many samples (about a minute of probes).
pub const WINDOW: usize = 64;
/// The probe key's prefix; the rest is random per instance.
pub const KEY_PREFIX: &str = "__native_cache:probe:";

/// Quantiles over the window, plus totals for a Prometheus summary.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Summary {
    pub p50: Duration,
    pub p99: Duration,
    pub last: Duration,
    /// Samples taken since the instance started.
    pub count: u64,
    /// Their sum.
    pub sum: Duration,
}

pub struct Probe {
    key: String,
    inner: Mutex<Inner>,
    /// The connection the probe writes on, once opened.
    writer: Mutex<Option<MultiplexedConnection>>,
    /// A probe is running: the next one waits for it.
    busy: AtomicBool,
    closed: AtomicBool,
    on_close: Notify,
}

#[derive(Default)]
struct Inner {
    /// When the probe in flight was sent.
    pending: Option<Instant>,
    window: VecDeque<Duration>,
    count: u64,
    sum: Duration,
    /// Beats left to skip after a refusal.
    skip: u32,
    said_refused: bool,
}

impl Default for Probe {
    fn default() -> Self {
        let id = RandomState::new().hash_one(Instant::now());
        Probe {
            key: format!("{KEY_PREFIX}{id:016x}"),
            inner: Mutex::new(Inner::default()),
            writer: Mutex::new(None),
            busy: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            on_close: Notify::new(),
        }
    }
}

/// The nearest-rank `q` quantile of `sorted` (not empty).
fn quantile(sorted: &[Duration], q: f64) -> Duration {
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

impl Probe {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    #[cfg(test)]
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Whether heartbeat number `beat` (from 0 on each connection) should probe.
    pub fn due(&self, beat: u32) -> bool {
        let mut inner = self.lock();
        if inner.skip > 0 {
            inner.skip -= 1;
            return false;
        }
        beat.is_multiple_of(PROBE_EVERY_BEATS)
    }

    /// Claims the next probe; `None` while one is running or after `close()`.
    pub fn start(&self) -> Option<Running<'_>> {
        (!self.closed.load(Ordering::Acquire) && !self.busy.swap(true, Ordering::AcqRel))
            .then_some(Running(self))
    }

    /// The writer connection, if one is open.
    pub fn writer(&self) -> Option<MultiplexedConnection> {
        self.writer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn set_writer(&self, conn: Option<MultiplexedConnection>) {
        *self.writer.lock().unwrap_or_else(|e| e.into_inner()) = conn;
    }

    /// The instance closed: drops the writer and abandons a probe held up.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.set_writer(None);
        self.on_close.notify_waiters();
    }

    /// Runs one probe (see the module doc), each step bounded by `limit`; a
    /// write held up past it is waited out until `give_up` (the tracked link
    /// changed: the writer may hang on a dead link) or `close()`.
    /// Returns the server's refusal as text the first time there is one; an
    /// I/O failure or giving up is an error (the caller drops the writer).
    pub async fn send(
        &self,
        mut tracked: MultiplexedConnection,
        writer: &mut MultiplexedConnection,
        limit: Duration,
        give_up: impl std::future::Future<Output = ()>,
    ) -> RedisResult<Option<String>> {
        // Tracking is OPTIN (link.rs): the read opts in right before it, in one pipeline.
        let mut track = redis::pipe();
        caching(&mut track);
        track.cmd("STRLEN").arg(&self.key);
        let tracked_reply = timeout(limit, tracked.send_packed_commands(&track, 0, 2)).await;
        drop(tracked);
        let refused = match tracked_reply {
            Err(_) => return Ok(None),
            Ok(Err(e)) if e.code().is_some() => Some(e.to_string()),
            Ok(Err(e)) => return Err(e),
            Ok(Ok(values)) => match values.iter().find_map(|v| match v {
                Value::ServerError(e) => Some(e.to_string()),
                _ => None,
            }) {
                Some(refusal) => Some(refusal),
                None => self.write(writer, limit, give_up).await?,
            },
        };
        if refused.is_some() {
            let mut inner = self.lock();
            inner.pending = None;
            inner.skip = REFUSED_SKIP_BEATS;
            if !std::mem::replace(&mut inner.said_refused, true) {
                return Ok(refused);
            }
        }
        Ok(None)
    }

    /// The probe's write; returns the server's refusal, if any.
    async fn write(
        &self,
        writer: &mut MultiplexedConnection,
        limit: Duration,
        give_up: impl std::future::Future<Output = ()>,
    ) -> RedisResult<Option<String>> {
        let mut pipe = redis::pipe();
        pipe.cmd("MULTI");
        pipe.cmd("SET").arg(&self.key).arg(1);
        pipe.cmd("DEL").arg(&self.key);
        pipe.cmd("EXEC");
        let closing = self.on_close.notified();
        if self.closed.load(Ordering::Acquire) {
            return Ok(None);
        }
        let sent = Instant::now();
        self.lock().pending = Some(sent);
        let write = writer.send_packed_commands(&pipe, 0, 4);
        tokio::pin!(write);
        let written = match timeout(limit, &mut write).await {
            Ok(r) => r,
            Err(_) => {
                // Held up (a paused server): no sample from this one; wait it out
                // so that probes never pile up on the writer.
                {
                    let mut inner = self.lock();
                    if inner.pending == Some(sent) {
                        inner.pending = None;
                    }
                }
                tokio::select! {
                    r = &mut write => r,
                    _ = closing => return Ok(None),
                    _ = give_up => {
                        let why = std::io::Error::new(std::io::ErrorKind::TimedOut, "probe write held up");
                        return Err(why.into());
                    }
                }
            }
        };
        match written {
            Err(e) if e.code().is_some() => Ok(Some(e.to_string())),
            Err(e) => Err(e),
            Ok(replies) => Ok(replies.iter().find_map(|v| match v {
                Value::ServerError(e) => Some(e.to_string()),
                _ => None,
            })),
        }
    }

    /// Takes the probe key out of an invalidation push's keys, recording a
    /// sample if a probe was in flight. Returns whether other keys remain.
    pub fn sift(&self, data: &mut [Value]) -> bool {
        let Some(Value::Array(keys)) = data.first_mut() else {
            return true;
        };
        let before = keys.len();
        keys.retain(|k| !matches!(k, Value::BulkString(b) if b == self.key.as_bytes()));
        if keys.len() != before {
            self.arrived(Instant::now());
        }
        !keys.is_empty()
    }

    fn arrived(&self, now: Instant) {
        let mut inner = self.lock();
        if let Some(sent) = inner.pending.take() {
            let d = now.saturating_duration_since(sent);
            if inner.window.len() == WINDOW {
                inner.window.pop_front();
            }
            inner.window.push_back(d);
            inner.count += 1;
            inner.sum += d;
        }
    }

    /// The samples taken after the first `seen` (at most the window's
    /// latest, oldest first), and how many were taken in all.
    pub fn samples_since(&self, seen: u64) -> (u64, Vec<Duration>) {
        let inner = self.lock();
        let held = inner.window.len();
        let new = usize::try_from(inner.count.saturating_sub(seen)).map_or(held, |n| n.min(held));
        (
            inner.count,
            inner.window.iter().skip(held - new).copied().collect(),
        )
    }

    pub fn summary(&self) -> Option<Summary> {
        let inner = self.lock();
        let last = *inner.window.back()?;
        let mut sorted: Vec<Duration> = inner.window.iter().copied().collect();
        sorted.sort_unstable();
        Some(Summary {
            p50: quantile(&sorted, 0.5),
            p99: quantile(&sorted, 0.99),
            last,
            count: inner.count,
            sum: inner.sum,
        })
    }
}

/// A probe in flight; the next may start once it is dropped.
pub struct Running<'a>(&'a Probe);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.busy.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn push(keys: &[&str]) -> Vec<Value> {
        vec![Value::Array(
            keys.iter()
                .map(|k| Value::BulkString(k.as_bytes().to_vec()))
                .collect(),
        )]
    }

    #[test]
    fn nearest_rank_quantiles() {
        let s: Vec<Duration> = (1..=100).map(ms).collect();
        assert_eq!(quantile(&s, 0.5), ms(50));
        assert_eq!(quantile(&s, 0.99), ms(99));
        assert_eq!(quantile(&[ms(7)], 0.5), ms(7));
        assert_eq!(quantile(&[ms(7)], 0.99), ms(7));
        assert_eq!(quantile(&[ms(1), ms(9)], 0.99), ms(9));
    }

    #[test]
    fn a_sample_needs_a_probe_in_flight_and_the_window_slides() {
        let p = Probe::default();
        assert!(p.key().starts_with(KEY_PREFIX));
        assert_ne!(p.key(), Probe::default().key(), "keys differ per instance");
        assert_eq!(p.summary(), None);
        p.arrived(Instant::now());
        assert_eq!(p.summary(), None, "no probe was in flight");
        for i in 0..(WINDOW as u64 + 10) {
            let now = Instant::now();
            p.lock().pending = Some(now - ms(if i < 10 { 1000 } else { 5 }));
            p.arrived(now);
        }
        let s = p.summary().unwrap();
        assert_eq!(s.count, WINDOW as u64 + 10);
        assert_eq!(s.sum, ms(10 * 1000 + WINDOW as u64 * 5));
        assert_eq!(
            (s.p50, s.p99, s.last),
            (ms(5), ms(5), ms(5)),
            "the early slow samples slid out"
        );
    }

    #[test]
    fn sift_takes_only_the_probe_key_out() {
        let p = Probe::default();
        p.lock().pending = Some(Instant::now());
        let mut only = push(&[p.key()]);
        assert!(!p.sift(&mut only), "nothing left for L1");
        assert_eq!(p.summary().unwrap().count, 1);
        let mut mixed = push(&["a", p.key(), "b"]);
        assert!(p.sift(&mut mixed));
        assert_eq!(mixed, push(&["a", "b"]));
        assert_eq!(
            p.summary().unwrap().count,
            1,
            "no probe in flight: no sample"
        );
        let mut flush = vec![Value::Nil];
        assert!(p.sift(&mut flush), "a flush push passes through");
    }

    #[test]
    fn probes_every_few_beats_and_back_off_after_a_refusal() {
        let p = Probe::default();
        let due: Vec<u32> = (0..9).filter(|&b| p.due(b)).collect();
        assert_eq!(due, vec![0, 4, 8]);
        p.lock().skip = 2;
        assert!(!p.due(0));
        assert!(!p.due(4));
        assert!(p.due(8));
    }
}
