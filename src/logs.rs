//! Messages for the user's `logger`, queued in Rust and drained by JavaScript
//! after each batch (so no threadsafe function has to keep Node alive).

use std::sync::Mutex;

#[derive(Default)]
pub struct Logs {
    queue: Mutex<Vec<(&'static str, String)>>,
}

/// Bound on queued messages: an outage with no one draining must not grow memory.
const MAX_QUEUED: usize = 1_000;

impl Logs {
    pub fn push(&self, level: &'static str, message: impl Into<String>) {
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        if q.len() < MAX_QUEUED {
            q.push((level, message.into()));
        }
    }

    pub fn drain(&self) -> Vec<(&'static str, String)> {
        std::mem::take(&mut *self.queue.lock().unwrap_or_else(|e| e.into_inner()))
    }
}
