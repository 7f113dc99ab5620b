//! What the JavaScript memo reads to know its copies are still good.
//!
//! A hit that crosses into Rust costs about 390 ns (`benchmark/hitpath.mjs`);
//! a JavaScript `Map` lookup a few tens. `index.js` keeps copies of recently
//! hit entries and serves them without crossing while this board, memory that
//! Rust writes and JavaScript reads through typed arrays, says nothing changed:
//! the key's version (a hash slot's, bumped after every change to a key in
//! that slot), the store's epoch (bumped after every flush), the lease (the
//! gate's "serve until") and the entry's own deadline.
//!
//! Layout (byte offsets; exported by [`board_layout`], which the memo's
//! typed-array views in `lib/memo.js` are built from):
//! 0 `open_until` f64, 8 scratch deadline f64, 16 scratch slot u32,
//! 20 scratch version u32, 24 scratch epoch u32, 28 `epoch` u32,
//! 32 the `SLOTS` versions u32.

use std::mem::offset_of;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use napi_derive::napi;
use std::sync::OnceLock;
use std::time::Instant;

/// The memo's share of `maxBytes` (a sixteenth, at most 4 MiB), taken off
/// the store's budget so `maxBytes` bounds both.
pub fn memo_bytes(max_bytes: u64) -> u64 {
    (max_bytes / 16).min(4 << 20)
}

/// Hash slots of the versions: a collision only costs a needless re-crossing.
pub const SLOTS: usize = 4096;

#[repr(C, align(8))]
pub struct Board {
    /// Milliseconds on [`ms`]'s clock until which L1 may serve (0: not now).
    open_until: AtomicU64,
    /// What the last hit-path lookup saw, for JavaScript to read right after it.
    scratch_deadline: AtomicU64,
    scratch_slot: AtomicU32,
    scratch_version: AtomicU32,
    scratch_epoch: AtomicU32,
    epoch: AtomicU32,
    versions: [AtomicU32; SLOTS],
}

/// The process's clock base, shared with the gate's lease arithmetic.
pub fn base() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

/// `t` in milliseconds since [`base`], as JavaScript compares it.
pub fn ms(t: Instant) -> f64 {
    t.saturating_duration_since(base()).as_secs_f64() * 1000.0
}

/// The slot of `key`: FNV-1a, cheap for the short keys a cache sees.
pub fn slot(key: &str) -> usize {
    let mut h: u32 = 0x811c_9dc5;
    for b in key.bytes() {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    (h as usize) & (SLOTS - 1)
}

impl Board {
    pub fn new() -> Box<Self> {
        Box::new(Board {
            open_until: AtomicU64::new(0f64.to_bits()),
            scratch_deadline: AtomicU64::new(0),
            scratch_slot: AtomicU32::new(0),
            scratch_version: AtomicU32::new(0),
            scratch_epoch: AtomicU32::new(0),
            epoch: AtomicU32::new(0),
            versions: [const { AtomicU32::new(0) }; SLOTS],
        })
    }

    /// After a change to `key` (never before it: a copy taken in between must
    /// not carry the new version).
    pub fn changed(&self, key: &str) {
        self.versions[slot(key)].fetch_add(1, Ordering::Release);
    }

    /// After a change to every key.
    pub fn changed_all(&self) {
        self.epoch.fetch_add(1, Ordering::Release);
    }

    pub fn set_open_until(&self, ms: f64) {
        self.open_until.store(ms.to_bits(), Ordering::Release);
    }

    /// Read before a lookup of `key`: a change after this makes the copy stale.
    pub fn note_lookup(&self, key: &str) {
        let s = slot(key);
        self.scratch_slot.store(s as u32, Ordering::Relaxed);
        self.scratch_epoch
            .store(self.epoch.load(Ordering::Acquire), Ordering::Relaxed);
        self.scratch_version
            .store(self.versions[s].load(Ordering::Acquire), Ordering::Relaxed);
    }

    /// The deadline of the entry the lookup found.
    pub fn note_deadline(&self, deadline: Instant) {
        self.scratch_deadline
            .store(ms(deadline).to_bits(), Ordering::Relaxed);
    }

    pub fn as_ptr(&self) -> *const u8 {
        (self as *const Board).cast()
    }

    pub const LEN: usize = std::mem::size_of::<Board>();
}

/// Where JavaScript finds each field: indexes into a `Float64Array` over the
/// board's first `f64_count` slots and a `Uint32Array` from byte `u32_offset`.
#[napi(object)]
pub struct BoardLayout {
    pub bytes: u32,
    pub f64_count: u32,
    pub u32_offset: u32,
    pub open_until: u32,
    pub scratch_deadline: u32,
    pub scratch_slot: u32,
    pub scratch_version: u32,
    pub scratch_epoch: u32,
    pub epoch: u32,
    pub versions: u32,
    pub slots: u32,
}

/// The board's layout, read once by the memo (`lib/memo.js`).
#[napi]
pub fn board_layout() -> BoardLayout {
    let u32_offset = offset_of!(Board, scratch_slot);
    let f64_at = |offset: usize| (offset / 8) as u32;
    let u32_at = |offset: usize| ((offset - u32_offset) / 4) as u32;
    BoardLayout {
        bytes: Board::LEN as u32,
        f64_count: (u32_offset / 8) as u32,
        u32_offset: u32_offset as u32,
        open_until: f64_at(offset_of!(Board, open_until)),
        scratch_deadline: f64_at(offset_of!(Board, scratch_deadline)),
        scratch_slot: u32_at(offset_of!(Board, scratch_slot)),
        scratch_version: u32_at(offset_of!(Board, scratch_version)),
        scratch_epoch: u32_at(offset_of!(Board, scratch_epoch)),
        epoch: u32_at(offset_of!(Board, epoch)),
        versions: u32_at(offset_of!(Board, versions)),
        slots: SLOTS as u32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_what_index_js_reads() {
        let b = Board::new();
        let at = |p: *const u8| p as usize - b.as_ptr() as usize;
        assert_eq!(at((&b.open_until as *const AtomicU64).cast()), 0);
        assert_eq!(at((&b.scratch_deadline as *const AtomicU64).cast()), 8);
        assert_eq!(at((&b.scratch_slot as *const AtomicU32).cast()), 16);
        assert_eq!(at((&b.scratch_version as *const AtomicU32).cast()), 20);
        assert_eq!(at((&b.scratch_epoch as *const AtomicU32).cast()), 24);
        assert_eq!(at((&b.epoch as *const AtomicU32).cast()), 28);
        assert_eq!(at((&b.versions[0] as *const AtomicU32).cast()), 32);
        assert_eq!(Board::LEN, 32 + 4 * SLOTS);
        let l = board_layout();
        assert_eq!(
            (l.open_until, l.scratch_deadline, l.f64_count, l.u32_offset),
            (0, 1, 2, 16)
        );
        assert_eq!(
            (
                l.scratch_slot,
                l.scratch_version,
                l.scratch_epoch,
                l.epoch,
                l.versions
            ),
            (0, 1, 2, 3, 4)
        );
    }

    #[test]
    fn a_change_after_the_lookup_moves_the_version_it_noted() {
        let b = Board::new();
        b.note_lookup("k");
        let noted = b.scratch_version.load(Ordering::Relaxed);
        b.changed("k");
        assert_ne!(b.versions[slot("k")].load(Ordering::Relaxed), noted);
        let epoch = b.scratch_epoch.load(Ordering::Relaxed);
        b.changed_all();
        assert_ne!(b.epoch.load(Ordering::Relaxed), epoch);
    }
}
