//! Redis' glob matcher (`stringmatchlen` in Redis' util.c), byte for byte.
//!
//! `'memory'` mode and the L1 purge of `invalidatePattern` must agree with
//! `SCAN MATCH` on a real server, so this follows the C code's quirks: bytes,
//! not characters; signed-char comparison in ranges; reversed ranges swapped;
//! an unterminated `[` class ends at the pattern's end; and Redis' cap of 1000
//! nested stars (CVE-2024-31228), past which nothing matches.
//!
//! The C code recurses once per `*`. Here the recursion is a loop: once the
//! pattern after a star has reached the next star, Redis never retries the
//! earlier one (its `skipLongerMatches`), so only the innermost star needs a
//! retry point and no input can exhaust the stack.

/// Deepest star recursion Redis allows (`nesting > 1000` answers no match).
pub const MAX_NESTING: usize = 1000;

/// True when `SCAN MATCH pattern` would return `key`. SCAN skips matching for
/// a lone `*` (which `stringmatchlen` itself would not match with `""`).
pub fn matches(pattern: &[u8], key: &[u8]) -> bool {
    if pattern == b"*" {
        return true;
    }
    let (mut p, mut s) = (0usize, 0usize);
    // The innermost star: where the pattern resumes after it, and the key offset tried last.
    let mut retry: Option<(usize, usize)> = None;
    let mut nesting = 0usize;
    loop {
        match step(pattern, key, p, s) {
            Step::Done(true) => return true,
            Step::Star { rest, at } => {
                nesting += 1;
                if nesting > MAX_NESTING {
                    return false;
                }
                retry = Some((rest, at));
                (p, s) = (rest, at);
            }
            Step::Done(false) => {
                let Some((rest, at)) = retry.as_mut() else {
                    return false;
                };
                *at += 1;
                if *at >= key.len() {
                    return false;
                }
                (p, s) = (*rest, *at);
            }
        }
    }
}

enum Step {
    /// The C function's return value, reached without meeting a star.
    Done(bool),
    /// Met a star that is not the pattern's last byte: the rest (from `rest`)
    /// must match somewhere from `at` on.
    Star { rest: usize, at: usize },
}

/// The byte at `i`, or NUL past the end, as the C code reads its NUL-terminated buffer.
fn at(s: &[u8], i: usize) -> u8 {
    s.get(i).copied().unwrap_or(0)
}

/// One activation of `stringmatchlen_impl` from `pattern[p..]` and `string[s..]`, up to its first star.
fn step(pattern: &[u8], string: &[u8], mut p: usize, mut s: usize) -> Step {
    let (plen, slen) = (pattern.len(), string.len());
    while p < plen && s < slen {
        match pattern[p] {
            b'*' => {
                while p + 1 < plen && pattern[p + 1] == b'*' {
                    p += 1;
                }
                if p + 1 == plen {
                    return Step::Done(true);
                }
                return Step::Star { rest: p + 1, at: s };
            }
            b'?' => s += 1,
            b'[' => {
                let (hit, end) = class(pattern, p + 1, string[s]);
                if !hit {
                    return Step::Done(false);
                }
                p = end;
                s += 1;
            }
            _ => {
                let Some(end) = literal(pattern, p, string[s]) else {
                    return Step::Done(false);
                };
                p = end;
                s += 1;
            }
        }
        p += 1;
        if s == slen {
            while at(pattern, p) == b'*' && p < plen {
                p += 1;
            }
            break;
        }
    }
    Step::Done(p >= plen && s == slen)
}

/// A `[...]` class whose body starts at `pattern[p]` (just after the `[`),
/// against byte `c`: whether it admits `c`, and where it ends (its `]`, or
/// the last byte of a class the pattern leaves unterminated).
fn class(pattern: &[u8], mut p: usize, c: u8) -> (bool, usize) {
    let plen = pattern.len();
    let not = at(pattern, p) == b'^';
    if not {
        p += 1;
    }
    let mut hit = false;
    loop {
        let remaining = plen.saturating_sub(p);
        if at(pattern, p) == b'\\' && remaining >= 2 {
            p += 1;
            hit |= pattern[p] == c;
        } else if at(pattern, p) == b']' {
            break;
        } else if remaining == 0 {
            p -= 1;
            break;
        } else if remaining >= 3 && pattern[p + 1] == b'-' {
            // C compares `char`, which is signed on the platforms Redis ships for.
            let (mut lo, mut hi) = (pattern[p] as i8, pattern[p + 2] as i8);
            if lo > hi {
                std::mem::swap(&mut lo, &mut hi);
            }
            p += 2;
            hit |= (c as i8) >= lo && (c as i8) <= hi;
        } else {
            hit |= pattern[p] == c;
        }
        p += 1;
    }
    (hit != not, p)
}

/// A literal byte at `pattern[p]` (a `\\` takes the next one as it is, unless
/// it ends the pattern) against `c`: where it ends, if it matches.
fn literal(pattern: &[u8], mut p: usize, c: u8) -> Option<usize> {
    if pattern[p] == b'\\' && pattern.len() - p >= 2 {
        p += 1;
    }
    (pattern[p] == c).then_some(p)
}

#[cfg(test)]
mod tests {
    use super::matches;

    fn m(p: &str, k: &str) -> bool {
        matches(p.as_bytes(), k.as_bytes())
    }

    #[test]
    fn stars_and_questions() {
        assert!(m("*", ""), "SCAN's shortcut for a lone star");
        assert!(
            !m("**", ""),
            "without the shortcut the empty key does not match"
        );
        assert!(m("*", "anything"));
        assert!(m("user:*", "user:1"));
        assert!(m("user:*", "user:"));
        assert!(!m("user:*", "use"));
        assert!(m("a*b*c", "a-x-b-y-c"));
        assert!(!m("a*b*c", "a-x-b-y-d"));
        assert!(m("h?llo", "hello"));
        assert!(!m("h?llo", "hllo"));
        assert!(m("**a", "ba"));
    }

    #[test]
    fn classes_ranges_and_negation() {
        assert!(m("h[ae]llo", "hallo"));
        assert!(!m("h[ae]llo", "hillo"));
        assert!(m("h[^e]llo", "hallo"));
        assert!(!m("h[^e]llo", "hello"));
        assert!(m("h[a-b]llo", "hbllo"));
        assert!(m("h[b-a]llo", "hallo"), "reversed ranges are swapped");
        assert!(m("[\\]]", "]"));
        assert!(
            m("x[abc", "xa"),
            "an unterminated class ends at the pattern's end"
        );
    }

    #[test]
    fn escapes_are_literal() {
        assert!(m("a\\*b", "a*b"));
        assert!(!m("a\\*b", "axb"));
        assert!(m("a\\?", "a?"));
        assert!(m("a\\", "a\\"), "a trailing backslash matches itself");
    }

    #[test]
    fn many_stars_against_a_long_key_neither_overflow_nor_crawl() {
        // The recursive matcher overflowed the stack (SIGSEGV) on this one.
        let key = "a".repeat(100_000);
        let pat = "a*".repeat(300_000) + "b";
        let t = std::time::Instant::now();
        assert!(!m(&pat, &key));
        assert!(!m(&("*a".repeat(300_000) + "b"), &key));
        assert!(t.elapsed() < std::time::Duration::from_secs(1));
    }

    #[test]
    fn more_than_1000_nested_stars_match_nothing_as_in_redis() {
        // Seen on redis-server 7.0.15 (Debian, with the CVE-2024-31228 cap): SCAN MATCH
        // finds this key with 1000 such stars and not with 1001.
        let key = "a".repeat(1100);
        assert!(m(&("a*".repeat(1000) + "a"), &key));
        assert!(!m(&("a*".repeat(1001) + "a"), &key));
        assert!(m(&("a*".repeat(1001)), &key), "a trailing star never nests");
    }

    /// The C code's recursion as it is, once per star, over the same
    /// star-free [`step`](super::step), for small inputs.
    fn reference(pattern: &[u8], string: &[u8], skip: &mut bool, nesting: usize) -> bool {
        if nesting > 1000 {
            return false;
        }
        match super::step(pattern, string, 0, 0) {
            super::Step::Done(matched) => matched,
            super::Step::Star { rest, at } => {
                for s in at..string.len() {
                    if reference(&pattern[rest..], &string[s..], skip, nesting + 1) {
                        return true;
                    }
                    if *skip {
                        return false;
                    }
                }
                *skip = true;
                false
            }
        }
    }

    #[test]
    fn agrees_with_the_recursive_c_code_on_random_inputs() {
        let mut seed = 20261125u32;
        let mut rand = move |n: usize| {
            seed = seed.wrapping_mul(1664525).wrapping_add(1013904223);
            (seed >> 8) as usize % n
        };
        let key_bytes = b"abx*?[]^-\\\xe9:";
        let parts: &[&[u8]] = &[
            b"a",
            b"b",
            b"x",
            b"*",
            b"**",
            b"?",
            b"[ab]",
            b"[^a]",
            b"[a-c]",
            b"[c-a]",
            b"[\\]]",
            b"\\*",
            b"\\",
            b"[",
            b"]",
            b"^",
            b"-",
            b"\xe9",
            b"[\x80-\xff]",
            b"[a",
        ];
        for _ in 0..200_000 {
            let key: Vec<u8> = (0..rand(8))
                .map(|_| key_bytes[rand(key_bytes.len())])
                .collect();
            let pat: Vec<u8> = (0..1 + rand(6))
                .flat_map(|_| parts[rand(parts.len())].to_vec())
                .collect();
            let want = pat == b"*" || reference(&pat, &key, &mut false, 0);
            assert_eq!(
                super::matches(&pat, &key),
                want,
                "{:?} vs {:?}",
                String::from_utf8_lossy(&pat),
                String::from_utf8_lossy(&key)
            );
        }
    }

    #[test]
    fn pathological_pattern_is_not_exponential() {
        let key = "a".repeat(60);
        let pat = "a*".repeat(30) + "b";
        assert!(!m(&pat, &key));
    }
}
