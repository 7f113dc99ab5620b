//! Messages for the user's `logger`, queued in Rust and drained by JavaScript
//! after each batch (so no threadsafe function has to keep Node alive).

use std::sync::Mutex;

use crate::error::Code;

/// One message: its level, the failure code it is about, its text.
pub type Line = (&'static str, Code, String);

#[derive(Default)]
pub struct Logs {
    queue: Mutex<Vec<Line>>,
}

/// Bound on queued messages: an outage with no one draining must not grow memory.
const MAX_QUEUED: usize = 1_000;

impl Logs {
    pub fn push(&self, level: &'static str, code: Code, message: impl Into<String>) {
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        if q.len() < MAX_QUEUED {
            q.push((level, code, message.into()));
        }
    }

    pub fn drain(&self) -> Vec<Line> {
        std::mem::take(&mut *self.queue.lock().unwrap_or_else(|e| e.into_inner()))
    }
}
