//! Staleness measured, not assumed: how long an invalidation takes to reach
//! this instance.
//!
//! Every [`PROBE_EVERY_BEATS`]th heartbeat (about once a second) sends, on the
//! tracked connection, `STRLEN k` (a read: the server tracks `k` for this client) and
//! then `MULTI; SET k 1; DEL k; EXEC` on an internal per-instance key `k`.
//! Tracking runs without NOLOOP, so the server sends this client the
//! invalidation of `k`; the time from sending the probe to that push reaching
//! the handler that applies invalidations to L1 is one sample. The push takes the path every other
//! invalidation takes (the server's output buffer, the network, the
//! connection's reader behind whatever replies are queued before it, the push
//! handler), and the sample also holds the way out to the server, so it is an
//! upper bound on how late a change by another writer reaches L1. The SET and
//! DEL run in one transaction, so no other client ever sees the key.

use std::collections::VecDeque;
use std::hash::{BuildHasher, RandomState};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use redis::{RedisResult, Value};

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

    /// Sends one probe on `conn` (see the module doc). Returns the server's
    /// refusal, if any, as text; an I/O failure is an error.
    pub async fn send(&self, conn: &mut MultiplexedConnection) -> RedisResult<Option<String>> {
        let mut pipe = redis::pipe();
        pipe.cmd("STRLEN").arg(&self.key);
        pipe.cmd("MULTI");
        pipe.cmd("SET").arg(&self.key).arg(1);
        pipe.cmd("DEL").arg(&self.key);
        pipe.cmd("EXEC");
        self.lock().pending = Some(Instant::now());
        let replies = conn.send_packed_commands(&pipe, 0, 5).await?;
        let refused = replies.iter().find_map(|v| match v {
            Value::ServerError(e) => Some(e.to_string()),
            _ => None,
        });
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
