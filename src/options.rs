//! Constructor options, already type-checked by the JavaScript layer; this
//! module turns them into a Redis address and the tiers' settings.

use std::time::Duration;

use napi_derive::napi;
use redis::{
    ConnectionAddr, ConnectionInfo, IntoConnectionInfo, ProtocolVersion, RedisConnectionInfo,
};

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
    pub tls: Option<bool>,
    /// Bound on L1 keys plus JSON bytes; 0 disables L1 (in `'memory'` mode it bounds the store).
    pub local_max_bytes: f64,
    /// Longest an L1 entry is served without Redis confirming it, in ms.
    pub local_max_ttl_ms: f64,
    /// Bound on one Redis round trip, in ms.
    pub command_timeout_ms: f64,
}

pub enum Mode {
    Memory,
    Redis(Box<ConnectionInfo>),
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
pub fn connection_info(o: &NativeOptions) -> Result<ConnectionInfo, String> {
    let info = match &o.url {
        Some(url) => {
            if redis::parse_redis_url(url).is_none() {
                return Err(format!(
                    "url is not a valid redis:// or rediss:// URL: {url:?}"
                ));
            }
            url.as_str()
                .into_connection_info()
                .map_err(|e| format!("url {url:?} is not usable: {e}"))?
        }
        None => {
            let host = o.host.clone().unwrap_or_else(|| "localhost".into());
            let port = u16::try_from(o.port.unwrap_or(6379))
                .map_err(|_| "port must be between 1 and 65535".to_string())?;
            let addr = if o.tls.unwrap_or(false) {
                ConnectionAddr::TcpTls {
                    host,
                    port,
                    insecure: false,
                    tls_params: None,
                }
            } else {
                ConnectionAddr::Tcp(host, port)
            };
            let mut redis = RedisConnectionInfo::default().set_db(o.db.unwrap_or(0) as i64);
            if let Some(user) = &o.username {
                redis = redis.set_username(user);
            }
            if let Some(password) = &o.password {
                redis = redis.set_password(password);
            }
            addr.into_connection_info()
                .map_err(|e| e.to_string())?
                .set_redis_settings(redis)
        }
    };
    let redis = info
        .redis_settings()
        .clone()
        .set_protocol(ProtocolVersion::RESP3)
        .set_lib_name("medianest-native-cache", env!("CARGO_PKG_VERSION"));
    Ok(info.set_redis_settings(redis))
}

pub fn settings(o: &NativeOptions) -> Result<Settings, String> {
    let mode = match o.mode.as_str() {
        "memory" => Mode::Memory,
        "redis" => Mode::Redis(Box::new(connection_info(o)?)),
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
            local_max_bytes: 1024.0,
            local_max_ttl_ms: 60_000.0,
            command_timeout_ms: 1000.0,
        }
    }

    #[test]
    fn parts_make_a_resp3_connection() {
        let info = connection_info(&opts(None)).unwrap();
        assert_eq!(info.addr().to_string(), "127.0.0.1:7000");
        assert_eq!(info.redis_settings().db(), 3);
        assert_eq!(info.redis_settings().password(), Some("p@ss:word"));
        assert_eq!(info.redis_settings().protocol(), ProtocolVersion::RESP3);
    }

    #[test]
    fn url_wins_and_bad_urls_are_named() {
        let info = connection_info(&opts(Some("redis://:secret@10.0.0.1:6380/2"))).unwrap();
        assert_eq!(info.addr().to_string(), "10.0.0.1:6380");
        assert_eq!(info.redis_settings().db(), 2);
        let err = connection_info(&opts(Some("http://nope"))).unwrap_err();
        assert!(err.contains("url"), "{err}");
    }

    #[test]
    fn rediss_url_is_tls() {
        let info = connection_info(&opts(Some("rediss://example.com:6380"))).unwrap();
        assert!(matches!(info.addr(), ConnectionAddr::TcpTls { .. }));
    }
}
