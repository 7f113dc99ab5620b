//! Plain TCP connections whose driver task this crate runs, so that giving a
//! connection up also stops it writing.
//!
//! Why: a call answered "timed out" must never run later (SPEC, faults). When
//! Redis stops reading (stopped, partitioned, swamped), the bytes of a round
//! wait in redis-rs' write buffer behind those the socket cannot take; a
//! connection opened by redis-rs keeps its driver alive while any clone of it
//! lives, and writes them the moment Redis reads again, long after their
//! callers were answered. Here the driver is ours: dropping its [`Cut`] aborts it,
//! and whatever it still held is dropped unwritten. The stream also says when
//! the socket refused bytes ([`Cut::stuck`]), which is when unwritten bytes exist.
//!
//! TLS and Unix-socket connections are still opened by redis-rs (their
//! handshakes are its code), so they cannot be cut: the executor keeps one
//! round at a time on them.
//!
//! [`send_round`] is the one rule for a round on any of these connections
//! (single server, Sentinel's master, a Cluster primary's direct connection).

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Pipeline, RedisConnectionInfo, RedisError, RedisResult, Value};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::task::AbortHandle;
use tokio::time::timeout_at;

use crate::error::{Code, Failure};

/// How to stop one connection's driver, and whether its socket is refusing bytes.
pub struct Cut {
    driver: AbortHandle,
    stuck: Arc<AtomicBool>,
}

impl Cut {
    /// Whether the driver has bytes the socket would not take (the last write
    /// returned "would block" and none has gone through since).
    pub fn stuck(&self) -> bool {
        self.stuck.load(Ordering::Acquire)
    }
}

/// Dropping the cut stops the driver: bytes not yet handed to the kernel are
/// never written, and every request still out fails at once.
impl Drop for Cut {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

/// How a round went.
pub enum Round {
    Replies(Vec<Value>),
    /// No answer in time (the connection was cut if it was stuck), or not
    /// the number of replies sent for.
    Failed(Failure),
    /// The connection failed (I/O error, closed).
    Lost(RedisError),
}

/// Sends the first `total` commands of `pipe` as one round on `conn`. At
/// `first`, its first caller's deadline, the round is answered; if the
/// socket is refusing bytes then, what is left of it must never be written:
/// `cut_if_stuck` cuts the connection (and says whether it did). Otherwise
/// its bytes are out and it gets the full `limit` from when it was sent.
pub async fn send_round(
    conn: &mut MultiplexedConnection,
    pipe: &Pipeline,
    total: usize,
    first: Instant,
    limit: Duration,
    cut_if_stuck: impl FnOnce() -> bool,
) -> Round {
    let sent_at = Instant::now();
    let sending = conn.send_packed_commands(pipe, 0, total);
    tokio::pin!(sending);
    let answered = match timeout_at(first.into(), &mut sending).await {
        Ok(done) => Some(done),
        Err(_) if cut_if_stuck() => None,
        Err(_) => timeout_at((sent_at + limit).into(), &mut sending)
            .await
            .ok(),
    };
    match answered {
        Some(Ok(values)) if values.len() == total => Round::Replies(values),
        Some(Ok(values)) => Round::Failed(Failure::new(
            Code::Protocol,
            format!("expected {total} replies, got {}", values.len()),
        )),
        Some(Err(e)) => Round::Lost(e),
        None => Round::Failed(Failure::timeout()),
    }
}

/// Connects to `host:port` and sets the connection up (`HELLO`, `AUTH`,
/// `SELECT` as `info` says) with redis-rs' own code, driving it on a task we
/// can abort. `nodelay`: no Nagle delay (the single server's executor writes
/// whole pipelines and waits for their replies); without it, as redis-rs'
/// default, the small writes of the cluster's per-node pipelines coalesce.
pub async fn open(
    host: &str,
    port: u16,
    info: &RedisConnectionInfo,
    config: AsyncConnectionConfig,
    nodelay: bool,
) -> RedisResult<(MultiplexedConnection, Cut)> {
    // Every address at once, as redis-rs does: one that drops packets must not
    // use up the connect timeout before the next is tried.
    let addrs: Vec<_> = tokio::net::lookup_host((host, port)).await?.collect();
    if addrs.is_empty() {
        return Err(
            io::Error::new(io::ErrorKind::NotFound, format!("{host} has no address")).into(),
        );
    }
    let attempts = addrs.into_iter().map(|a| Box::pin(TcpStream::connect(a)));
    let (socket, _) = futures_util::future::select_ok(attempts).await?;
    socket.set_nodelay(nodelay)?;
    let stuck = Arc::new(AtomicBool::new(false));
    let stream = Watched {
        socket,
        stuck: stuck.clone(),
    };
    let (conn, driver) = MultiplexedConnection::new_with_config(info, stream, config).await?;
    let driver = tokio::spawn(driver).abort_handle();
    Ok((conn, Cut { driver, stuck }))
}

/// The socket, noting whether its last write was refused.
struct Watched {
    socket: TcpStream,
    stuck: Arc<AtomicBool>,
}

impl Watched {
    fn note<T>(&self, poll: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        self.stuck.store(poll.is_pending(), Ordering::Release);
        poll
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.socket).poll_read(cx, buf)
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.socket).poll_write(cx, buf);
        self.note(poll)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.socket).poll_write_vectored(cx, bufs);
        self.note(poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.socket.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.socket).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.socket).poll_shutdown(cx)
    }
}
