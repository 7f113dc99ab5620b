//! Hash slots: a key's slot, the slot map `CLUSTER SLOTS` reports, and which
//! replies mean a command did not run where it was sent.

use redis::Value;

pub const SLOTS: usize = 16384;

/// The cluster's hash slot of `key` (CRC16/XMODEM of the key or its hash tag).
pub fn slot(key: &[u8]) -> u16 {
    let tagged = key.iter().position(|b| *b == b'{').and_then(|open| {
        let close = key[open + 1..].iter().position(|b| *b == b'}')?;
        let tag = &key[open + 1..open + 1 + close];
        (!tag.is_empty()).then_some(tag)
    });
    let mut crc: u16 = 0;
    for b in tagged.unwrap_or(key) {
        crc = (crc << 8) ^ CRC16[usize::from((crc >> 8) as u8 ^ b)];
    }
    crc % SLOTS as u16
}

const CRC16: [u16; 256] = {
    let mut t = [0u16; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = (i as u16) << 8;
        let mut bit = 0;
        while bit < 8 {
            c = if c & 0x8000 != 0 {
                (c << 1) ^ 0x1021
            } else {
                c << 1
            };
            bit += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
};

/// Whether a reply means the command did not run where it was sent (a
/// redirect, or a cluster in transition), so redis-rs must send it again.
pub fn misrouted(v: &Value) -> bool {
    let Value::ServerError(e) = v else {
        return false;
    };
    matches!(
        e.code(),
        "MOVED" | "ASK" | "TRYAGAIN" | "CLUSTERDOWN" | "READONLY" | "LOADING" | "MASTERDOWN"
    )
}

/// `CLUSTER SLOTS`: each range's first and last slot and its primary's
/// address; ranges whose primary has no usable address are left out (their
/// slots go through redis-rs).
pub fn parse_slots(v: Value) -> Vec<(u16, u16, (String, u16))> {
    let Value::Array(items) = v else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for item in items {
        let Value::Array(item) = item else { continue };
        let (Some(Value::Int(start)), Some(Value::Int(end)), Some(Value::Array(primary))) =
            (item.first(), item.get(1), item.get(2))
        else {
            continue;
        };
        let host = match primary.first() {
            Some(Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
            Some(Value::SimpleString(s)) => s.clone(),
            _ => continue,
        };
        let Some(Value::Int(port)) = primary.get(1) else {
            continue;
        };
        if host.is_empty() || host == "?" {
            continue;
        }
        let (Ok(start), Ok(end), Ok(port)) = (
            u16::try_from(*start),
            u16::try_from(*end),
            u16::try_from(*port),
        ) else {
            continue;
        };
        out.push((start, end, (host, port)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use redis::cluster_routing::{Route, Slot, SlotAddr};

    #[test]
    fn slots_match_redis_rs() {
        let keys = [
            "",
            "a",
            "foo",
            "user:1000",
            "{user1000}.following",
            "{}x",
            "x{}y{z}",
            "{a}b",
            "ü{ä}",
            "cold:12345",
            "{",
            "}",
            "a{b",
            "a}b{c}",
        ];
        for k in keys {
            assert_eq!(
                Route::new(slot(k.as_bytes()), SlotAddr::Master),
                Route::with_slot(Slot::for_key(k.as_bytes()), SlotAddr::Master),
                "{k:?}"
            );
        }
        for i in 0..10_000 {
            let k = format!("key:{i}");
            assert_eq!(
                Route::new(slot(k.as_bytes()), SlotAddr::Master),
                Route::with_slot(Slot::for_key(k.as_bytes()), SlotAddr::Master)
            );
        }
        assert_eq!(slot(b"foo"), 12182, "the value in the cluster spec");
    }
}
