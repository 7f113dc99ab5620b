//! Redis' `bytesToHuman` (the `used_memory_human` format), so `'memory'` mode's
//! `getInfo()` reads like a server's.

/// `1023` -> `"1023B"`, `1100000` -> `"1.05M"`: the same units and rounding as Redis.
pub fn bytes_to_human(n: u64) -> String {
    const UNITS: [(u64, char); 5] = [
        (1 << 10, 'K'),
        (1 << 20, 'M'),
        (1 << 30, 'G'),
        (1 << 40, 'T'),
        (1 << 50, 'P'),
    ];
    if n < 1024 {
        return format!("{n}B");
    }
    for (i, (unit, suffix)) in UNITS.iter().enumerate() {
        let next = UNITS.get(i + 1).map_or(u64::MAX, |u| u.0);
        if n < next || i == UNITS.len() - 1 {
            return format!("{:.2}{}", n as f64 / *unit as f64, suffix);
        }
    }
    unreachable!()
}

#[cfg(test)]
mod tests {
    use super::bytes_to_human;

    #[test]
    fn matches_redis_format() {
        assert_eq!(bytes_to_human(0), "0B");
        assert_eq!(bytes_to_human(1023), "1023B");
        assert_eq!(bytes_to_human(1024), "1.00K");
        assert_eq!(bytes_to_human(1_100_000), "1.05M");
        assert_eq!(bytes_to_human(3 << 30), "3.00G");
    }
}
