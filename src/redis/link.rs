//! The connection: a supervisor that (re)connects it, switches client
//! tracking on, and a heartbeat that keeps proving it alive.

use std::hash::{BuildHasher, RandomState};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use redis::io::AsyncDNSResolver;
use redis::{
    AsyncConnectionConfig, ConnectionAddr, ProtocolVersion, PushInfo, PushKind, RedisFuture,
};
use tokio::time::{sleep, timeout};

use super::sentinel::{self, Sentinels};
use super::severable::{self, Cut};
use super::tracking::track;
use super::{cluster, Conn, Link, Shared};
use crate::error::{classify_connect, Code, ConnectFailure, Failure};
use crate::options::{Target, HEARTBEAT_INTERVAL_MS};
use crate::stats::Counters;

/// Runs the supervisor (restarted should it ever panic).
pub fn start(shared: Arc<Shared>, target: Target) {
    let sentinels = target
        .sentinel
        .clone()
        .map(|cfg| Sentinels::start(&shared, cfg));
    let target = Arc::new(target);
    let task = shared.clone();
    super::spawn_restarting(shared, "Redis connection supervisor", move || {
        supervise(task.clone(), target.clone(), sentinels.clone())
    });
}

/// Reconnect delays: 50 ms doubling to 1 s, each between half and all of
/// that, so a fleet does not reconnect in step after a Redis restart.
fn backoff(attempt: u32) -> Duration {
    let cap = (50u64 << attempt.min(5)).min(1000);
    let jitter = RandomState::new().hash_one(attempt) % (cap / 2 + 1);
    Duration::from_millis(cap / 2 + jitter)
}

async fn supervise(shared: Arc<Shared>, target: Arc<Target>, sentinels: Option<Arc<Sentinels>>) {
    shared.test_panic_supervisor();
    if shared.generations.load(Ordering::SeqCst) > 0 {
        // Restarted after a panic: what L1 holds was tracked on a connection
        // this supervisor no longer watches.
        shared.gate.lapse();
        if let Some(local) = &shared.local {
            local.flush();
        }
    }
    let mut failures = 0u32;
    let mut ever_up = false;
    let mut resp3 = true;
    let mut said_no_tracking = false;
    while !shared.is_closed() {
        let gen = shared.generations.fetch_add(1, Ordering::SeqCst) + 1;
        let attempt = match &target.cluster {
            Some(nodes) => cluster::connect(&shared, nodes, gen, shared.timeout)
                .await
                .map(|c| (Conn::Cluster(c), None, None, None)),
            None => connect(&shared, &target, sentinels.as_deref(), gen, resp3)
                .await
                .map(|(c, untracked, server, cut)| (Conn::Single(c), untracked, Some(server), cut)),
        };
        match attempt {
            Ok((conn, untracked, server, cut)) => {
                if let Some(why) = untracked.filter(|_| !said_no_tracking) {
                    said_no_tracking = true;
                    shared.logs.push(
                        "warn",
                        Code::Server,
                        format!("Redis cannot track keys for this client ({why}); running without the local tier"),
                    );
                }
                // Losing the last connection emptied L1 already, so reads queued
                // meanwhile (sent only now, with tracking on) still fill it.
                if !shared.install(gen, conn.clone(), cut, None) {
                    return;
                }
                if ever_up {
                    Counters::add(&shared.counters.reconnects, 1);
                    shared
                        .logs
                        .push("info", Code::Unavailable, "Redis connection re-established");
                }
                ever_up = true;
                failures = 0;
                let weak = Arc::downgrade(&shared);
                match (conn, server) {
                    (Conn::Single(c), Some(server)) => {
                        // The probe writes to the server this connection reached (a new master, say).
                        shared.probe.set_writer(None);
                        let role = sentinels.is_some();
                        tokio::spawn(heartbeat(weak, c, gen, role, server))
                    }
                    (Conn::Single(c), None) => {
                        unreachable!("a single connection always names its server: {c:?}")
                    }
                    (Conn::Cluster(c), _) => {
                        tokio::spawn(cluster::heartbeat(weak, c, gen, target.clone()))
                    }
                };
                // Wait until this connection is reported broken or the cache closes.
                // A cluster connection may be replaced by a fresh one (see cluster.rs).
                while shared.is_current(gen) || (target.cluster.is_some() && shared.is_up()) {
                    shared.wake.notified().await;
                }
                // A server that spoke RESP2 may have been upgraded since.
                resp3 = true;
            }
            Err(ConnectFailure::NoResp3) if resp3 => resp3 = false,
            Err(ConnectFailure::NoResp3) => {}
            Err(ConnectFailure::Transient(why)) => {
                if failures == 0 {
                    shared.logs.push(
                        "error",
                        why.code,
                        format!("Redis connection failed: {}", why.message),
                    );
                }
                shared.link.send_if_modified(|link| {
                    if matches!(link, Link::Closed) {
                        return false;
                    }
                    *link = Link::Down(why.clone());
                    true
                });
                let delay = backoff(failures);
                failures = failures.saturating_add(1);
                tokio::select! {
                    _ = sleep(delay) => {}
                    _ = shared.wake.notified() => {}
                }
            }
        }
    }
}

/// Dials `host:port` while the TLS layer checks the certificate against the
/// name in the address (`tls.servername`).
struct Dial(String, u16);

impl AsyncDNSResolver for Dial {
    fn resolve<'a, 'b: 'a>(
        &'a self,
        _host: &'b str,
        _port: u16,
    ) -> RedisFuture<'a, Box<dyn Iterator<Item = SocketAddr> + Send + 'a>> {
        Box::pin(async move {
            let addrs = tokio::net::lookup_host((self.0.as_str(), self.1)).await?;
            Ok(Box::new(addrs) as Box<dyn Iterator<Item = SocketAddr> + Send>)
        })
    }
}

fn config(shared: &Shared, server: &Target) -> AsyncConnectionConfig {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(shared.timeout))
        .set_response_timeout(None);
    match &server.dial {
        Some((host, port)) => config.set_dns_resolver(Dial(host.clone(), *port)),
        None => config,
    }
}

/// What [`connect`] opened: the connection, why L1 is off (configured but
/// untracked), the server it reached, and how to cut it (plain TCP only).
type Opened = (
    MultiplexedConnection,
    Option<String>,
    Arc<Target>,
    Option<Cut>,
);

/// Opens connection `gen` (to the master the sentinels name, with Sentinel)
/// and asks the server to track the keys it reads.
async fn connect(
    shared: &Arc<Shared>,
    target: &Target,
    sentinels: Option<&Sentinels>,
    gen: u64,
    resp3: bool,
) -> Result<Opened, ConnectFailure> {
    let transient = |f: Failure| ConnectFailure::Transient(f);
    let located = match sentinels {
        Some(s) => Some(s.locate(shared, target).await?),
        None => None,
    };
    let (info, dial) = match &located {
        Some(m) => (m.info.clone(), m.dial.clone()),
        None => (target.info.clone(), target.dial.clone()),
    };
    let server = Arc::new(Target {
        info,
        dial,
        sentinel: None,
        cluster: None,
    });
    let mut info = server.info.clone();
    if !resp3 {
        let redis = info
            .redis_settings()
            .clone()
            .set_protocol(ProtocolVersion::RESP2);
        info = info.set_redis_settings(redis);
    }
    let mut config = config(shared, &server);
    if resp3 {
        // Weak: the connection must not keep the instance alive.
        let weak: Weak<Shared> = Arc::downgrade(shared);
        config = config.set_push_sender(move |push: PushInfo| {
            if let Some(shared) = weak.upgrade() {
                on_push(&shared, gen, push);
            }
            Ok::<(), ()>(())
        });
    }
    // Plain TCP: our own driver (see severable.rs); TLS and Unix sockets: redis-rs'.
    let connecting = async {
        match info.addr() {
            ConnectionAddr::Tcp(host, port) => {
                // Pipelines are written whole; waiting for ACKs only delays the next round.
                severable::open(host, *port, info.redis_settings(), config, true)
                    .await
                    .map(|(conn, cut)| (conn, Some(cut)))
            }
            _ => {
                let client = redis::Client::open(info.clone())?;
                let conn = client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await?;
                Ok((conn, None))
            }
        }
    };
    let (mut conn, cut) = match timeout(shared.timeout, connecting).await {
        Err(_) => {
            return Err(transient(Failure::new(
                Code::Unavailable,
                "connect timed out",
            )))
        }
        Ok(Err(e)) => return Err(classify_connect(e)),
        Ok(Ok(opened)) => opened,
    };
    // Until the link is published, a failure here drops the connection with the cut.
    if let (Some(s), Some(m)) = (sentinels, &located) {
        s.confirm(shared, &mut conn, gen, m).await?;
    }
    if shared.local.is_none() {
        return Ok((conn, None, server, cut));
    }
    if !resp3 {
        shared.gate.set_tracking(false);
        return Ok((
            conn,
            Some("the server speaks RESP2 only".into()),
            server,
            cut,
        ));
    }
    let sent = Instant::now();
    let refused = match timeout(shared.timeout, track(&mut conn, true)).await {
        Err(_) => return Err(transient(Failure::timeout())),
        Ok(Err(why)) => return Err(transient(why)),
        Ok(Ok(refused)) => refused,
    };
    match refused {
        None => {
            shared.gate.set_tracking(true);
            shared.gate.prove(sent);
            Ok((conn, None, server, cut))
        }
        Some(why) => {
            shared.gate.set_tracking(false);
            if let Some(local) = &shared.local {
                local.flush();
            }
            Ok((
                conn,
                Some(format!("client tracking refused: {why}")),
                server,
                cut,
            ))
        }
    }
}

/// Applies a RESP3 push from connection `gen`: invalidations, or the library's disconnect notice.
fn on_push(shared: &Shared, gen: u64, push: PushInfo) {
    match push.kind {
        PushKind::Invalidate => {
            let mut data = push.data;
            if let Some(local) = shared
                .local
                .as_ref()
                .filter(|_| shared.probe.sift(&mut data))
            {
                local.on_invalidate(data);
            }
        }
        PushKind::Disconnection => {
            shared.broken(gen, &Failure::new(Code::Unavailable, "connection closed"))
        }
        _ => {}
    }
}

/// Pings connection `gen` every [`HEARTBEAT_INTERVAL_MS`]: each answer proves
/// the invalidation link alive (see `gate.rs`); no answer within the command
/// timeout breaks the connection, which empties L1 and reconnects. Every few
/// beats, while tracked, it also starts a latency probe (`latency.rs`) that
/// writes to `server`, the server this connection reached.
/// `role` (Sentinel): asks `ROLE` instead, and a master demoted to replica breaks the link.
async fn heartbeat(
    shared: Weak<Shared>,
    mut conn: MultiplexedConnection,
    gen: u64,
    role: bool,
    server: Arc<Target>,
) {
    let every = Duration::from_millis(HEARTBEAT_INTERVAL_MS.into());
    let ping = redis::cmd(if role { "ROLE" } else { "PING" });
    for beat in (0..super::latency::PROBE_EVERY_BEATS).cycle() {
        sleep(every).await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        if !shared.is_current(gen) {
            return;
        }
        if shared.gate.tracking() && shared.local.is_some() && shared.probe.due(beat) {
            tokio::spawn(probe(Arc::downgrade(&shared), conn.clone(), server.clone()));
        }
        let sent = Instant::now();
        match timeout(shared.timeout, conn.send_packed_command(&ping)).await {
            Ok(Ok(v)) if role && !sentinel::is_master(&v) => {
                shared.broken(
                    gen,
                    &Failure::new(Code::Unavailable, "the master reports itself a replica"),
                );
                return;
            }
            Ok(Ok(_)) => shared.gate.prove(sent),
            // An error reply (a busy script, say) is still the server answering in order.
            Ok(Err(e)) if e.code().is_some() => shared.gate.prove(sent),
            Ok(Err(e)) => {
                shared.broken(gen, &e.into());
                return;
            }
            Err(_) => {
                shared.broken(
                    gen,
                    &Failure::new(
                        Code::Timeout,
                        format!(
                            "no answer to a heartbeat within {} ms",
                            shared.timeout.as_millis()
                        ),
                    ),
                );
                return;
            }
        }
    }
}

/// One invalidation latency probe (`latency.rs`): tracked through `tracked`,
/// written on the probe's own connection, opened here when there is none.
async fn probe(shared: Weak<Shared>, tracked: MultiplexedConnection, target: Arc<Target>) {
    let Some(s) = shared.upgrade() else {
        return;
    };
    let (probe, limit) = (s.probe.clone(), s.timeout);
    let mut link = s.link.subscribe();
    let Some(_running) = probe.start() else {
        return;
    };
    let mut writer = match probe.writer() {
        Some(w) => w,
        None => {
            let Ok(client) = redis::Client::open(target.info.clone()) else {
                return;
            };
            let config = config(&s, &target);
            let opening = client.get_multiplexed_async_connection_with_config(&config);
            match timeout(limit, opening).await {
                Ok(Ok(w)) => {
                    probe.set_writer(Some(w.clone()));
                    w
                }
                _ => return,
            }
        }
    };
    drop(s);
    let give_up = async move {
        let _ = link.changed().await;
    };
    match probe.send(tracked, &mut writer, limit, give_up).await {
        Ok(None) => {}
        Ok(Some(why)) => {
            if let Some(s) = shared.upgrade() {
                let why = format!(
                    "invalidation latency not measured: the server refused the probe ({why})"
                );
                s.logs.push("info", Code::Server, why);
            }
        }
        Err(_) => probe.set_writer(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        for _ in 0..100 {
            let first = backoff(0);
            assert!(first >= Duration::from_millis(25) && first <= Duration::from_millis(50));
            let late = backoff(10);
            assert!(late >= Duration::from_millis(500) && late <= Duration::from_millis(1000));
        }
        let delays: std::collections::HashSet<Duration> = (0..50).map(|_| backoff(10)).collect();
        assert!(delays.len() > 5, "reconnect delays must differ: {delays:?}");
    }
}
