//! Redis' glob matcher (`stringmatchlen` in Redis' util.c), byte for byte.
//!
//! `'memory'` mode and the L1 purge of `invalidatePattern` must agree with
//! `SCAN MATCH` on a real server, so this follows the C code's quirks: bytes,
//! not characters; signed-char comparison in ranges; reversed ranges swapped;
//! an unterminated `[` class ends at the pattern's end.

/// True when `SCAN MATCH pattern` would return `key`. SCAN skips matching for
/// a lone `*` (which `stringmatchlen` itself would not match with `""`).
pub fn matches(pattern: &[u8], key: &[u8]) -> bool {
    if pattern == b"*" {
        return true;
    }
    let mut skip_longer = false;
    match_impl(pattern, key, &mut skip_longer)
}

/// The byte at `i`, or NUL past the end, as the C code reads its NUL-terminated buffer.
fn at(s: &[u8], i: usize) -> u8 {
    s.get(i).copied().unwrap_or(0)
}

fn match_impl(pattern: &[u8], string: &[u8], skip_longer: &mut bool) -> bool {
    let (mut p, mut s) = (0usize, 0usize);
    let (plen, slen) = (pattern.len(), string.len());
    while p < plen && s < slen {
        match pattern[p] {
            b'*' => {
                while p + 1 < plen && pattern[p + 1] == b'*' {
                    p += 1;
                }
                if p + 1 == plen {
                    return true;
                }
                while s < slen {
                    if match_impl(&pattern[p + 1..], &string[s..], skip_longer) {
                        return true;
                    }
                    if *skip_longer {
                        return false;
                    }
                    s += 1;
                }
                // No match for the rest from anywhere: earlier stars cannot help either.
                *skip_longer = true;
                return false;
            }
            b'?' => s += 1,
            b'[' => {
                p += 1;
                let not = at(pattern, p) == b'^';
                if not {
                    p += 1;
                }
                let c = string[s];
                let mut hit = false;
                loop {
                    let remaining = plen.saturating_sub(p);
                    if at(pattern, p) == b'\\' && remaining >= 2 {
                        p += 1;
                        if pattern[p] == c {
                            hit = true;
                        }
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
                        if (c as i8) >= lo && (c as i8) <= hi {
                            hit = true;
                        }
                    } else if pattern[p] == c {
                        hit = true;
                    }
                    p += 1;
                }
                if not {
                    hit = !hit;
                }
                if !hit {
                    return false;
                }
                s += 1;
            }
            b'\\' => {
                if plen - p >= 2 {
                    p += 1;
                }
                if pattern[p] != string[s] {
                    return false;
                }
                s += 1;
            }
            other => {
                if other != string[s] {
                    return false;
                }
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
    p >= plen && s == slen
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
    fn pathological_pattern_is_not_exponential() {
        let key = "a".repeat(60);
        let pat = "a*".repeat(30) + "b";
        assert!(!m(&pat, &key));
    }
}
