//! Sentinel: the master's address comes from the sentinels, asked on every
//! (re)connect of the one supervised link (`link.rs`), and a watcher follows
//! `+switch-master` so a failover moves the link at once.
//!
//! The sentinels are asked with plain commands over redis-rs connections
//! instead of redis-rs' `sentinel` module: that module bounds no call to a
//! sentinel (a silent one stalls the lookup), opens an extra connection per
//! lookup to check the role, and does not follow `+switch-master`.
//!
//! - Lookup: `SENTINEL get-master-addr-by-name <name>`, one sentinel after
//!   another (the one that answered last first), each bounded by the command
//!   timeout. After a `+switch-master`, a sentinel still naming the old master
//!   is passed over while another names the announced one.
//! - Confirmation: after connecting, `ROLE` must say `master`; the heartbeat
//!   keeps asking `ROLE` (`is_master`), and a `READONLY` reply breaks the link
//!   (`error.rs`), so a demoted master sends the supervisor back here.
//! - Watcher: a RESP3 connection to one sentinel subscribed to
//!   `+switch-master` (pinged every second, moved to the next sentinel when it
//!   fails). A switch of our master breaks the current link; the broken-link
//!   path empties L1 and the supervisor reconnects to the new master.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{
    AsyncConnectionConfig, ConnectionAddr, ConnectionInfo, IntoConnectionInfo, PushInfo, PushKind,
    RedisConnectionInfo, Value,
};
use tokio::sync::mpsc;
use tokio::time::{sleep, timeout};

use super::{Link, Shared};
use crate::error::{Code, ConnectFailure, Failure};
use crate::options::{SentinelTarget, Target};

/// How often the watcher pings its sentinel, and the pause before it tries the next one.
const WATCH_PING: Duration = Duration::from_secs(1);

type Addr = (String, u16);

/// The master to connect to, as the sentinels named it.
pub struct Located {
    pub info: ConnectionInfo,
    pub dial: Option<Addr>,
    addr: Addr,
}

#[derive(Default)]
struct State {
    /// The master the last `+switch-master` for our name announced.
    announced: Option<Addr>,
    /// The latest confirmed link and its master.
    linked: Option<(u64, Addr)>,
    /// The sentinel that answered last: asked first next time.
    first: usize,
}

pub struct Sentinels {
    cfg: SentinelTarget,
    state: Mutex<State>,
}

impl Sentinels {
    /// The sentinels of `cfg`, with the watcher started.
    pub fn start(shared: &Arc<Shared>, cfg: SentinelTarget) -> Arc<Self> {
        let me = Arc::new(Sentinels {
            cfg,
            state: Mutex::default(),
        });
        let (task_shared, task_me) = (shared.clone(), me.clone());
        super::spawn_restarting(shared.clone(), "Sentinel watcher", move || {
            watch(task_shared.clone(), task_me.clone())
        });
        me
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Asks the sentinels, in turn, for the master and returns how to reach it
    /// with `base`'s credentials, db and TLS.
    pub async fn locate(&self, shared: &Shared, base: &Target) -> Result<Located, ConnectFailure> {
        let n = self.cfg.sentinels.len();
        let (start, wanted) = {
            let st = self.state();
            (st.first, st.announced.clone())
        };
        let mut named: Option<(usize, Addr)> = None;
        let mut why = None;
        for i in 0..n {
            let at = (start + i) % n;
            let sentinel = &self.cfg.sentinels[at];
            match timeout(shared.timeout, self.ask(sentinel, shared.timeout)).await {
                Ok(Ok(Some(addr))) => {
                    if wanted.as_ref().is_none_or(|w| *w == addr) {
                        named = Some((at, addr));
                        break;
                    }
                    named.get_or_insert((at, addr));
                }
                Ok(Ok(None)) => {
                    why = Some(format!(
                        "sentinel {}:{} knows no master named {:?}",
                        sentinel.0, sentinel.1, self.cfg.name
                    ))
                }
                Ok(Err(e)) => why = Some(format!("sentinel {}:{}: {e}", sentinel.0, sentinel.1)),
                Err(_) => {
                    why = Some(format!(
                        "sentinel {}:{} did not answer within {} ms",
                        sentinel.0,
                        sentinel.1,
                        shared.timeout.as_millis()
                    ))
                }
            }
        }
        let Some((at, addr)) = named else {
            return Err(ConnectFailure::Transient(Failure::new(
                Code::Unavailable,
                format!(
                    "no sentinel named the master of {:?} ({})",
                    self.cfg.name,
                    why.unwrap_or_default()
                ),
            )));
        };
        {
            let mut st = self.state();
            st.first = at;
            if st.announced.as_ref().is_some_and(|w| *w != addr) {
                // No sentinel names what the watcher heard last: that was older news.
                st.announced = None;
            }
        }
        let (info, dial) = master_info(base, &addr).map_err(ConnectFailure::Transient)?;
        Ok(Located { info, dial, addr })
    }

    /// `SENTINEL get-master-addr-by-name` on one sentinel; `None`: it knows no such master.
    async fn ask(&self, sentinel: &Addr, bound: Duration) -> redis::RedisResult<Option<Addr>> {
        let client = redis::Client::open(self.sentinel_info(sentinel)?)?;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(bound))
            .set_response_timeout(Some(bound));
        let mut conn = client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        redis::cmd("SENTINEL")
            .arg("get-master-addr-by-name")
            .arg(&self.cfg.name)
            .query_async(&mut conn)
            .await
    }

    fn sentinel_info(&self, (host, port): &Addr) -> redis::RedisResult<ConnectionInfo> {
        let mut redis = RedisConnectionInfo::default();
        if let Some(password) = &self.cfg.password {
            redis = redis.set_password(password);
        }
        Ok(ConnectionAddr::Tcp(host.clone(), *port)
            .into_connection_info()?
            .set_redis_settings(redis))
    }

    /// Checks that the node connected as link `gen` is a master, and records it
    /// as that link's master.
    pub async fn confirm(
        &self,
        shared: &Shared,
        conn: &mut MultiplexedConnection,
        gen: u64,
        located: &Located,
    ) -> Result<(), ConnectFailure> {
        let transient = ConnectFailure::Transient;
        let role = match timeout(
            shared.timeout,
            redis::cmd("ROLE").query_async::<Value>(conn),
        )
        .await
        {
            Err(_) => return Err(transient(Failure::timeout())),
            Ok(Err(e)) => return Err(transient(e.into())),
            Ok(Ok(v)) => v,
        };
        if !is_master(&role) {
            return Err(transient(Failure::new(
                Code::Unavailable,
                format!(
                    "{}:{}, named master of {:?} by the sentinels, is not a master (ROLE {:?})",
                    located.addr.0,
                    located.addr.1,
                    self.cfg.name,
                    role_name(&role)
                ),
            )));
        }
        self.state().linked = Some((gen, located.addr.clone()));
        shared.confirmed_master(gen, &located.addr);
        Ok(())
    }

    /// A `+switch-master` message: `<name> <old ip> <old port> <new ip> <new port>`.
    fn switch_of(&self, push: &PushInfo) -> Option<Addr> {
        let [channel, payload] = push.data.as_slice() else {
            return None;
        };
        if text(channel)? != "+switch-master" {
            return None;
        }
        let payload = text(payload)?;
        let parts: Vec<&str> = payload.split_whitespace().collect();
        match parts.as_slice() {
            [name, _, _, host, port] if *name == self.cfg.name => {
                Some((host.to_string(), port.parse().ok()?))
            }
            _ => None,
        }
    }

    /// Breaks the current link when its master is not the one last announced.
    fn check(&self, shared: &Shared) {
        let gen = match &*shared.link.borrow() {
            Link::Up { gen, .. } => *gen,
            _ => return,
        };
        let stale = {
            let st = self.state();
            match (&st.announced, &st.linked) {
                (Some(want), Some((g, addr))) if *g == gen && addr != want => Some(want.clone()),
                _ => None,
            }
        };
        if let Some((host, port)) = stale {
            shared.broken(
                gen,
                &Failure::new(
                    Code::Unavailable,
                    format!(
                        "Sentinel switched the master of {:?} to {host}:{port}",
                        self.cfg.name
                    ),
                ),
            );
        }
    }

    /// Subscribes to `+switch-master` on one sentinel (RESP3 pushes).
    async fn subscribe(
        &self,
        sentinel: &Addr,
        bound: Duration,
    ) -> redis::RedisResult<(MultiplexedConnection, mpsc::UnboundedReceiver<PushInfo>)> {
        let info = self.sentinel_info(sentinel)?;
        let redis = info
            .redis_settings()
            .clone()
            .set_protocol(redis::ProtocolVersion::RESP3);
        let client = redis::Client::open(info.set_redis_settings(redis))?;
        let (tx, rx) = mpsc::unbounded_channel();
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(bound))
            .set_response_timeout(Some(bound))
            .set_push_sender(tx);
        let mut conn = client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        conn.subscribe("+switch-master").await?;
        Ok((conn, rx))
    }
}

/// Keeps a subscription to `+switch-master` on one of the sentinels, until the cache closes.
async fn watch(shared: Arc<Shared>, me: Arc<Sentinels>) {
    let n = me.cfg.sentinels.len();
    let mut next = 0;
    while !shared.is_closed() {
        let sentinel = me.cfg.sentinels[next % n].clone();
        next += 1;
        let bound = shared.timeout;
        if let Ok(Ok((conn, rx))) = timeout(bound, me.subscribe(&sentinel, bound)).await {
            listen(&shared, &me, conn, rx).await;
        }
        if shared.is_closed() {
            return;
        }
        sleep(WATCH_PING).await;
    }
}

/// Applies `+switch-master` messages and checks every new link, until the
/// sentinel connection fails or the cache closes.
async fn listen(
    shared: &Shared,
    me: &Sentinels,
    mut conn: MultiplexedConnection,
    mut rx: mpsc::UnboundedReceiver<PushInfo>,
) {
    let mut links = shared.link.subscribe();
    me.check(shared);
    let mut tick = tokio::time::interval(WATCH_PING);
    loop {
        tokio::select! {
            push = rx.recv() => {
                let Some(push) = push else { return };
                match push.kind {
                    PushKind::Message => {
                        if let Some(to) = me.switch_of(&push) {
                            shared.logs.push(
                                "warn",
                                Code::Unavailable,
                                format!("Sentinel: the master of {:?} is now {}:{}", me.cfg.name, to.0, to.1),
                            );
                            me.state().announced = Some(to);
                            me.check(shared);
                            // A supervisor waiting out its backoff asks the sentinels now.
                            shared.wake.notify_one();
                        }
                    }
                    PushKind::Disconnection => return,
                    _ => {}
                }
            }
            changed = links.changed() => {
                if changed.is_err() || shared.is_closed() {
                    return;
                }
                me.check(shared);
            }
            _ = tick.tick() => {
                if shared.is_closed() {
                    return;
                }
                let ping = redis::cmd("PING");
                if !matches!(timeout(shared.timeout, conn.send_packed_command(&ping)).await, Ok(Ok(_))) {
                    return;
                }
            }
        }
    }
}

/// `base`'s address moved to `master`: TLS settings, credentials and db kept; with a
/// `tls.servername` the certificate is checked against that name while `master` is dialled.
fn master_info(base: &Target, master: &Addr) -> Result<(ConnectionInfo, Option<Addr>), Failure> {
    let mut addr = base.info.addr().clone();
    let dial = match &mut addr {
        ConnectionAddr::Tcp(host, port) => {
            *host = master.0.clone();
            *port = master.1;
            None
        }
        ConnectionAddr::TcpTls { host, port, .. } => {
            *port = master.1;
            if base.dial.is_some() {
                Some(master.clone())
            } else {
                *host = master.0.clone();
                None
            }
        }
        other => {
            return Err(Failure::new(
                Code::Unavailable,
                format!("unsupported address {other}"),
            ))
        }
    };
    let info = addr
        .into_connection_info()
        .map_err(|e| Failure::new(Code::Unavailable, e.to_string()))?
        .set_redis_settings(base.info.redis_settings().clone());
    Ok((info, dial))
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

fn role_name(v: &Value) -> Option<String> {
    match v {
        Value::Array(items) => items.first().and_then(text),
        _ => None,
    }
}

/// Whether a `ROLE` reply says `master`.
pub fn is_master(v: &Value) -> bool {
    role_name(v).as_deref() == Some("master")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sentinels() -> Sentinels {
        Sentinels {
            cfg: SentinelTarget {
                sentinels: vec![("s".into(), 26379)],
                name: "mymaster".into(),
                password: None,
            },
            state: Mutex::default(),
        }
    }

    fn message(channel: &str, payload: &str) -> PushInfo {
        PushInfo {
            kind: PushKind::Message,
            data: vec![
                Value::BulkString(channel.into()),
                Value::BulkString(payload.into()),
            ],
        }
    }

    #[test]
    fn switches_of_our_master_only() {
        let s = sentinels();
        let to = s.switch_of(&message(
            "+switch-master",
            "mymaster 127.0.0.1 7001 127.0.0.1 7002",
        ));
        assert_eq!(to, Some(("127.0.0.1".to_string(), 7002)));
        assert_eq!(
            s.switch_of(&message("+switch-master", "other 1.1.1.1 1 2.2.2.2 2")),
            None
        );
        assert_eq!(
            s.switch_of(&message("+sdown", "mymaster 127.0.0.1 7001 127.0.0.1 7002")),
            None
        );
        assert_eq!(s.switch_of(&message("+switch-master", "mymaster x")), None);
    }

    #[test]
    fn role_replies() {
        let master = Value::Array(vec![
            Value::BulkString(b"master".to_vec()),
            Value::Int(10),
            Value::Array(vec![]),
        ]);
        let replica = Value::Array(vec![
            Value::BulkString(b"slave".to_vec()),
            Value::BulkString(b"127.0.0.1".to_vec()),
        ]);
        assert!(is_master(&master));
        assert!(!is_master(&replica));
        assert!(!is_master(&Value::Nil));
    }

    #[test]
    fn the_master_keeps_the_base_settings() {
        let base = Target {
            info: "redis://:pw@localhost:6379/4"
                .into_connection_info()
                .unwrap(),
            dial: None,
            sentinel: None,
            cluster: None,
        };
        let (info, dial) = master_info(&base, &("10.0.0.9".into(), 7000)).unwrap();
        assert_eq!(info.addr().to_string(), "10.0.0.9:7000");
        assert_eq!(info.redis_settings().db(), 4);
        assert_eq!(info.redis_settings().password(), Some("pw"));
        assert_eq!(dial, None);
        let tls = Target {
            info: "rediss://redis.test:6380".into_connection_info().unwrap(),
            dial: Some(("127.0.0.1".into(), 6380)),
            sentinel: None,
            cluster: None,
        };
        let (info, dial) = master_info(&tls, &("10.0.0.9".into(), 7000)).unwrap();
        assert!(
            matches!(info.addr(), ConnectionAddr::TcpTls { host, port: 7000, .. } if host == "redis.test")
        );
        assert_eq!(dial, Some(("10.0.0.9".to_string(), 7000)));
    }
}
