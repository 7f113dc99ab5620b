//! Client tracking, asked for and opted into in one place for every
//! topology: [`track`] switches it on for a connection, [`caching`] opts the
//! next read in (`OPTIN`), [`cached`] reads the answer.

use redis::aio::MultiplexedConnection;
use redis::Value;

use crate::error::{tracking_unsupported, Code, Failure};

/// Switches client tracking on for `conn` (`optin`: only reads after
/// `CLIENT CACHING yes` are tracked, see `commands.rs`); the one place every
/// topology asks for it. `Ok(Some(why))`: the server refuses it for good (an
/// old server, an ACL, a proxy), and the connection serves without it.
///
/// Without NOLOOP: when this client's own command makes Redis drop keys from
/// its tracking table or evict data, the invalidation is sent to this client
/// too (NOLOOP would suppress exactly those).
pub async fn track(
    conn: &mut MultiplexedConnection,
    optin: bool,
) -> Result<Option<String>, Failure> {
    let mut cmd = redis::cmd("CLIENT");
    cmd.arg("TRACKING").arg("ON");
    if optin {
        cmd.arg("OPTIN");
    }
    match cmd.query_async::<Value>(conn).await {
        Ok(Value::ServerError(e)) if tracking_unsupported(Some(e.code()), None) => {
            Ok(Some(e.to_string()))
        }
        Ok(Value::ServerError(e)) => Err(Failure::new(Code::Server, e.to_string())),
        Ok(_) => Ok(None),
        Err(e) if e.code().is_some() => {
            if tracking_unsupported(e.code(), Some(e.kind())) {
                Ok(Some(e.to_string()))
            } else {
                Err(Failure::new(Code::Server, e.to_string()))
            }
        }
        Err(e) => Err(e.into()),
    }
}

/// With `OPTIN` tracking the server tracks only the keys of the command right
/// after `CLIENT CACHING yes`, so only reads that fill L1 (or wake lock
/// waiters) add to its tracking table and to its work per read.
pub fn caching(pipe: &mut redis::Pipeline) {
    pipe.cmd("CLIENT").arg("CACHING").arg("yes");
}

/// Whether the reply to `CLIENT CACHING yes` says the next read is tracked.
pub fn cached(v: &Value) -> bool {
    matches!(v, Value::Okay) || matches!(v, Value::SimpleString(s) if s == "OK")
}
