//! Why a call took its failure result: one stable code per kind of failure,
//! mapped from redis-rs errors in one place, carried to the logger's metadata
//! and counted in `stats()`.

use napi_derive::napi;
use redis::{ErrorKind, RedisError, ServerError, ServerErrorKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// `close()` was called.
    Closed,
    /// The call's deadline (`commandTimeoutMs`) passed before its reply.
    Timeout,
    /// No usable connection: refused, reset, TLS or auth failure, reconnecting.
    Unavailable,
    /// Redis answered with an error reply (`WRONGTYPE`, `OOM`, `BUSY`, …).
    Server,
    /// A reply this library did not expect.
    Protocol,
}

impl Code {
    /// What JavaScript sees as `meta.code`.
    pub fn js(self) -> &'static str {
        match self {
            Code::Closed => "ERR_CACHE_CLOSED",
            Code::Timeout => "ERR_CACHE_TIMEOUT",
            Code::Unavailable => "ERR_CACHE_UNAVAILABLE",
            Code::Server => "ERR_CACHE_SERVER",
            Code::Protocol => "ERR_CACHE_PROTOCOL",
        }
    }

    pub fn from_js(code: &str) -> Self {
        [Code::Closed, Code::Timeout, Code::Server, Code::Protocol]
            .into_iter()
            .find(|c| c.js() == code)
            .unwrap_or(Code::Unavailable)
    }
}

/// Every `err.code` / `meta.code` the package uses, JavaScript's included,
/// so both sides read them from here.
#[napi(object)]
#[cfg_attr(test, allow(dead_code))] // read by JavaScript
pub struct ErrorCodes {
    pub closed: String,
    pub timeout: String,
    pub unavailable: String,
    pub server: String,
    pub protocol: String,
    /// A `getOrSet` factory ran past `timeout.hard` with no fail-safe copy.
    pub factory_timeout: String,
    /// A `getOrSet` factory failed (logged when its callers were answered otherwise).
    pub factory: String,
    /// A `getOrSet` answered with its fail-safe copy.
    pub failsafe: String,
    /// A value `JSON.stringify` could not serialize: nothing was stored.
    pub serialize: String,
}

#[napi]
#[cfg_attr(test, allow(dead_code))] // read by JavaScript
pub fn error_codes() -> ErrorCodes {
    ErrorCodes {
        closed: Code::Closed.js().into(),
        timeout: Code::Timeout.js().into(),
        unavailable: Code::Unavailable.js().into(),
        server: Code::Server.js().into(),
        protocol: Code::Protocol.js().into(),
        factory_timeout: "ERR_CACHE_FACTORY_TIMEOUT".into(),
        factory: "ERR_CACHE_FACTORY".into(),
        failsafe: "ERR_CACHE_FAILSAFE".into(),
        serialize: "ERR_CACHE_SERIALIZE".into(),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub code: Code,
    pub message: String,
}

impl Failure {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Failure {
            code,
            message: message.into(),
        }
    }

    pub fn closed() -> Self {
        Failure::new(Code::Closed, "the cache is closed")
    }

    pub fn timeout() -> Self {
        Failure::new(Code::Timeout, "Redis command timed out")
    }

    /// An error reply. `READONLY` means the node was demoted to a replica
    /// (Sentinel failover): no usable master, which breaks the link, so the
    /// supervisor goes back to the sentinels.
    pub fn reply(e: &ServerError) -> Self {
        let code = match e.kind() {
            Some(ServerErrorKind::ReadOnly) => Code::Unavailable,
            _ => Code::Server,
        };
        Failure::new(code, e.to_string())
    }

    /// Whether the connection that produced this failure must be replaced.
    pub fn breaks_link(&self) -> bool {
        matches!(
            self.code,
            Code::Timeout | Code::Unavailable | Code::Protocol
        )
    }
}

impl From<RedisError> for Failure {
    fn from(e: RedisError) -> Self {
        Failure::new(classify(&e), e.to_string())
    }
}

/// The code for a redis-rs error: error replies are the server's, parse errors
/// the protocol's, everything else (I/O, TLS, auth, config) means no usable link.
pub fn classify(e: &RedisError) -> Code {
    match e.kind() {
        ErrorKind::Server(ServerErrorKind::ReadOnly) => Code::Unavailable,
        ErrorKind::Server(_) | ErrorKind::Extension => Code::Server,
        ErrorKind::Parse | ErrorKind::UnexpectedReturnType => Code::Protocol,
        _ if e.code().is_some() => Code::Server,
        _ => Code::Unavailable,
    }
}

/// How a failed connection attempt is handled.
#[derive(Debug, PartialEq, Eq)]
pub enum ConnectFailure {
    /// The server speaks RESP2 only: connect again with RESP2, without L1.
    NoResp3,
    /// Anything else, including auth errors and busy or loading servers:
    /// retried with backoff, never taken as a verdict about the server.
    Transient(Failure),
}

pub fn classify_connect(e: RedisError) -> ConnectFailure {
    if e.kind() == ErrorKind::RESP3NotSupported {
        ConnectFailure::NoResp3
    } else {
        ConnectFailure::Transient(Failure::new(Code::Unavailable, e.to_string()))
    }
}

/// Whether an error reply to `CLIENT TRACKING` says the server cannot track
/// for us (an unknown or forbidden command), as opposed to a passing state
/// (`BUSY` script, `LOADING`, `NOAUTH`, `MASTERDOWN`, `TRYAGAIN`) worth a retry.
pub fn tracking_unsupported(code: Option<&str>, kind: Option<ErrorKind>) -> bool {
    match kind {
        Some(ErrorKind::Server(
            ServerErrorKind::BusyLoading | ServerErrorKind::TryAgain | ServerErrorKind::MasterDown,
        )) => false,
        _ => !matches!(
            code,
            Some("BUSY" | "LOADING" | "NOAUTH" | "TRYAGAIN" | "MASTERDOWN")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_are_unavailable_and_replies_are_server_errors() {
        let io: RedisError = std::io::Error::from(std::io::ErrorKind::ConnectionReset).into();
        assert_eq!(classify(&io), Code::Unavailable);
        let reply: RedisError = (
            ErrorKind::Server(ServerErrorKind::ResponseError),
            "WRONGTYPE",
        )
            .into();
        assert_eq!(classify(&reply), Code::Server);
        let parse: RedisError = (ErrorKind::Parse, "bad").into();
        assert_eq!(classify(&parse), Code::Protocol);
    }

    #[test]
    fn only_resp3_refusal_is_permanent_at_connect() {
        let no3: RedisError = (ErrorKind::RESP3NotSupported, "no HELLO").into();
        assert_eq!(classify_connect(no3), ConnectFailure::NoResp3);
        // NOAUTH mentions HELLO in its text; it is still a passing condition.
        let noauth: RedisError = (
            ErrorKind::AuthenticationFailed,
            "NOAUTH HELLO must be called with the client already authenticated",
        )
            .into();
        assert!(matches!(
            classify_connect(noauth),
            ConnectFailure::Transient(_)
        ));
    }

    #[test]
    fn busy_and_loading_do_not_turn_tracking_off() {
        assert!(!tracking_unsupported(Some("BUSY"), None));
        assert!(!tracking_unsupported(Some("NOAUTH"), None));
        assert!(!tracking_unsupported(
            None,
            Some(ErrorKind::Server(ServerErrorKind::BusyLoading))
        ));
        assert!(tracking_unsupported(Some("ERR"), None));
        assert!(tracking_unsupported(Some("NOPERM"), None));
    }

    #[test]
    fn readonly_replies_break_the_link() {
        let readonly: RedisError = (
            ErrorKind::Server(ServerErrorKind::ReadOnly),
            "You can't write against a read only replica.",
        )
            .into();
        assert!(Failure::from(readonly).breaks_link());
        let wrongtype: RedisError = (
            ErrorKind::Server(ServerErrorKind::ResponseError),
            "WRONGTYPE",
        )
            .into();
        assert!(!Failure::from(wrongtype).breaks_link());
    }
}
