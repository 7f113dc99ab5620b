//! Constructor options, already type-checked by the JavaScript layer; this
//! module turns them into a Redis address and the tiers' settings.

use std::time::Duration;

use napi_derive::napi;
use redis::{
    ConnectionAddr, ConnectionInfo, IntoConnectionInfo, ProtocolVersion, RedisConnectionInfo,
};

/// Seconds a value is kept when a call's ttl is falsy.
#[napi]
#[cfg_attr(test, allow(dead_code))] // read by JavaScript
pub const DEFAULT_TTL_SECONDS: u32 = 300;
/// L1's bound on real memory, in bytes.
#[napi]
#[cfg_attr(test, allow(dead_code))] // read by JavaScript
pub const DEFAULT_LOCAL_MAX_BYTES: u32 = 64 * 1024 * 1024;
/// Longest an L1 entry is served, in seconds.
#[napi]
#[cfg_attr(test, allow(dead_code))] // read by JavaScript
pub const DEFAULT_LOCAL_MAX_TTL_SECONDS: u32 = 60;
/// Bound on one Redis command, in milliseconds.
#[napi]
#[cfg_attr(test, allow(dead_code))] // read by JavaScript
pub const DEFAULT_COMMAND_TIMEOUT_MS: u32 = 1000;
/// `getOrSet(…, { lock: 'distributed' })`: how long a lease lasts unless its
/// holder renews it (every third of it while the factory runs), in milliseconds.
/// A holder that dies blocks the key for at most this long.
#[napi]
#[cfg_attr(test, allow(dead_code))] // read by JavaScript
pub const DEFAULT_LOCK_LEASE_MS: u32 = 3000;
/// Most tags one key may carry (`set(…, { tags })`, getOrSet's `tags`).
#[napi]
#[cfg_attr(test, allow(dead_code))] // read by JavaScript
pub const MAX_TAGS_PER_KEY: u32 = 64;
/// How often an idle connection is asked to prove it is alive, in milliseconds.
pub const HEARTBEAT_INTERVAL_MS: u32 = 250;
/// How long after the last proof of the link L1 keeps serving, in milliseconds:
/// the bound on staleness during a silent partition.
#[napi]
pub const LIVENESS_LEASE_MS: u32 = 1500;

/// `url` with its userinfo (user and password) replaced by `:***`, for
/// messages: taken up to the last `@`, as a raw password may hold `/`, `?`,
/// `#` or `@` itself.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://:***@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

/// `text` with every URL's userinfo and every occurrence of `secrets`
/// (passwords the instance was given) replaced, for any message that may
/// leave the process: errors, log lines.
#[napi]
pub fn redact(text: String, secrets: Vec<String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    // Each `scheme://…@` up to the next whitespace or quote is a URL with userinfo.
    while let Some(i) = rest.find("://") {
        let end = rest[i..]
            .find(|c: char| c.is_whitespace() || c == '"' || c == '\'' || c == '`')
            .map_or(rest.len(), |e| i + e);
        let start = rest[..i]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '+' || c == '-' || c == '.'))
            .map_or(0, |s| s + 1);
        out.push_str(&rest[..start]);
        out.push_str(&redact_url(&rest[start..end]));
        rest = &rest[end..];
    }
    out.push_str(rest);
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        out = out.replace(secret.as_str(), "***");
    }
    out
}

/// What a URL error adds: how to fix the most common cause.
const PERCENT_ENCODE: &str = "if the password holds characters such as / + @ : ? # or %, \
    percent-encode it (encodeURIComponent)";

/// TLS settings, with Node's `tls.connect` names; PEM text (`index.js`
/// turns Buffers and arrays into text).
#[napi(object)]
pub struct TlsOptions {
    /// Trusted CA certificates (PEM); default: the Mozilla roots.
    pub ca: Option<String>,
    /// Client certificate chain (PEM), for servers that require client certificates.
    pub cert: Option<String>,
    /// Client private key (PEM).
    pub key: Option<String>,
    /// `false`: accept any server certificate. Default `true`.
    pub reject_unauthorized: Option<bool>,
    /// The name the server certificate must carry (and SNI), when it is not the host connected to.
    pub servername: Option<String>,
}

/// `sentinel: { sentinels, name, password }` as `index.js` hands it over.
#[napi(object)]
pub struct SentinelOptions {
    /// `host:port` of each sentinel (port 26379 when left out).
    pub sentinels: Vec<String>,
    /// The master group's name (`sentinel monitor <name> …`).
    pub name: String,
    /// The sentinels' own password (`requirepass` of the sentinels).
    pub password: Option<String>,
}

/// Options as `index.js` hands them over (environment fallbacks applied).
#[napi(object)]
pub struct NativeOptions {
    /// `'redis'` or `'memory'`.
    pub mode: String,
    /// `redis://` or `rediss://` URL; when set, host/port/credentials/db/tls are ignored.
    pub url: Option<String>,
    pub host: Option<String>,
    pub port: Option<u32>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub db: Option<u32>,
    /// Present: connect with TLS (also for a `redis://` URL).
    pub tls: Option<TlsOptions>,
    /// Present: find the master through these sentinels (host/port/url are not used).
    pub sentinel: Option<SentinelOptions>,
    /// Redis Cluster seed nodes (URLs or `host:port`); when set, url/host/port are ignored.
    pub cluster_nodes: Option<Vec<String>>,
    /// Bound on L1 keys plus JSON bytes; 0 disables L1 (in `'memory'` mode it bounds the store).
    pub local_max_bytes: f64,
    /// Longest an L1 entry is served without Redis confirming it, in ms.
    pub local_max_ttl_ms: f64,
    /// Bound on one Redis round trip, in ms.
    pub command_timeout_ms: f64,
}

pub enum Mode {
    Memory,
    Redis(Box<Target>),
}

/// Where and how to connect.
pub struct Target {
    pub info: ConnectionInfo,
    /// The address actually dialled when `servername` names the certificate instead.
    pub dial: Option<(String, u16)>,
    /// Present: `info` carries the master's credentials, db and TLS; its
    /// address is asked of these sentinels on every connect (`redis/sentinel.rs`).
    pub sentinel: Option<SentinelTarget>,
    /// Redis Cluster: its seed nodes (see [`cluster_target`]).
    pub cluster: Option<ClusterTarget>,
}

impl Target {
    /// Where the data is, as instances of one process must agree on to see
    /// each other's writes at once: the address (or the sentinels' master
    /// group, or the cluster's seed nodes) and the database.
    pub fn identity(&self) -> String {
        let db = self.info.redis_settings().db();
        let sorted = |mut v: Vec<String>| {
            v.sort();
            v.join(",")
        };
        if let Some(c) = &self.cluster {
            return format!(
                "cluster {}",
                sorted(c.nodes.iter().map(|n| n.addr().to_string()).collect())
            );
        }
        if let Some(s) = &self.sentinel {
            let sentinels = s.sentinels.iter().map(|(h, p)| format!("{h}:{p}"));
            return format!(
                "sentinel {} {} db {db}",
                s.name,
                sorted(sentinels.collect())
            );
        }
        match &self.dial {
            Some((host, port)) => format!("{host}:{port} db {db}"),
            None => format!("{} db {db}", self.info.addr()),
        }
    }
}

/// A Redis Cluster's seed nodes, with the TLS settings every node connection uses.
pub struct ClusterTarget {
    pub nodes: Vec<ConnectionInfo>,
    pub certs: Option<redis::TlsCertificates>,
}

/// The sentinels to ask for the master of `name`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SentinelTarget {
    pub sentinels: Vec<(String, u16)>,
    pub name: String,
    pub password: Option<String>,
}

/// A node's address as `cluster.nodes` and `sentinel.sentinels` take it.
#[derive(Debug, PartialEq, Eq)]
enum Address {
    /// A `redis://` or `rediss://` URL (checked by whoever reads it).
    Url(String),
    /// `host:port`, `[v6]:port`, or a bare host or `[v6]` (no port).
    Host(String, Option<u16>),
}

/// Reads one address; `None` when it is neither a URL nor a host with an
/// optional port (1 to 65535).
fn address(s: &str) -> Option<Address> {
    let s = s.trim();
    if s.contains("://") {
        return Some(Address::Url(s.to_string()));
    }
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        match after {
            "" => (host, None),
            p => (host, Some(p.strip_prefix(':')?)),
        }
    } else {
        match s.rsplit_once(':') {
            Some((h, _)) if h.contains(':') => return None,
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    if host.is_empty() || host.contains(char::is_whitespace) {
        return None;
    }
    let port = match port {
        None => None,
        Some(p) => Some(p.parse::<u16>().ok().filter(|p| *p > 0)?),
    };
    Some(Address::Host(host.to_string(), port))
}

/// A sentinel's address: `host:port`, `[v6]:port`, a bare host (port
/// 26379) or a `redis://host:port` URL, as a Cluster node's.
fn sentinel_addr(s: &str) -> Result<(String, u16), String> {
    const PORT: u16 = 26379;
    // A sentinel URL with credentials is refused below; its message must not carry them.
    let shown = redact_url(s);
    let bad =
        || format!("sentinel.sentinels: {shown:?} is not a 'host:port' address or redis:// URL");
    match address(s).ok_or_else(bad)? {
        Address::Host(host, port) => Ok((host, port.unwrap_or(PORT))),
        Address::Url(url) => {
            let parsed = redis::parse_redis_url(&url).ok_or_else(bad)?;
            if parsed.scheme() != "redis" {
                return Err(format!(
                    "sentinel.sentinels: {shown:?}: sentinels are reached without TLS (redis://)"
                ));
            }
            if !parsed.username().is_empty() || parsed.password().is_some() {
                return Err(format!(
                    "sentinel.sentinels: {shown:?} carries credentials; give the sentinels' password as sentinel.password"
                ));
            }
            if !matches!(parsed.path(), "" | "/") {
                return Err(format!(
                    "sentinel.sentinels: {shown:?} names a database; a sentinel has none"
                ));
            }
            let host = parsed
                .host_str()
                .filter(|h| !h.is_empty())
                .ok_or_else(bad)?
                .trim_matches(['[', ']'])
                .to_string();
            Ok((host, parsed.port().unwrap_or(PORT)))
        }
    }
}

fn sentinel_target(o: &SentinelOptions) -> Result<SentinelTarget, String> {
    if o.sentinels.is_empty() {
        return Err("sentinel.sentinels must list at least one 'host:port' address".into());
    }
    if o.name.trim().is_empty() {
        return Err("sentinel.name must name the master group (sentinel monitor <name>)".into());
    }
    Ok(SentinelTarget {
        sentinels: o
            .sentinels
            .iter()
            .map(|s| sentinel_addr(s))
            .collect::<Result<_, _>>()?,
        name: o.name.clone(),
        password: o.password.clone(),
    })
}

pub struct Settings {
    pub mode: Mode,
    pub local_max_bytes: u64,
    pub local_max_ttl: Duration,
    pub command_timeout: Duration,
}

fn ms(n: f64, name: &str) -> Result<Duration, String> {
    if n.is_finite() && n > 0.0 {
        Ok(Duration::from_secs_f64(n / 1000.0))
    } else {
        Err(format!(
            "{name} must be a positive number of milliseconds, got {n}"
        ))
    }
}

/// The Redis address and handshake settings, always asking for RESP3 (needed for tracking).
pub fn target(o: &NativeOptions) -> Result<Target, String> {
    let info = match &o.url {
        Some(url) => {
            let shown = redact_url(url);
            if redis::parse_redis_url(url).is_none() {
                return Err(format!(
                    "url is not a valid redis:// or rediss:// URL: {shown:?}; {PERCENT_ENCODE}"
                ));
            }
            url.as_str().into_connection_info().map_err(|e| {
                let why = redact(e.to_string(), vec![url.clone()]);
                format!("url {shown:?} is not usable: {why}; {PERCENT_ENCODE}")
            })?
        }
        None => {
            let host = o.host.clone().unwrap_or_else(|| "localhost".into());
            let port = u16::try_from(o.port.unwrap_or(6379))
                .map_err(|_| "port must be between 1 and 65535".to_string())?;
            let mut redis = RedisConnectionInfo::default().set_db(o.db.unwrap_or(0) as i64);
            if let Some(user) = &o.username {
                redis = redis.set_username(user);
            }
            if let Some(password) = &o.password {
                redis = redis.set_password(password);
            }
            ConnectionAddr::Tcp(host, port)
                .into_connection_info()
                .map_err(|e| e.to_string())?
                .set_redis_settings(redis)
        }
    };
    with_tls(resp3(info), o.tls.as_ref())
}

fn resp3(info: ConnectionInfo) -> ConnectionInfo {
    let redis = info
        .redis_settings()
        .clone()
        .set_protocol(ProtocolVersion::RESP3)
        .set_lib_name("medianest-native-cache", env!("CARGO_PKG_VERSION"));
    info.set_redis_settings(redis)
}

/// Redis Cluster seed nodes: URLs or `host:port`; the top-level username,
/// password and tls apply to every node; only database 0 exists in a cluster.
pub fn cluster_target(o: &NativeOptions, nodes: &[String]) -> Result<Target, String> {
    if nodes.is_empty() {
        return Err("cluster.nodes must list at least one node".into());
    }
    if o.db.unwrap_or(0) != 0 {
        return Err("db must be 0 with cluster: Redis Cluster has database 0 only".into());
    }
    let tls = o.tls.as_ref();
    if tls.is_some_and(|t| t.servername.is_some()) {
        return Err("tls.servername is not supported with cluster".into());
    }
    let mut infos = Vec::with_capacity(nodes.len());
    for node in nodes {
        let mut one = NativeOptions {
            mode: String::new(),
            url: None,
            host: None,
            port: None,
            username: o.username.clone(),
            password: o.password.clone(),
            db: None,
            tls: None,
            sentinel: None,
            cluster_nodes: None,
            local_max_bytes: 0.0,
            local_max_ttl_ms: 0.0,
            command_timeout_ms: 0.0,
        };
        match address(node) {
            Some(Address::Url(url)) => one.url = Some(url),
            Some(Address::Host(host, Some(port))) => {
                one.host = Some(host);
                one.port = Some(port.into());
            }
            _ => {
                let node = redact_url(node);
                return Err(format!(
                    "cluster.nodes: {node:?} is neither a redis:// URL nor host:port"
                ));
            }
        }
        let mut info = target(&one)
            .map_err(|e| format!("cluster.nodes: {e}"))?
            .info;
        if info.redis_settings().db() != 0 {
            let node = redact_url(node);
            return Err(format!(
                "cluster.nodes: {node:?} selects a database; Redis Cluster has database 0 only"
            ));
        }
        let mut redis = info.redis_settings().clone();
        if redis.username().is_none() {
            if let Some(user) = &o.username {
                redis = redis.set_username(user);
            }
        }
        if redis.password().is_none() {
            if let Some(password) = &o.password {
                redis = redis.set_password(password);
            }
        }
        info = info.set_redis_settings(redis);
        if let Some(tls) = tls {
            let (host, port) = match info.addr() {
                ConnectionAddr::Tcp(h, p)
                | ConnectionAddr::TcpTls {
                    host: h, port: p, ..
                } => (h.clone(), *p),
                other => return Err(format!("unsupported address {other}")),
            };
            let redis = info.redis_settings().clone();
            let addr = ConnectionAddr::TcpTls {
                host,
                port,
                insecure: tls.reject_unauthorized == Some(false),
                tls_params: None,
            };
            info = addr
                .into_connection_info()
                .map_err(|e| e.to_string())?
                .set_redis_settings(redis);
        }
        infos.push(info);
    }
    let certs = match tls {
        Some(tls) if tls.ca.is_some() || tls.cert.is_some() => Some(certificates(tls)?),
        _ => None,
    };
    Ok(Target {
        info: infos[0].clone(),
        dial: None,
        sentinel: None,
        cluster: Some(ClusterTarget {
            nodes: infos,
            certs,
        }),
    })
}

/// The CA and client certificate of `tls` as redis-rs takes them.
fn certificates(tls: &TlsOptions) -> Result<redis::TlsCertificates, String> {
    let pem = |b: &Option<String>| b.as_ref().map(|b| b.as_bytes().to_vec());
    let (cert, key) = (pem(&tls.cert), pem(&tls.key));
    if cert.is_some() != key.is_some() {
        return Err("tls.cert and tls.key must be given together".into());
    }
    Ok(redis::TlsCertificates {
        client_tls: cert
            .zip(key)
            .map(|(client_cert, client_key)| redis::ClientTlsConfig {
                client_cert,
                client_key,
            }),
        root_cert: pem(&tls.ca),
    })
}

/// Applies `tls` (certificates, verification, servername) to the address.
fn with_tls(info: ConnectionInfo, tls: Option<&TlsOptions>) -> Result<Target, String> {
    let (host, port) = match info.addr() {
        ConnectionAddr::Tcp(host, port) | ConnectionAddr::TcpTls { host, port, .. } => {
            (host.clone(), *port)
        }
        other => return Err(format!("unsupported address {other}")),
    };
    let Some(tls) = tls else {
        return Ok(Target {
            info,
            dial: None,
            sentinel: None,
            cluster: None,
        });
    };
    let insecure = tls.reject_unauthorized == Some(false);
    let servername = tls.servername.clone().filter(|s| !s.is_empty());
    let dial = servername
        .as_ref()
        .filter(|name| **name != host)
        .map(|_| (host.clone(), port));
    let addr = ConnectionAddr::TcpTls {
        host: servername.unwrap_or(host),
        port,
        insecure,
        tls_params: None,
    };
    let redis = info.redis_settings().clone();
    let info = addr
        .into_connection_info()
        .map_err(|e| e.to_string())?
        .set_redis_settings(redis);
    let certificates = certificates(tls)?;
    if certificates.client_tls.is_none() && certificates.root_cert.is_none() {
        return Ok(Target {
            info,
            dial,
            sentinel: None,
            cluster: None,
        });
    }
    let client = redis::Client::build_with_tls(info, certificates)
        .map_err(|e| format!("tls options are not usable: {e}"))?;
    Ok(Target {
        info: client.get_connection_info().clone(),
        dial,
        sentinel: None,
        cluster: None,
    })
}

pub fn settings(o: &NativeOptions) -> Result<Settings, String> {
    let mode = match o.mode.as_str() {
        "memory" => Mode::Memory,
        "redis" => {
            let mut target = match &o.cluster_nodes {
                Some(nodes) => cluster_target(o, nodes)?,
                None => target(o)?,
            };
            target.sentinel = o.sentinel.as_ref().map(sentinel_target).transpose()?;
            Mode::Redis(Box::new(target))
        }
        other => return Err(format!("mode must be 'redis' or 'memory', got {other:?}")),
    };
    if !(o.local_max_bytes.is_finite() && o.local_max_bytes >= 0.0) {
        return Err(format!(
            "local.maxBytes must be a non-negative number, got {}",
            o.local_max_bytes
        ));
    }
    Ok(Settings {
        mode,
        local_max_bytes: o.local_max_bytes as u64,
        local_max_ttl: ms(o.local_max_ttl_ms, "local.maxTtl")?,
        command_timeout: ms(o.command_timeout_ms, "commandTimeoutMs")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_hides_userinfo_and_passwords() {
        let raw = "redis://:/mDYU+x/y@cache:6379/2";
        assert_eq!(redact_url(raw), "redis://:***@cache:6379/2");
        assert_eq!(redact_url("redis://cache:6379"), "redis://cache:6379");
        let text = format!("bad url \"{raw}\" and rediss://u:p@h:1 (pw s3cret)");
        assert_eq!(
            redact(text, vec!["s3cret".into(), String::new()]),
            "bad url \"redis://:***@cache:6379/2\" and rediss://:***@h:1 (pw ***)"
        );
        let o = NativeOptions {
            mode: "redis".into(),
            url: Some(raw.into()),
            host: None,
            port: None,
            username: None,
            password: None,
            db: None,
            tls: None,
            sentinel: None,
            cluster_nodes: None,
            local_max_bytes: 0.0,
            local_max_ttl_ms: 1.0,
            command_timeout_ms: 1.0,
        };
        let e = target(&o).err().unwrap_or_default();
        assert!(!e.contains("mDYU") && e.contains("percent-encode"), "{e}");
    }

    fn opts(url: Option<&str>) -> NativeOptions {
        NativeOptions {
            mode: "redis".into(),
            url: url.map(String::from),
            host: Some("127.0.0.1".into()),
            port: Some(7000),
            username: None,
            password: Some("p@ss:word".into()),
            db: Some(3),
            tls: None,
            sentinel: None,
            cluster_nodes: None,
            local_max_bytes: 1024.0,
            local_max_ttl_ms: 60_000.0,
            command_timeout_ms: 1000.0,
        }
    }

    #[test]
    fn parts_make_a_resp3_connection() {
        let info = target(&opts(None)).unwrap().info;
        assert_eq!(info.addr().to_string(), "127.0.0.1:7000");
        assert_eq!(info.redis_settings().db(), 3);
        assert_eq!(info.redis_settings().password(), Some("p@ss:word"));
        assert_eq!(info.redis_settings().protocol(), ProtocolVersion::RESP3);
    }

    #[test]
    fn url_wins_and_bad_urls_are_named() {
        let info = target(&opts(Some("redis://:secret@10.0.0.1:6380/2")))
            .unwrap()
            .info;
        assert_eq!(info.addr().to_string(), "10.0.0.1:6380");
        assert_eq!(info.redis_settings().db(), 2);
        let err = target(&opts(Some("http://nope"))).err().unwrap();
        assert!(err.contains("url"), "{err}");
    }

    #[test]
    fn rediss_url_is_tls() {
        let info = target(&opts(Some("rediss://example.com:6380")))
            .unwrap()
            .info;
        assert!(matches!(info.addr(), ConnectionAddr::TcpTls { .. }));
    }

    #[test]
    fn servername_is_checked_while_the_host_is_dialled() {
        let mut o = opts(None);
        o.tls = Some(TlsOptions {
            ca: None,
            cert: None,
            key: None,
            reject_unauthorized: None,
            servername: Some("redis.test".into()),
        });
        let t = target(&o).unwrap();
        assert!(
            matches!(t.info.addr(), ConnectionAddr::TcpTls { host, insecure: false, .. } if host == "redis.test")
        );
        assert_eq!(t.dial, Some(("127.0.0.1".to_string(), 7000)));
        assert_eq!(t.info.redis_settings().db(), 3);
    }

    #[test]
    fn cluster_nodes_take_urls_or_host_port_and_the_top_level_credentials() {
        let mut o = opts(None);
        o.db = None;
        let nodes = vec![
            "10.0.0.1:7000".to_string(),
            "redis://u:p@10.0.0.2:7001".to_string(),
        ];
        let t = cluster_target(&o, &nodes).unwrap();
        let c = t.cluster.unwrap();
        assert_eq!(c.nodes[0].addr().to_string(), "10.0.0.1:7000");
        assert_eq!(c.nodes[0].redis_settings().password(), Some("p@ss:word"));
        assert_eq!(c.nodes[1].redis_settings().password(), Some("p"));
        assert_eq!(
            c.nodes[1].redis_settings().protocol(),
            ProtocolVersion::RESP3
        );
    }

    #[test]
    fn bad_cluster_options_are_named() {
        let mut o = opts(None);
        let err = cluster_target(&o, &["a:1".to_string()]).err().unwrap();
        assert!(err.starts_with("db must be 0"), "{err}");
        o.db = Some(0);
        let err = cluster_target(&o, &[]).err().unwrap();
        assert!(err.contains("cluster.nodes"), "{err}");
        let err = cluster_target(&o, &["nope".to_string()]).err().unwrap();
        assert!(err.contains("\"nope\""), "{err}");
        let err = cluster_target(&o, &["redis://h:1/2".to_string()])
            .err()
            .unwrap();
        assert!(err.contains("database 0 only"), "{err}");
    }

    #[test]
    fn a_lone_cert_without_key_is_named() {
        let mut o = opts(None);
        o.tls = Some(TlsOptions {
            ca: None,
            cert: Some("x".into()),
            key: None,
            reject_unauthorized: None,
            servername: None,
        });
        assert!(target(&o).err().unwrap().contains("tls.cert"));
    }

    fn sentinels_parse(cases: &[(&str, &str, u16)]) {
        for (addr, host, port) in cases {
            assert_eq!(sentinel_addr(addr), Ok((host.to_string(), *port)), "{addr}");
        }
    }

    #[test]
    fn sentinel_addresses_and_their_errors() {
        sentinels_parse(&[
            ("10.0.0.5:26380", "10.0.0.5", 26380),
            (" s1 ", "s1", 26379),
            ("[::1]:7", "::1", 7),
            ("[::1]", "::1", 26379),
        ]);
        for bad in ["", ":1", "h:0", "h:x", "h:70000", "::1", "[::1]x", "a b:1"] {
            let err = sentinel_addr(bad).unwrap_err();
            assert!(err.contains("sentinel.sentinels"), "{bad}: {err}");
        }
    }

    #[test]
    fn sentinels_and_cluster_nodes_take_the_same_forms() {
        sentinels_parse(&[
            ("redis://10.0.0.5:26380", "10.0.0.5", 26380),
            ("redis://s1", "s1", 26379),
            ("redis://[::1]:7", "::1", 7),
        ]);
        for (bad, says) in [
            ("rediss://s1:1", "without TLS"),
            ("redis://:pw@s1:1", "sentinel.password"),
            ("redis://s1:1/2", "database"),
            ("http://s1:1", "redis:// URL"),
        ] {
            let err = sentinel_addr(bad).unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
        }
        let mut o = opts(None);
        o.db = None;
        let nodes = ["[::1]:7000".to_string(), "redis://[::1]:7001".to_string()];
        let c = cluster_target(&o, &nodes).unwrap().cluster.unwrap();
        assert_eq!(c.nodes[0].addr().to_string(), "::1:7000");
        assert_eq!(c.nodes[1].addr().to_string(), "::1:7001");
    }

    #[test]
    fn sentinel_options_need_addresses_and_a_name() {
        let mut s = SentinelOptions {
            sentinels: vec![],
            name: "m".into(),
            password: None,
        };
        assert!(sentinel_target(&s)
            .unwrap_err()
            .contains("sentinel.sentinels"));
        s.sentinels = vec!["h:1".into()];
        s.name = " ".into();
        assert!(sentinel_target(&s).unwrap_err().contains("sentinel.name"));
        s.name = "m".into();
        let mut o = opts(None);
        o.sentinel = Some(s);
        let Mode::Redis(t) = settings(&o).unwrap().mode else {
            panic!("redis mode")
        };
        let st = t.sentinel.unwrap();
        assert_eq!(st.sentinels, vec![("h".to_string(), 1)]);
        // The master keeps the top-level credentials and db.
        assert_eq!(t.info.redis_settings().db(), 3);
        assert_eq!(t.info.redis_settings().password(), Some("p@ss:word"));
    }
}
