//! The calls JavaScript batches into one native crossing, and their replies.
//!
//! A batch is three flat arrays (op codes, strings, numbers) read with cursors:
//! cheaper to cross napi than an array of objects. Each op gets exactly one
//! `ok` flag and one number in the reply, and a fixed count of texts (GET: 1,
//! MGET: one per key, INFO: 1) whether it succeeded or not.

use napi_derive::napi;

pub const GET: u32 = 1;
pub const SET: u32 = 2;
pub const DEL: u32 = 3;
pub const MGET: u32 = 4;
pub const MSET: u32 = 5;
pub const EXISTS: u32 = 6;
pub const TTL: u32 = 7;
pub const PING: u32 = 8;
pub const INFO: u32 = 9;
pub const CLEAR: u32 = 10;
pub const DEL_PATTERN: u32 = 11;

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

fn count(n: f64) -> Result<usize, String> {
    if n.is_finite() && n >= 0.0 && n.fract() == 0.0 {
        Ok(n as usize)
    } else {
        Err(format!("invalid count {n}"))
    }
}

fn ttl_ms(n: f64) -> Result<u64, String> {
    if n.is_finite() && n >= 1.0 {
        Ok(n as u64)
    } else {
        Err(format!("invalid ttl {n} ms"))
    }
}

/// Reads a batch. The JavaScript layer has validated every argument, so an
/// error here means the two layers disagree, not that a user passed bad input.
pub fn decode(codes: &[u32], strs: Vec<String>, nums: &[f64]) -> Result<Vec<Op>, String> {
    let mut strs = strs.into_iter();
    let mut nums = nums.iter().copied();
    let mut s = || strs.next().ok_or("batch is missing a string");
    let mut ops = Vec::with_capacity(codes.len());
    for &code in codes {
        let mut n = || nums.next().ok_or("batch is missing a number");
        let op = match code {
            GET => Op::Get(s()?),
            SET => {
                let (key, json) = (s()?, s()?);
                Op::Set {
                    key,
                    json,
                    ttl_ms: ttl_ms(n()?)?,
                }
            }
            DEL => {
                let len = count(n()?)?;
                Op::Del((0..len).map(|_| s()).collect::<Result<_, _>>()?)
            }
            MGET => {
                let len = count(n()?)?;
                Op::MGet((0..len).map(|_| s()).collect::<Result<_, _>>()?)
            }
            MSET => {
                let len = count(n()?)?;
                let ttl_ms = ttl_ms(n()?)?;
                let entries = (0..len)
                    .map(|_| Ok((s()?, s()?)))
                    .collect::<Result<_, &str>>()?;
                Op::MSet { entries, ttl_ms }
            }
            EXISTS => Op::Exists(s()?),
            TTL => Op::Ttl(s()?),
            PING => Op::Ping,
            INFO => Op::Info,
            CLEAR => Op::Clear,
            DEL_PATTERN => Op::DelPattern(s()?),
            other => return Err(format!("unknown op code {other}")),
        };
        ops.push(op);
    }
    Ok(ops)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strs(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn decodes_a_mixed_batch_in_order() {
        let ops = decode(
            &[GET, SET, DEL, MSET, PING],
            strs(&["a", "b", "1", "c", "d", "e", "2"]),
            &[1000.0, 2.0, 1.0, 500.0],
        )
        .unwrap();
        assert_eq!(
            ops,
            vec![
                Op::Get("a".into()),
                Op::Set {
                    key: "b".into(),
                    json: "1".into(),
                    ttl_ms: 1000
                },
                Op::Del(strs(&["c", "d"])),
                Op::MSet {
                    entries: vec![("e".into(), "2".into())],
                    ttl_ms: 500
                },
                Op::Ping,
            ]
        );
    }

    #[test]
    fn rejects_short_or_malformed_batches() {
        assert!(decode(&[SET], strs(&["a"]), &[]).is_err());
        assert!(decode(&[DEL], vec![], &[-1.0]).is_err());
        assert!(decode(&[SET], strs(&["a", "1"]), &[0.0]).is_err());
        assert!(decode(&[99], vec![], &[]).is_err());
    }

    #[test]
    fn failure_keeps_text_count_fixed() {
        let mut r = Replies::default();
        r.fail(Op::MGet(strs(&["a", "b", "c"])).shape(), "down");
        assert_eq!(r.texts.len(), 3);
        assert_eq!(r.errors, vec!["Cache mget error: down".to_string()]);
        assert_eq!(r.ok, vec![false]);
    }
}
