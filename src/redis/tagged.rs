//! A tagged write on Redis, on every topology: its index entries (one `EVAL`
//! per tag, each on its tag's slot) go out first, those of every tagged write
//! of a round together, and its `SET` (or `getOrSet`'s write-back) only once
//! all of them succeeded: a key is never written without its index entries
//! (docs/tags.md). Index keys are touched by no other op of a round, so
//! sending them ahead keeps every call's effect in call order.

use std::time::Instant;

use tokio::sync::oneshot;

use super::batch::Planned;
use super::executor::{drop_due, run_pipeline, send};
use super::{cluster, Conn, Shared};
use crate::error::{Code, Failure};
use crate::ops::{Op, Replies};

/// How a failed index entry's report starts (`Op::TagIndex`'s name).
const PREFIX: &str = "Cache tag index error: ";

/// Runs `live` (a segment holding tagged writes): per stretch up to each
/// `clear()` (which would flush entries sent ahead of it), the index entries,
/// then the stretch with the writes whose entries all succeeded.
pub(super) async fn run(
    shared: &Shared,
    conn: &mut Conn,
    gen: u64,
    mut live: Vec<Planned>,
    (deadlines, outs): (&[Instant], &[oneshot::Sender<Replies>]),
    replies: &mut [Replies],
    broken: &mut Option<Failure>,
) {
    while !live.is_empty() {
        let cut = live.iter().position(|p| matches!(p.op, Op::Clear));
        let rest = live.split_off(cut.map_or(live.len(), |i| i + 1));
        let mut stretch = std::mem::replace(&mut live, rest);
        if broken.is_none() {
            index_first(shared, conn, gen, &mut stretch, deadlines, broken).await;
        }
        // Calls answered as timed out during that round trip are not sent.
        let stretch = drop_due(stretch, (deadlines, outs), replies);
        if !stretch.is_empty() {
            send(shared, conn, gen, stretch, deadlines, replies, broken).await;
        }
    }
}

/// Sends the index entries of `stretch`'s tagged writes (taking their tags);
/// a write with a failed entry becomes [`Op::Unsent`], answering that failure.
async fn index_first(
    shared: &Shared,
    conn: &mut Conn,
    gen: u64,
    stretch: &mut [Planned],
    deadlines: &[Instant],
    broken: &mut Option<Failure>,
) {
    let mut entries = Vec::new();
    let mut first: Option<Instant> = None;
    for (i, p) in stretch.iter_mut().enumerate() {
        if let Some(op) = p.op.take_tags() {
            let due = deadlines[p.job];
            first = Some(first.map_or(due, |f| f.min(due)));
            let tickets = Vec::new();
            entries.push(Planned {
                job: i,
                op,
                tickets,
            });
        }
    }
    let Some(first) = first else { return };
    let mut r: Vec<Replies> = stretch.iter().map(|_| Replies::default()).collect();
    match conn {
        Conn::Single(c) => {
            if let Err(why) = run_pipeline(shared, c, gen, first, entries, &mut r).await {
                if why.breaks_link() {
                    shared.broken(gen, &why);
                    *broken = Some(why);
                }
            }
        }
        Conn::Cluster(c) => cluster::run(shared, c, gen, first, entries, &mut r).await,
    }
    for (p, r) in stretch.iter_mut().zip(r) {
        if let Some(e) = r.errors.into_iter().next() {
            let message = e.message.strip_prefix(PREFIX).unwrap_or(&e.message);
            let why = Failure::new(Code::from_js(&e.code), message.to_string());
            let shape = p.op.shape();
            p.op = Op::Unsent { shape, why };
        }
    }
}
