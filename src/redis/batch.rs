//! A batch of calls as the executor takes it from the JavaScript thread
//! ([`Job`]) and as each topology runs it ([`Planned`]).

use std::time::Instant;

use tokio::sync::oneshot;

use crate::local::Ticket;
use crate::ops::{Op, Replies};

pub struct Job {
    pub ops: Vec<Op>,
    /// Per op, one ticket per key it reads through L1.
    pub tickets: Vec<Vec<Ticket>>,
    pub reply: oneshot::Sender<Replies>,
    pub deadline: Instant,
}

/// An op of a merged pipeline: the job it belongs to, the op, its L1 tickets.
pub struct Planned {
    pub job: usize,
    pub op: Op,
    pub tickets: Vec<Ticket>,
}
