//! Whether L1 may serve right now.
//!
//! L1 serves only while the server tracks keys for this instance AND the
//! invalidation link has proven itself alive recently. A reply to a command
//! sent at time `s` proves every invalidation for changes before `s` has been
//! applied (pushes and replies share one ordered stream), so a hit at time `t`
//! is at most `t - s` stale. Serving only while `t - s <= lease` bounds how
//! long a silent partition can hide a change, whatever the timers are doing.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::board::{base, Board};

pub struct Gate {
    tracking: AtomicBool,
    /// Milliseconds since [`base`] of the latest proven send time; 0: never.
    proven: AtomicU64,
    /// 0: no lease (`'memory'` mode, where nothing can be missed).
    lease_ms: u64,
    /// Where the JavaScript memo reads the lease, and the lock that keeps
    /// what it reads the result of the last change, whichever thread made it.
    board: Option<(Arc<Board>, Mutex<()>)>,
}

fn ms_since_base(t: Instant) -> u64 {
    t.saturating_duration_since(base()).as_millis() as u64 + 1
}

impl Gate {
    /// A gate that is always open.
    pub fn open_always(board: Option<Arc<Board>>) -> Self {
        let gate = Gate {
            tracking: AtomicBool::new(true),
            proven: AtomicU64::new(u64::MAX / 2),
            lease_ms: 0,
            board: board.map(|b| (b, Mutex::new(()))),
        };
        gate.publish();
        gate
    }

    /// Closed until tracking is on and a reply proves the link alive.
    pub fn leased(tracking: bool, lease: Duration, board: Option<Arc<Board>>) -> Self {
        let gate = Gate {
            tracking: AtomicBool::new(tracking),
            proven: AtomicU64::new(0),
            lease_ms: lease.as_millis().max(1) as u64,
            board: board.map(|b| (b, Mutex::new(()))),
        };
        gate.publish();
        gate
    }

    /// Tells the board until when [`Gate::open_at`] holds, as of the state now:
    /// `ms_since_base(t) <= proven + lease` is `t < proven + lease` in exact milliseconds.
    fn publish(&self) {
        let Some((board, lock)) = &self.board else {
            return;
        };
        let _one_at_a_time = lock.lock().unwrap_or_else(|e| e.into_inner());
        let until = if !self.tracking.load(Ordering::Acquire) {
            0.0
        } else if self.lease_ms == 0 {
            f64::INFINITY
        } else {
            match self.proven.load(Ordering::Acquire) {
                0 => 0.0,
                p => (p + self.lease_ms) as f64,
            }
        };
        board.set_open_until(until);
    }

    /// Checked on every hit: one atomic load, and a clock read when leased.
    #[cfg(test)]
    pub fn open(&self) -> bool {
        self.open_at(Instant::now())
    }

    /// [`Gate::open`] as of `now` (the hit path reads the clock once).
    #[inline]
    pub fn open_at(&self, now: Instant) -> bool {
        if !self.tracking.load(Ordering::Acquire) {
            return false;
        }
        if self.lease_ms == 0 {
            return true;
        }
        let proven = self.proven.load(Ordering::Acquire);
        proven != 0 && ms_since_base(now) <= proven + self.lease_ms
    }

    pub fn tracking(&self) -> bool {
        self.tracking.load(Ordering::Acquire)
    }

    pub fn set_tracking(&self, on: bool) {
        self.tracking.store(on, Ordering::Release);
        self.publish();
    }

    /// A reply arrived to a command sent at `sent_at`.
    pub fn prove(&self, sent_at: Instant) {
        let t = ms_since_base(sent_at);
        // Most replies prove nothing newer: publish only when the lease moved.
        if self.proven.fetch_max(t, Ordering::AcqRel) < t {
            self.publish();
        }
    }

    /// The link is gone: nothing is proven until the next one answers.
    pub fn lapse(&self) {
        if self.lease_ms > 0 {
            self.proven.store(0, Ordering::Release);
            self.publish();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serves_only_within_the_lease_of_the_last_proof() {
        let g = Gate::leased(true, Duration::from_millis(30), None);
        assert!(!g.open(), "nothing proven yet");
        g.prove(Instant::now());
        assert!(g.open());
        std::thread::sleep(Duration::from_millis(45));
        assert!(!g.open(), "the lease ran out without a new proof");
        g.prove(Instant::now());
        assert!(g.open());
        g.lapse();
        assert!(!g.open());
    }

    #[test]
    fn an_older_proof_never_moves_the_lease_back() {
        let g = Gate::leased(true, Duration::from_millis(30), None);
        let old = Instant::now();
        std::thread::sleep(Duration::from_millis(5));
        g.prove(Instant::now());
        let after_new = g.proven.load(Ordering::Acquire);
        g.prove(old);
        assert_eq!(g.proven.load(Ordering::Acquire), after_new);
    }

    #[test]
    fn no_tracking_no_serving() {
        let g = Gate::leased(false, Duration::from_secs(10), None);
        g.prove(Instant::now());
        assert!(!g.open());
        assert!(Gate::open_always(None).open());
    }
}
