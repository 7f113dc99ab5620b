//! Redis Cluster: redis-rs' `cluster-async` connection (slot map, `MOVED`/`ASK`,
//! per-node reconnects, fan-out), with client tracking switched on for every
//! node connection it opens, and what each call sends per slot. By concern:
//!
//! - `nodes.rs`: redis-rs' node connections, tracked from their first command;
//!   their pushes;
//! - `slots.rs`: hash slots, `CLUSTER SLOTS`, which replies mean "not here";
//! - `direct.rs`: our slot map and one connection per primary (cut when silent);
//! - `encode.rs`: an op's per-key parts (`commands::parts`) with their slots,
//!   and a direct part's replies as redis-rs answers them;
//! - `run.rs`: a segment of calls run over direct pipelines and redis-rs;
//! - `connect.rs`: a cluster connection (redis-rs' and our direct one);
//! - `primaries.rs`: a command on every primary (`PING`, `INFO`, ...);
//! - `liveness.rs`: the heartbeat and the rebuild from the seeds.
//!
//! Tracking: redis-rs opens node connections itself (seed nodes, topology
//! refresh, a `MOVED` to a node it has not met, reconnects), and every one of
//! them goes through [`Tracked::connect_with_config`], which sends
//! `CLIENT TRACKING ON` before the connection serves its first read. Pushes
//! of every node arrive through the one push sender of the client, without
//! the node's address; so a `Disconnection` of any node empties all of L1.
//!
//! Liveness: a reply from one node proves nothing about the others, so only
//! the heartbeat proves the gate: a `PING` answered by every primary.
//!
//! Per-key calls: a batch goes out as one pipeline per primary on our own
//! node connections (`direct.rs`, `OPTIN` tracking, reads as on a single
//! node); keys whose slot our map does not cover, and commands a node
//! redirects, go through redis-rs, grouped by slot, one pipeline per slot,
//! sent concurrently. The calls on one key share a slot, so they keep their
//! order. Through redis-rs each key's command carries all it needs (a read
//! that fills L1 is one `EVAL` of `GET` + `PTTL`), so a pipeline that
//! redis-rs retries whole after a redirect still reads each key from one node.

mod connect;
mod direct;
mod encode;
mod health;
mod liveness;
mod nodes;
mod primaries;
mod run;
mod slots;

pub use connect::{connect, Cluster};
pub use health::primaries_health;
pub use liveness::heartbeat;
pub use run::{delete_pattern, one, run};
#[cfg(test)]
pub use slots::slot;
