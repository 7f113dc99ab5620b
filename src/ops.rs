//! The calls queued for one batch, and the batch's replies.
//!
//! Each op gets exactly one `ok` flag and one number in the reply, and a fixed
//! count of texts (GET: 1, MGET: one per key, INFO: 1) whether it succeeded or
//! not, so JavaScript can hand each caller its part without more crossings.

use napi_derive::napi;

use crate::error::{Code, Failure};
use crate::stats::Counters;

#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    Get(String),
    /// `getOrSet`'s read: a get that also answers the key's `PTTL` as its
    /// number (`-2` missing, `-1` no expiry), tracked or not.
    GetTtl(String),
    /// `ttl_ms` is at least 1; `tags`: the tag indexes it joins (`redis/tags.rs`).
    Set {
        key: String,
        json: String,
        ttl_ms: u64,
        tags: Option<Vec<String>>,
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
    /// `invalidateTags`: deletes every key its tags index; the number is how many.
    DelTags(Vec<String>),
    /// `getOrSet`'s lease (`lock: 'distributed'`): `SET key token NX PX lease_ms`,
    /// then `PTTL key` so the server tracks the lock key for this client and
    /// its release or expiry wakes a waiter. The number is 1 when taken, else 0.
    LockTake {
        key: String,
        token: String,
        lease_ms: u64,
    },
    /// Extends the lease to `lease_ms` if `token` still holds it; 1 if it did.
    LockRenew {
        key: String,
        token: String,
        lease_ms: u64,
    },
    /// Deletes the lock key if `token` still holds it; 1 if it did.
    LockRelease {
        key: String,
        token: String,
    },
    /// `getOrSet`'s write-back, decided in Redis: stores `json` with `ttl_ms`
    /// only while the key is still absent (`expect` None: after a miss) or
    /// still holds `expect` (an eager refresh); 1 if stored, else 0.
    StoreIf {
        key: String,
        json: String,
        ttl_ms: u64,
        expect: Option<String>,
        tags: Option<Vec<String>>,
    },
    /// The index entries of a tagged `Set` or `StoreIf` for `key`, sent before
    /// its write by the Redis executor (`redis/tagged.rs`); never queued by JavaScript.
    TagIndex {
        key: String,
        tags: Vec<String>,
        ttl_ms: u64,
    },
    /// An op the Redis executor will not send (a tagged write whose index
    /// failed): it answers `why` in its place.
    Unsent {
        shape: Shape,
        why: Failure,
    },
}

/// A failed call's report for the logger.
#[napi(object)]
#[derive(Debug, Clone, PartialEq)]
pub struct ReplyError {
    /// Which call: the op's index in the batch.
    pub op: u32,
    pub message: String,
    /// A stable code: `ERR_CACHE_TIMEOUT`, `ERR_CACHE_UNAVAILABLE`, `ERR_CACHE_SERVER`, …
    pub code: String,
}

/// What a batch resolves to in JavaScript: per op, whether it succeeded, its
/// number, and where its texts start in `texts` (so JavaScript never restates
/// how many texts each op answers).
#[napi(object)]
#[derive(Default, Debug)]
pub struct Replies {
    pub ok: Vec<bool>,
    pub nums: Vec<f64>,
    pub starts: Vec<u32>,
    pub texts: Vec<Option<String>>,
    /// One per failed op.
    pub errors: Vec<ReplyError>,
    /// Settled by the batch's own deadline (or by close), not by the executor:
    /// it holds nothing from Redis, so it need not wait for earlier batches to settle.
    pub unanswered: bool,
}

/// A successful op's result: its number and its texts.
#[derive(Debug, Default, PartialEq)]
pub struct Answer {
    pub num: f64,
    pub texts: Vec<Option<String>>,
}

impl Answer {
    pub fn num(num: f64) -> Self {
        Answer {
            num,
            texts: Vec::new(),
        }
    }

    pub fn texts(num: f64, texts: Vec<Option<String>>) -> Self {
        Answer { num, texts }
    }
}

impl Replies {
    pub fn with_capacity(ops: usize) -> Self {
        Replies {
            ok: Vec::with_capacity(ops),
            nums: Vec::with_capacity(ops),
            starts: Vec::with_capacity(ops),
            texts: Vec::with_capacity(ops),
            errors: Vec::new(),
            unanswered: false,
        }
    }

    /// Appends an op's result; a failure gets `null` for each text its shape has.
    pub fn push(&mut self, shape: Shape, result: Result<Answer, Failure>) {
        self.starts.push(self.texts.len() as u32);
        match result {
            Ok(Answer { num, texts }) => {
                self.ok.push(true);
                self.nums.push(num);
                self.texts.extend(texts);
            }
            Err(f) => {
                self.errors.push(ReplyError {
                    op: self.ok.len() as u32,
                    message: format!("Cache {} error: {}", shape.name, f.message),
                    code: f.code.js().to_string(),
                });
                self.ok.push(false);
                self.nums.push(0.0);
                self.texts.extend(std::iter::repeat_n(None, shape.texts));
            }
        }
    }

    pub fn fail(&mut self, shape: Shape, why: &Failure) {
        self.push(shape, Err(why.clone()));
    }

    pub fn done(&mut self, shape: Shape, num: f64) {
        self.push(shape, Ok(Answer::num(num)));
    }

    /// Counts this batch's failures by code, once, when it is delivered.
    pub fn count_failures(&self, counters: &Counters) {
        for e in &self.errors {
            counters.failed(Code::from_js(&e.code), 1);
        }
    }
}

/// What a failure reply of an op needs to know, without its (possibly large) arguments.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shape {
    pub name: &'static str,
    pub texts: usize,
}

impl Op {
    /// Runs on its own, in as many round trips as it needs (`invalidatePattern`, `invalidateTags`).
    pub fn is_long(&self) -> bool {
        matches!(self, Op::DelPattern(_) | Op::DelTags(_))
    }

    /// A tagged write's tags, taken: its index goes as a [`Op::TagIndex`] of its own.
    pub fn take_tags(&mut self) -> Option<Op> {
        match self {
            Op::Set {
                key, ttl_ms, tags, ..
            }
            | Op::StoreIf {
                key, ttl_ms, tags, ..
            } => tags.take().map(|tags| Op::TagIndex {
                key: key.clone(),
                tags,
                ttl_ms: *ttl_ms,
            }),
            _ => None,
        }
    }

    /// Whether a write carries tags.
    pub fn is_tagged(&self) -> bool {
        matches!(
            self,
            Op::Set { tags: Some(_), .. } | Op::StoreIf { tags: Some(_), .. }
        )
    }

    pub fn shape(&self) -> Shape {
        if let Op::Unsent { shape, .. } = self {
            return *shape;
        }
        let texts = match self {
            Op::Get(_) | Op::GetTtl(_) | Op::Info => 1,
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
            Op::GetTtl(_) => "getOrSet",
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
            Op::DelTags(_) => "invalidateTags",
            Op::LockTake { .. } | Op::LockRenew { .. } | Op::LockRelease { .. } => "getOrSet lock",
            Op::StoreIf { .. } => "getOrSet",
            Op::TagIndex { .. } => "tag index",
            Op::Unsent { shape, .. } => shape.name,
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
    fn each_op_says_where_its_texts_start() {
        let mut r = Replies::default();
        let keys = vec!["a".to_string(), "b".to_string(), "c".to_string()];
        r.fail(
            Op::MGet(keys).shape(),
            &Failure::new(Code::Unavailable, "down"),
        );
        r.push(
            Op::Get("k".into()).shape(),
            Ok(Answer::texts(0.0, vec![Some("1".into())])),
        );
        r.done(Op::Ping.shape(), 1.0);
        assert_eq!(r.starts, vec![0, 3, 4]);
        assert_eq!(r.texts.len(), 4);
        assert_eq!(r.ok, vec![false, true, true]);
        assert_eq!(r.errors[0].message, "Cache mget error: down");
        assert_eq!(r.errors[0].code, "ERR_CACHE_UNAVAILABLE");
        assert_eq!(r.errors[0].op, 0);
    }

    #[test]
    fn ttl_ms_accepts_whole_positive_milliseconds_only() {
        assert_eq!(ttl_ms(1500.0), Ok(1500));
        assert!(ttl_ms(0.0).is_err());
        assert!(ttl_ms(f64::INFINITY).is_err());
        assert!(ttl_ms(f64::NAN).is_err());
    }
}
