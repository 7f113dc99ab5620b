//! The moka tier: JSON text per key, weighed in bytes, each entry with its own deadline.
//!
//! One type serves both `'memory'` mode (where it is the whole cache) and the
//! L1 in front of Redis. Values stay JSON text so every read parses a fresh
//! object and callers never share one.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::notification::RemovalCause;
use moka::sync::Cache;
use moka::Expiry;

use crate::board::Board;
use crate::glob;
use crate::stats::Counters;

pub struct Entry {
    pub json: Arc<str>,
    /// Whether `json` is all ASCII, so it can cross to JavaScript as Latin-1.
    pub ascii: bool,
    /// When the entry stops being served.
    pub deadline: Instant,
    /// The store's generation when the entry was made; a `clear` since then hides it.
    generation: u64,
}

/// moka's per-entry expiry, at the value's [`Deadline`] (L1's entries,
/// `grace.rs`' copies), set again when a value replaces another.
pub struct ByDeadline;

/// A cached value's moment of expiry, for [`ByDeadline`].
pub trait Deadline {
    fn deadline(&self) -> Instant;
}

impl Deadline for Entry {
    fn deadline(&self) -> Instant {
        self.deadline
    }
}

impl<V: Deadline> Expiry<Arc<str>, Arc<V>> for ByDeadline {
    fn expire_after_create(&self, _key: &Arc<str>, v: &Arc<V>, at: Instant) -> Option<Duration> {
        Some(v.deadline().saturating_duration_since(at))
    }

    fn expire_after_update(
        &self,
        _key: &Arc<str>,
        v: &Arc<V>,
        at: Instant,
        _left: Option<Duration>,
    ) -> Option<Duration> {
        Some(v.deadline().saturating_duration_since(at))
    }
}

#[derive(Clone)]
pub struct Store {
    cache: Cache<Arc<str>, Arc<Entry>>,
    max_bytes: u64,
    /// Bumped by `clear`. moka's `invalidate_all` keeps an entry stamped in the
    /// same clock tick as the flush; comparing generations has no such tie.
    generation: Arc<AtomicU64>,
    /// Told after every change, for the JavaScript memo.
    board: Arc<Board>,
}

/// What one entry costs besides its key and JSON bytes: moka's bookkeeping
/// (about ten allocations: its own `Arc` of the key, value entry, entry info,
/// deque and timer-wheel nodes, hash-table bucket, frequency sketch share)
/// and our `Entry`. Measured with a counting allocator at glibc chunk sizes:
/// 446 B at 300,000 entries to 477 B at 5,000, where moka's fixed tables weigh
/// more (`tests::measured_overhead_per_entry`); rounded up so `maxBytes`
/// bounds real memory.
pub const ENTRY_OVERHEAD: u64 = 512;

/// What malloc really takes for `n` bytes: glibc adds an 8-byte header, rounds
/// to 16 and never hands out less than 32. Small values are mostly rounding.
fn chunk(n: u64) -> u64 {
    (n.saturating_add(8 + 15) & !15).max(32)
}

/// Weight of one entry: the memory it holds, key and JSON text in their
/// `Arc<str>` allocations (16 bytes of counters each) plus [`ENTRY_OVERHEAD`].
pub fn weight(key: &str, json: &str) -> u64 {
    ENTRY_OVERHEAD
        .saturating_add(chunk(16 + key.len() as u64))
        .saturating_add(chunk(16 + json.len() as u64))
}

/// A moka cache's entries and bytes after it has applied pending evictions and expiries.
pub fn settled_size<V: Clone + Send + Sync + 'static>(cache: &Cache<Arc<str>, V>) -> (u64, u64) {
    cache.run_pending_tasks();
    (cache.entry_count(), cache.weighted_size())
}

/// moka has fixed tables of its own and evicts in batches, after up to 64
/// writes, so a sixteenth of the bound is kept free for both.
fn capacity(max_bytes: u64) -> u64 {
    max_bytes - max_bytes / 16
}

impl Store {
    pub fn new(max_bytes: u64, counters: Arc<Counters>) -> Self {
        let board: Arc<Board> = Board::new().into();
        let told = board.clone();
        let cache = Cache::builder()
            .max_capacity(capacity(max_bytes))
            .weigher(|k: &Arc<str>, v: &Arc<Entry>| {
                u32::try_from(weight(k, &v.json)).unwrap_or(u32::MAX)
            })
            .expire_after(ByDeadline)
            .eviction_listener(move |k, _v, cause| {
                if cause == RemovalCause::Size {
                    Counters::add(&counters.local_evictions, 1);
                }
                told.changed(&k);
            })
            .build();
        Store {
            cache,
            max_bytes,
            generation: Arc::new(AtomicU64::new(0)),
            board,
        }
    }

    pub fn board(&self) -> &Arc<Board> {
        &self.board
    }

    /// The live entry for `key`, if any. moka hides expired entries itself; the
    /// deadline check makes that exact rather than eventual.
    pub fn get(&self, key: &str) -> Option<Arc<Entry>> {
        self.get_at(key, Instant::now())
    }

    /// [`Store::get`] as of `now`.
    pub fn get_at(&self, key: &str, now: Instant) -> Option<Arc<Entry>> {
        let entry = self.cache.get(key)?;
        (entry.generation == self.generation.load(Ordering::Acquire) && entry.deadline > now)
            .then_some(entry)
    }

    /// Whether `key` has an entry, without counting as a read (eviction is unaffected).
    pub fn holds(&self, key: &str) -> bool {
        self.cache.contains_key(key)
    }

    /// Stores `json` until `deadline`. An entry that alone outweighs the bound,
    /// or whose deadline has passed, is not stored (and any older one is dropped).
    pub fn insert(&self, key: &str, json: Arc<str>, deadline: Instant) {
        self.insert_at(self.generation.load(Ordering::Acquire), key, json, deadline);
    }

    /// `insert` as of generation `generation`: a `clear` after that point hides it.
    fn insert_at(&self, generation: u64, key: &str, json: Arc<str>, deadline: Instant) {
        let w = weight(key, &json);
        if w > capacity(self.max_bytes) || w > u32::MAX as u64 || deadline <= Instant::now() {
            self.cache.invalidate(key);
            self.board.changed(key);
            return;
        }
        self.cache.insert(
            Arc::from(key),
            Arc::new(Entry {
                ascii: json.is_ascii(),
                json,
                deadline,
                generation,
            }),
        );
        self.board.changed(key);
        // A batch of 64 such entries fits in half the headroom kept by `capacity`.
        if w > self.max_bytes / 2048 {
            self.cache.run_pending_tasks();
        }
    }

    pub fn remove(&self, key: &str) {
        self.cache.invalidate(key);
        self.board.changed(key);
    }

    /// Hides every entry at once, in constant time: the generation bump makes
    /// `get` ignore them (including one whose insert is landing right now) and
    /// moka frees them in its maintenance over the next calls. For L1 flushes,
    /// which run on the JavaScript thread or the one tokio worker: a walk of a
    /// large store there stalled every instance for half a second.
    pub fn hide_all(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.board.changed_all();
        self.cache.invalidate_all();
    }

    /// `close()`: hides every entry now and frees them on a thread of its own,
    /// so a large store does not stall the caller. Hidden by generation only:
    /// moka's iterator skips what `invalidate_all` marked, so after it the
    /// walk in `clear` found nothing and the entries stayed allocated.
    pub fn close(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.board.changed_all();
        let store = self.clone();
        let freeing = std::thread::Builder::new()
            .name("native-cache-close".into())
            .spawn(move || store.clear());
        if freeing.is_err() {
            self.clear();
        }
    }

    /// Empties the store and frees its entries before returning.
    ///
    /// The generation bump hides every entry at once, including one whose
    /// insert is landing right now. Then an explicit walk frees them: moka's
    /// `invalidate_all` only marks a timestamp and frees a few thousand
    /// entries per maintenance run.
    pub fn clear(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.board.changed_all();
        for (key, _) in self.cache.iter() {
            self.cache.invalidate(&*key);
        }
        // The walk skips entries moka already deems expired but still counts.
        self.cache.invalidate_all();
        self.cache.run_pending_tasks();
    }

    /// Drops every entry whose key matches the Redis glob `pattern`.
    ///
    /// An explicit walk rather than moka's `invalidate_entries_if`: that one
    /// decides by timestamp whether an entry predates the predicate, and an
    /// entry written within the same clock tick could escape it.
    pub fn remove_matching(&self, pattern: &str) {
        let pattern = pattern.as_bytes();
        for (key, _) in self.cache.iter() {
            if glob::matches(pattern, key.as_bytes()) {
                self.cache.invalidate(&*key);
                self.board.changed(&key);
            }
        }
    }

    /// Entries and bytes after moka has applied pending evictions and expiries.
    pub fn size(&self) -> (u64, u64) {
        settled_size(&self.cache)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(max: u64) -> Store {
        Store::new(max, Arc::new(Counters::default()))
    }

    fn later(ms: u64) -> Instant {
        Instant::now() + Duration::from_millis(ms)
    }

    #[test]
    fn serves_until_deadline_only() {
        let s = store(1 << 20);
        s.insert("k", Arc::from("1"), later(30));
        assert_eq!(&*s.get("k").unwrap().json, "1");
        std::thread::sleep(Duration::from_millis(40));
        assert!(s.get("k").is_none());
    }

    #[test]
    fn stays_within_max_bytes() {
        let s = store(10_000);
        let v: Arc<str> = Arc::from("x".repeat(100));
        for i in 0..1_000 {
            s.insert(&format!("key{i:04}"), v.clone(), later(60_000));
        }
        let (_, bytes) = s.size();
        assert!(bytes <= 10_000, "weighted size {bytes} exceeds the bound");
    }

    #[test]
    fn oversized_entry_is_not_stored_and_drops_the_old_one() {
        let s = store(50);
        s.insert("k", Arc::from("small"), later(60_000));
        s.insert("k", Arc::from("y".repeat(100)), later(60_000));
        assert!(s.get("k").is_none());
    }

    #[test]
    fn remove_matching_leaves_no_match_behind_across_refills() {
        let s = store(1 << 20);
        let keys: Vec<String> = (0..400).map(|i| format!("k{i}-*-")).collect();
        for round in 0..300 {
            for k in &keys {
                s.insert(k, Arc::from("1"), later(60_000));
            }
            let pattern = if round % 2 == 0 { "**" } else { "k1*" };
            s.remove_matching(pattern);
            let left: Vec<&String> = keys
                .iter()
                .filter(|k| glob::matches(pattern.as_bytes(), k.as_bytes()) && s.get(k).is_some())
                .collect();
            assert!(left.is_empty(), "round {round}: {left:?} escaped {pattern}");
        }
    }

    /// Counts the process's heap at glibc chunk sizes. Process-wide, because
    /// crossbeam's deferred frees (moka's hash table) run on whichever thread
    /// collects; so each measuring test runs alone in its own process.
    mod heap {
        use std::alloc::{GlobalAlloc, Layout, System};
        use std::sync::atomic::{AtomicI64, Ordering::Relaxed};

        pub struct Counting;

        static LIVE: AtomicI64 = AtomicI64::new(0);
        static PEAK: AtomicI64 = AtomicI64::new(0);

        fn chunk(l: &Layout) -> i64 {
            let n = l.size() + if l.align() > 16 { l.align() } else { 0 };
            if n >= 128 * 1024 {
                ((n + 16 + 4095) & !4095) as i64 // mmapped: whole pages
            } else {
                super::super::chunk(n as u64) as i64
            }
        }

        fn add(d: i64) {
            let live = LIVE.fetch_add(d, Relaxed) + d;
            PEAK.fetch_max(live, Relaxed);
        }

        unsafe impl GlobalAlloc for Counting {
            unsafe fn alloc(&self, l: Layout) -> *mut u8 {
                add(chunk(&l));
                System.alloc(l)
            }
            unsafe fn dealloc(&self, ptr: *mut u8, l: Layout) {
                add(-chunk(&l));
                System.dealloc(ptr, l)
            }
            unsafe fn realloc(&self, ptr: *mut u8, l: Layout, n: usize) -> *mut u8 {
                add(chunk(&Layout::from_size_align_unchecked(n, l.align())) - chunk(&l));
                System.realloc(ptr, l, n)
            }
        }

        pub fn live() -> i64 {
            LIVE.load(Relaxed)
        }

        /// Starts a peak measurement; returns the baseline.
        pub fn reset_peak() -> i64 {
            PEAK.store(live(), Relaxed);
            live()
        }

        pub fn peak() -> i64 {
            PEAK.load(Relaxed)
        }

        /// Runs `body` here when this process runs the test `name` alone; otherwise
        /// runs that test alone in a fresh copy of this binary and checks it passed.
        pub fn alone(name: &str, body: impl FnOnce()) {
            const CHILD: &str = "NATIVE_CACHE_HEAP_TEST";
            if std::env::var_os(CHILD).is_some() {
                return body();
            }
            let exe = std::env::current_exe().expect("the test binary's path");
            let out = std::process::Command::new(exe)
                .args([name, "--exact", "--test-threads=1", "--nocapture"])
                .env(CHILD, "1")
                .output()
                .expect("run the test binary");
            let text = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success() && text.contains("1 passed"), "{text}");
        }
    }

    #[global_allocator]
    static HEAP: heap::Counting = heap::Counting;

    fn fill(s: &Store, n: usize, value: &str) {
        for i in 0..n {
            s.insert(&format!("key:{i:08}"), Arc::from(value), later(600_000));
        }
    }

    #[test]
    fn measured_overhead_per_entry() {
        heap::alone("store::tests::measured_overhead_per_entry", || {
            let value = "x".repeat(50);
            for n in [5_000usize, 100_000, 300_000] {
                let before = heap::live();
                let s = store(u64::MAX >> 1);
                fill(&s, n, &value);
                s.size();
                let payload = chunk(16 + 12) + chunk(16 + 50);
                let per_entry = (heap::live() - before) as u64 / n as u64 - payload;
                eprintln!("{n} entries: {per_entry} B of bookkeeping each");
                assert!(
                    per_entry <= ENTRY_OVERHEAD,
                    "{n} entries: {per_entry} B of bookkeeping each, ENTRY_OVERHEAD says {ENTRY_OVERHEAD}"
                );
            }
        });
    }

    #[test]
    fn real_memory_stays_within_max_bytes() {
        heap::alone("store::tests::real_memory_stays_within_max_bytes", || {
            for (max, len) in [(16u64 << 20, 50usize), (64 << 20, 50), (16 << 20, 2_000)] {
                let value = "x".repeat(len);
                let base = heap::reset_peak();
                let s = store(max);
                fill(&s, 1_000_000 * 50 / len, &value);
                let (entries, bytes) = s.size();
                let peak = (heap::peak() - base) as u64;
                eprintln!("bound {max}, {len}-byte values: {entries} entries, peak heap {peak}");
                assert!(
                    bytes <= max && entries > 5_000,
                    "{entries} entries, {bytes} B"
                );
                assert!(
                    peak <= max,
                    "values of {len} B under a {max} B bound peaked at {peak} B of real heap"
                );
            }
        });
    }

    #[test]
    fn clear_frees_every_entry_at_once() {
        heap::alone("store::tests::clear_frees_every_entry_at_once", || {
            let value = "x".repeat(50);
            let before = heap::live();
            let s = store(1 << 30);
            let empty = heap::live() - before;
            fill(&s, 300_000, &value);
            s.clear();
            let left = heap::live() - before - empty;
            assert_eq!(s.cache.entry_count(), 0);
            assert!(left < 1 << 20, "{left} B still held after clear");
        });
    }

    #[test]
    fn close_frees_every_entry_soon() {
        heap::alone("store::tests::close_frees_every_entry_soon", || {
            let value = "x".repeat(50);
            let before = heap::live();
            let s = store(1 << 30);
            let empty = heap::live() - before;
            fill(&s, 300_000, &value);
            s.close();
            assert!(s.get("key:00000001").is_none(), "served after close()");
            // Freed on close()'s own thread: wait for it without touching the store.
            let started = Instant::now();
            let mut left = heap::live() - before - empty;
            while left >= 1 << 20 && started.elapsed() < Duration::from_secs(10) {
                std::thread::sleep(Duration::from_millis(10));
                left = heap::live() - before - empty;
            }
            assert!(left < 1 << 20, "{left} B still held 10 s after close()");
        });
    }

    /// An insert made before `empty` ran but landing at or after it. moka's
    /// `invalidate_all` spares an entry stamped in its own clock tick
    /// (`entry_ts < valid_after` is false); its clock cannot be stopped from
    /// here, and back-to-back inserts and flushes never tied in 100,000
    /// rounds on this machine's clock, so the insert is stamped explicitly.
    fn survives_an_insert_stamped_before(empty: fn(&Store)) -> bool {
        let s = store(1 << 20);
        let before = s.generation.load(Ordering::Acquire);
        empty(&s);
        s.insert_at(before, "k", Arc::from("1"), later(60_000));
        s.get("k").is_some()
    }

    #[test]
    fn hide_all_hides_an_insert_stamped_before_it() {
        // The L1 flush path (no freeing walk).
        assert!(
            !survives_an_insert_stamped_before(Store::hide_all),
            "an insert from before hide_all() survived it"
        );
    }

    #[test]
    fn clear_hides_an_insert_stamped_before_it() {
        assert!(
            !survives_an_insert_stamped_before(Store::clear),
            "an insert from before clear() survived it"
        );
        let s = store(1 << 20);
        for i in 0..100_000 {
            let k = format!("k{}", i % 64);
            s.insert(&k, Arc::from("1"), later(60_000));
            s.clear();
            assert!(s.get(&k).is_none(), "round {i}: {k} survived clear()");
        }
    }

    #[test]
    fn hostile_keys_do_not_panic() {
        let s = store(1 << 20);
        let huge = "k".repeat(10 << 20);
        for k in ["", huge.as_str()] {
            s.insert(k, Arc::from("1"), later(60_000));
            s.get(k);
            s.remove_matching(&("a*".repeat(300_000) + "b"));
            s.remove_matching("");
            s.remove(k);
        }
        s.insert(&"a".repeat(100_000), Arc::from("1"), later(60_000));
        s.remove_matching(&("a*".repeat(300_000) + "b"));
        assert!(s.get(&"a".repeat(100_000)).is_some());
        s.remove_matching(&("a*".repeat(100) + "a"));
        assert!(s.get(&"a".repeat(100_000)).is_none());
        s.insert(
            "k",
            Arc::from("1"),
            Instant::now() + Duration::from_secs(u32::MAX as u64),
        );
        assert!(s.get("k").is_some());
    }

    #[test]
    fn remove_matching_uses_redis_globs() {
        let s = store(1 << 20);
        for k in ["user:1", "user:2", "post:1"] {
            s.insert(k, Arc::from("1"), later(60_000));
        }
        s.remove_matching("user:*");
        assert!(s.get("user:1").is_none() && s.get("user:2").is_none());
        assert!(s.get("post:1").is_some());
    }
}
