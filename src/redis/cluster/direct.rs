//! Per-key calls on a cluster without redis-rs' cluster layer: a slot map of
//! our own (`CLUSTER SLOTS`) and one tracked connection per primary, so a
//! batch goes out as one pipeline per node, the way a single server's does.
//!
//! Why: through `route_pipeline` every slot pipeline (with random keys, every
//! op) costs a request to redis-rs' routing task, two timers and a hop to the
//! node connection's task; that was most of the client's CPU per call.
//!
//! Anything unusual goes back to redis-rs (`run.rs`), which follows
//! redirects and reconnects: a reply that is a redirect or a cluster-state
//! error, or a node connection that fails. The map is then dropped and
//! rebuilt in the background; until it is, calls go through redis-rs.
//!
//! A node that does not answer in time is different: whatever is sent to it
//! runs when it reads again, after its callers were answered. So its
//! connection is cut (plain TCP connections are `severable.rs`' own, as a
//! single server's) and its slots fail at once, sent nowhere, until a new
//! map reaches the node again (or names another primary for them).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use futures_util::future::join_all;
use redis::aio::MultiplexedConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::{
    AsyncConnectionConfig, ConnectionAddr, ConnectionInfo, ProtocolVersion, PushInfo,
    TlsCertificates, Value,
};
use tokio::time::timeout;

use super::nodes::{a_node_refused_tracking, on_push, refused_tracking, Routed};
use super::slots::{parse_slots, SLOTS};
use crate::error::{Code, Failure};
use crate::redis::severable::{self, Cut};
use crate::redis::tracking;
use crate::redis::Shared;

/// The slot map: per slot the index of its primary in `nodes`, or `NONE`.
pub struct Routes {
    owner: Vec<u16>,
    pub nodes: Vec<Node>,
}

/// A primary's address and our connection to it.
pub struct Node {
    pub addr: (String, u16),
    /// `None`: it did not answer when the map was built.
    conn: Option<MultiplexedConnection>,
    /// Whether reads from it may fill L1: it tracks keys for us (it may
    /// refuse `CLIENT TRACKING`, and then runs without L1).
    pub tracks: bool,
    /// Its connection timed out (and was cut): nothing more is sent to it
    /// until a new map has a new connection to it, as nothing is sent to a
    /// single server between a timed-out round and a new connection.
    down: AtomicBool,
}

impl Node {
    /// Whether its connection was cut for not answering in time: a failure
    /// of a request on it is that cut, not the node closing it.
    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::Acquire)
    }

    /// The connection to send on, unless the node is down.
    pub fn conn(&self) -> Option<MultiplexedConnection> {
        self.conn
            .clone()
            .filter(|_| !self.down.load(Ordering::Acquire))
    }
}

const NONE: u16 = u16::MAX;

impl Routes {
    /// The node index of `slot`'s primary, if known.
    pub fn node(&self, slot: u16) -> Option<usize> {
        match self.owner[usize::from(slot)] {
            NONE => None,
            n => Some(usize::from(n)),
        }
    }
}

/// A node connection and, on plain TCP, how to cut it (`severable.rs`).
struct Opened {
    conn: MultiplexedConnection,
    cut: Option<Cut>,
    tracks: bool,
}

/// Direct node connections of one cluster connection (generation `gen`).
pub struct Direct {
    routes: RwLock<Option<Arc<Routes>>>,
    /// Connections by `host:port`, kept across map rebuilds.
    conns: Mutex<HashMap<(String, u16), Opened>>,
    refreshing: AtomicBool,
    failed_builds: AtomicU32,
    /// A seed's connection settings (auth, TLS), the address replaced per node.
    template: ConnectionInfo,
    certs: Option<TlsCertificates>,
    shared: Weak<Shared>,
    gen: u64,
    /// With L1: the connections track in `OPTIN` mode, so only reads that
    /// fill L1 (after `CLIENT CACHING yes`) take a tracking-table entry.
    /// Without L1 they do not track.
    pub optin: bool,
}

impl Direct {
    pub fn new(
        shared: &Arc<Shared>,
        template: ConnectionInfo,
        certs: Option<TlsCertificates>,
        gen: u64,
    ) -> Arc<Self> {
        Arc::new(Direct {
            routes: RwLock::new(None),
            conns: Mutex::new(HashMap::new()),
            refreshing: AtomicBool::new(false),
            failed_builds: AtomicU32::new(0),
            template,
            certs,
            shared: Arc::downgrade(shared),
            gen,
            optin: shared.local.is_some(),
        })
    }

    fn conns(&self) -> std::sync::MutexGuard<'_, HashMap<(String, u16), Opened>> {
        self.conns.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The current slot map, if one is built.
    pub fn routes(&self) -> Option<Arc<Routes>> {
        self.routes.read().ok().and_then(|r| r.clone())
    }

    /// The map turned out wrong (or a node connection failed): calls go
    /// through redis-rs until a new one is built.
    pub fn forget(&self, failed: Option<&(String, u16)>) {
        if let Ok(mut r) = self.routes.write() {
            *r = None;
        }
        if let Some(addr) = failed {
            // A failed connection is not reused; a new one is opened.
            self.conns().remove(addr);
        }
    }

    /// Node `n` of `routes` did not answer a round in time: its connection
    /// is cut (what it has not written is never written) and its slots fail
    /// at once until a new map reaches it again.
    pub fn down(&self, routes: &Routes, n: usize) {
        let node = &routes.nodes[n];
        node.down.store(true, Ordering::Release);
        self.conns().remove(&node.addr);
    }

    /// Cuts node `n`'s connection if its socket is refusing bytes (see
    /// [`Cut::stuck`]): then it is down.
    pub fn down_if_stuck(&self, routes: &Routes, n: usize) -> bool {
        let node = &routes.nodes[n];
        let mut conns = self.conns();
        let stuck = conns
            .get(&node.addr)
            .and_then(|o| o.cut.as_ref())
            .is_some_and(Cut::stuck);
        if stuck {
            node.down.store(true, Ordering::Release);
            conns.remove(&node.addr);
        }
        stuck
    }

    /// `PING` on every primary of the map, each over its own connection and
    /// within the timeout: their addresses when every slot has a primary and
    /// every one answered. A primary that does not answer in time is down,
    /// as after any round; one whose connection failed is dropped from the
    /// map. `None`: there is no map (yet).
    pub async fn ping_all(&self, shared: &Shared) -> Option<Result<Vec<String>, Failure>> {
        let routes = self.routes()?;
        let pings = routes.nodes.iter().enumerate().map(|(n, node)| {
            let routes = &routes;
            async move {
                let (host, port) = &node.addr;
                let quiet = |what: &str| {
                    let why = format!("cluster node {host}:{port} {what}");
                    Err(Failure::new(Code::Unavailable, why))
                };
                let Some(mut conn) = node.conn() else {
                    return quiet("is not answering");
                };
                let ping = redis::cmd("PING");
                match timeout(shared.timeout, conn.send_packed_command(&ping)).await {
                    Ok(Ok(Value::ServerError(e))) => Err(Failure::reply(&e)),
                    Ok(Ok(_)) => Ok(format!("{host}:{port}")),
                    Ok(Err(e)) if e.code().is_some() => Err(e.into()),
                    Ok(Err(_)) if node.is_down() => quiet("is not answering"),
                    Ok(Err(_)) => {
                        self.forget(Some(&node.addr));
                        quiet("closed its connection")
                    }
                    Err(_) => {
                        self.down(routes, n);
                        quiet("did not answer a PING in time")
                    }
                }
            }
        });
        let answers = join_all(pings).await;
        if routes.owner.contains(&NONE) {
            let why = "some hash slots have no primary with a usable address";
            return Some(Err(Failure::new(Code::Unavailable, why)));
        }
        Some(answers.into_iter().collect())
    }

    /// Builds the map in the background unless a build is under way.
    pub fn refresh(self: &Arc<Self>, routed: Routed) {
        if self.refreshing.swap(true, Ordering::SeqCst) {
            return;
        }
        let me = self.clone();
        tokio::spawn(async move {
            // Spaced, and further after each failed build, so a cluster in
            // transition is not asked on every batch.
            let failed = me.failed_builds.load(Ordering::SeqCst).min(6);
            tokio::time::sleep(Duration::from_millis(20 << failed)).await;
            me.refresh_now(routed).await;
            me.refreshing.store(false, Ordering::SeqCst);
        });
    }

    /// Builds the map now; on failure the last one stays. A map with a node
    /// that did not answer counts as a failed build (the next is spaced
    /// further) but replaces the last one: that node's slots fail at once.
    pub async fn refresh_now(&self, routed: Routed) {
        match self.build(routed).await {
            Some(routes) => {
                let complete = routes.nodes.iter().all(|n| n.conn.is_some());
                if complete {
                    self.failed_builds.store(0, Ordering::SeqCst);
                } else {
                    self.failed_builds.fetch_add(1, Ordering::SeqCst);
                }
                if let Ok(mut r) = self.routes.write() {
                    *r = Some(Arc::new(routes));
                }
            }
            None => {
                self.failed_builds.fetch_add(1, Ordering::SeqCst);
            }
        }
    }

    async fn build(&self, mut routed: Routed) -> Option<Routes> {
        let shared = self.shared.upgrade()?;
        let mut cmd = redis::cmd("CLUSTER");
        cmd.arg("SLOTS");
        let at = RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random);
        let reply = timeout(shared.timeout, routed.route_command(cmd, at))
            .await
            .ok()?
            .ok()?;
        let ranges = parse_slots(reply);
        if ranges.is_empty() {
            return None;
        }
        let mut owner = vec![NONE; SLOTS];
        let mut addrs: Vec<(String, u16)> = Vec::new();
        for (start, end, addr) in ranges {
            let n = match addrs.iter().position(|a| *a == addr) {
                Some(n) => n,
                None => {
                    addrs.push(addr);
                    addrs.len() - 1
                }
            };
            let last = usize::from(end).min(SLOTS - 1);
            if let Some(range) = owner.get_mut(usize::from(start)..=last) {
                range.fill(n as u16);
            }
        }
        // Every primary at once: one that does not answer costs the timeout once.
        let conns = join_all(addrs.iter().map(|a| self.connection(&shared, a))).await;
        let nodes = addrs
            .into_iter()
            .zip(conns)
            .map(|(addr, opened)| Node {
                addr,
                tracks: opened.as_ref().is_some_and(|(_, tracks)| *tracks),
                conn: opened.map(|(conn, _)| conn),
                down: AtomicBool::new(false),
            })
            .collect();
        Some(Routes { owner, nodes })
    }

    /// The connection to `addr`, opened (and tracking) if there is none, and
    /// whether it tracks (a node refusing `CLIENT TRACKING` runs without L1,
    /// said once through the logger).
    async fn connection(
        &self,
        shared: &Arc<Shared>,
        addr: &(String, u16),
    ) -> Option<(MultiplexedConnection, bool)> {
        if let Some(o) = self.conns().get(addr) {
            return Some((o.conn.clone(), o.tracks));
        }
        let (host, port) = addr.clone();
        let address = match self.template.addr() {
            ConnectionAddr::TcpTls {
                insecure,
                tls_params,
                ..
            } => ConnectionAddr::TcpTls {
                host,
                port,
                insecure: *insecure,
                tls_params: tls_params.clone(),
            },
            _ => ConnectionAddr::Tcp(host, port),
        };
        let settings = self
            .template
            .redis_settings()
            .clone()
            .set_protocol(ProtocolVersion::RESP3);
        let info = self
            .template
            .clone()
            .set_addr(address)
            .set_redis_settings(settings);
        let weak = self.shared.clone();
        let gen = self.gen;
        let optin = self.optin;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(shared.timeout))
            .set_response_timeout(None)
            .set_push_sender(move |push: PushInfo| {
                if let Some(shared) = weak.upgrade() {
                    on_push(&shared, gen, push);
                }
                Ok::<(), ()>(())
            });
        let opening = async {
            // Plain TCP: our own driver, so a connection given up writes
            // nothing more (`severable.rs`); TLS: redis-rs'.
            let (mut conn, cut) = match info.addr() {
                ConnectionAddr::Tcp(host, port) => {
                    let (conn, cut) =
                        severable::open(host, *port, info.redis_settings(), config, false)
                            .await
                            .ok()?;
                    (conn, Some(cut))
                }
                _ => {
                    let client = match &self.certs {
                        Some(certs) => {
                            redis::Client::build_with_tls(info.clone(), certs.clone()).ok()?
                        }
                        None => redis::Client::open(info.clone()).ok()?,
                    };
                    let conn = client
                        .get_multiplexed_async_connection_with_config(&config)
                        .await
                        .ok()?;
                    (conn, None)
                }
            };
            let refused = if optin {
                tracking::track(&mut conn, true).await.ok()?
            } else {
                None
            };
            Some((
                Opened {
                    conn,
                    cut,
                    tracks: optin && refused.is_none(),
                },
                refused,
            ))
        };
        let (opened, refused) = timeout(shared.timeout, opening).await.ok()??;
        if let Some(why) = refused {
            refused_tracking();
            let (host, port) = addr;
            shared.say_once(
                format!("untracked {host}:{port}"),
                Code::Server,
                format!("Redis Cluster node {host}:{port} cannot track keys for this client ({why}); its keys are not kept in the local tier"),
            );
        }
        let got = (opened.conn.clone(), opened.tracks);
        self.conns().insert(addr.clone(), opened);
        Some(got)
    }
}

/// Whether a read of a key in `slot` may fill L1: its primary tracks keys for us.
pub fn tracks(routes: Option<&Routes>, slot: u16) -> bool {
    match routes.and_then(|r| Some(&r.nodes[r.node(slot)?])) {
        Some(node) => node.tracks,
        None => !a_node_refused_tracking(),
    }
}
