//! The calls queued for one batch, and the batch's replies.
//!
//! Each op gets exactly one `ok` flag and one number in the reply, and a fixed
//! count of texts (GET: 1, MGET: one per key, INFO: 1) whether it succeeded or
//! not, so JavaScript can hand each caller its part without more crossings.

use napi_derive::napi;

#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    Get(String),
    /// `ttl_ms` is at least 1.
    Set {
        key: String,
        json: String,
        ttl_ms: u64,
    },
    Del(Vec<String>),
    MGet(Vec<String>),
    MSet {
        entries: Vec<(String, String)>,
        ttl_ms: u64,
    },
    Exists(String),
    Ttl(String),
    Ping,
    Info,
    Clear,
    DelPattern(String),
}

/// What a batch resolves to in JavaScript.
#[napi(object)]
#[derive(Default, Debug)]
pub struct Replies {
    pub ok: Vec<bool>,
    pub nums: Vec<f64>,
    pub texts: Vec<Option<String>>,
    /// Messages for the logger, one per failed op.
    pub errors: Vec<String>,
}

impl Replies {
    pub fn with_capacity(ops: usize) -> Self {
        Replies {
            ok: Vec::with_capacity(ops),
            nums: Vec::with_capacity(ops),
            texts: Vec::with_capacity(ops),
            errors: Vec::new(),
        }
    }

    /// Appends the failure result of an op: not ok, zero, and its texts as `null`.
    pub fn fail(&mut self, shape: Shape, why: &str) {
        self.ok.push(false);
        self.nums.push(0.0);
        self.texts.extend(std::iter::repeat_n(None, shape.texts));
        self.errors
            .push(format!("Cache {} error: {why}", shape.name));
    }

    pub fn done(&mut self, num: f64) {
        self.ok.push(true);
        self.nums.push(num);
    }
}

/// What a failure reply of an op needs to know, without its (possibly large) arguments.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub name: &'static str,
    pub texts: usize,
}

impl Op {
    pub fn shape(&self) -> Shape {
        let texts = match self {
            Op::Get(_) | Op::Info => 1,
            Op::MGet(keys) => keys.len(),
            _ => 0,
        };
        Shape {
            name: self.name(),
            texts,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Op::Get(_) => "get",
            Op::Set { .. } => "set",
            Op::Del(_) => "del",
            Op::MGet(_) => "mget",
            Op::MSet { .. } => "mset",
            Op::Exists(_) => "exists",
            Op::Ttl(_) => "ttl",
            Op::Ping => "ping",
            Op::Info => "getInfo",
            Op::Clear => "clear",
            Op::DelPattern(_) => "invalidatePattern",
        }
    }
}

/// A TTL from JavaScript (already checked there) as whole milliseconds for `PX`.
pub fn ttl_ms(n: f64) -> Result<u64, String> {
    if n.is_finite() && (1.0..=9_007_199_254_740_991.0).contains(&n) {
        Ok(n as u64)
    } else {
        Err(format!("invalid ttl {n} ms"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_keeps_text_count_fixed() {
        let mut r = Replies::default();
        let keys = vec!["a".to_string(), "b".to_string(), "c".to_string()];
        r.fail(Op::MGet(keys).shape(), "down");
        assert_eq!(r.texts.len(), 3);
        assert_eq!(r.errors, vec!["Cache mget error: down".to_string()]);
        assert_eq!(r.ok, vec![false]);
    }

    #[test]
    fn ttl_ms_accepts_whole_positive_milliseconds_only() {
        assert_eq!(ttl_ms(1500.0), Ok(1500));
        assert!(ttl_ms(0.0).is_err());
        assert!(ttl_ms(f64::INFINITY).is_err());
        assert!(ttl_ms(f64::NAN).is_err());
    }
}
