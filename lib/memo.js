'use strict'

// The memo: copies of recently hit L1 entries, served in JavaScript without
// crossing into Rust while the board Rust writes says nothing changed.
const { localGet, localMget, localBoard, clockMs, boardLayout } = require('../native.js')

/** Indexes into the board's views, as Rust lays it out (`src/board.rs`). */
const LAYOUT = boardLayout()
// What the views below assume of it: the f64 fields first, then u32 fields up to the versions' end.
if (LAYOUT.u32Offset !== LAYOUT.f64Count * 8 || LAYOUT.bytes !== LAYOUT.u32Offset + 4 * (LAYOUT.versions + LAYOUT.slots)) {
  throw new Error(`@medianest/native-cache: the memo cannot read this board layout: ${JSON.stringify(LAYOUT)}`)
}
const { openUntil: OPEN_UNTIL, scratchDeadline: SCRATCH_DEADLINE, scratchSlot: SCRATCH_SLOT } = LAYOUT
const { scratchVersion: SCRATCH_VERSION, scratchEpoch: SCRATCH_EPOCH, epoch: EPOCH, versions: VERSIONS } = LAYOUT
/** The memo holds at most this many copies (half in each generation), in the bytes Rust sets aside for it (`NativeCache.memoBytes`). */
const MEMO_MAX_ENTRIES = 4096
/** A copy serves this many reads less one, then the next read crosses (and keeps a fresh copy). */
const MEMO_RECROSS_EVERY = 64
/** The memo judges whether its copies are being read again over this many crossings. */
const MEMO_WINDOW = 4096
/** While they are not, it keeps one crossing in this many. */
const MEMO_SPARSE_KEEP = 16
/** What a copy costs besides its key and text, measured (a Map entry in each generation, its record): about 180 bytes. */
const MEMO_COPY_BYTES = 224
/** An mget whose keys miss the memo crosses once per key up to this many misses (keeping copies), else once for all. */
const MEMO_MGET_CROSSINGS = 16

/**
 * Copies of recently hit L1 entries, served without crossing into Rust while
 * the board Rust writes says nothing changed: the key's version and the
 * store's epoch as they were before the lookup that made the copy, the lease
 * still running, the entry's deadline not reached. A crossing costs about
 * 390 ns (`benchmark/hitpath.mjs`), a `Map` lookup a few tens.
 */
class Memo {
  /**
   * Two generations instead of an LRU list: copies are kept in `#young`; when
   * it holds its half of the budget it becomes `#old` and the previous old one
   * is dropped whole; a copy read from `#old` moves back to `#young`. No Map is
   * ever iterated (dropping the oldest of one Map one at a time made V8 walk
   * its deleted slots: twice the hit time over 100,000 keys read in turn).
   */
  #young = new Map()
  #old = new Map()
  /** What the young generation's copies retain (see `cost`). */
  #youngBytes = 0
  #half
  #handle
  #f64
  #u32
  /** Added to `performance.now()` gives the board's clock (both monotonic). */
  #offset
  /** Hits served here since the last `takeHits()`. */
  hits = 0
  /** Reads the copies answered, and crossings, in this window of MEMO_WINDOW crossings. */
  #windowHits = 0
  #crossings = 0
  /** The last window's copies answered fewer reads than crossed: keep only one crossing in MEMO_SPARSE_KEEP. */
  #sparse = false

  /** A memo for the instance behind `handle`, or null where the runtime cannot share the board's memory. */
  static create(handle, maxBytes) {
    const board = localBoard(handle)
    return board === null ? null : new Memo(handle, board, maxBytes)
  }

  constructor(handle, board, maxBytes) {
    this.#handle = handle
    this.#f64 = new Float64Array(board, 0, LAYOUT.f64Count)
    this.#u32 = new Uint32Array(board, LAYOUT.u32Offset)
    this.#half = Math.floor(maxBytes / 2)
    // Read before the board's clock, so the offset errs late: the memo stops serving early, never late.
    const before = performance.now()
    this.#offset = clockMs() - before
  }

  /**
   * L1's text for `k`, or null: from a copy while it is current, else across
   * to Rust (and kept) through `cross` (`localGet`, or `localGetOrQueue`, which
   * also queues the Redis read when it answers null).
   */
  get(k, cross = localGet) {
    const copy = this.peek(k)
    if (copy !== undefined) return copy
    const text = cross(this.#handle, k)
    if (text !== null && this.#admit() && cost(k, text) <= this.#half) {
      // What the board said before that lookup: a change since makes the copy stale.
      const u32 = this.#u32
      const slot = u32[SCRATCH_SLOT] + VERSIONS
      this.#add(k, { t: text, s: slot, v: u32[SCRATCH_VERSION], g: u32[SCRATCH_EPOCH], d: this.#f64[SCRATCH_DEADLINE], n: MEMO_RECROSS_EVERY })
    }
    return text
  }

  /**
   * Whether to keep a copy of what just crossed. When the keys read are too
   * many for the memo (100,000 read in turn, say), copies are dropped before
   * they are read again and keeping them only costs; the memo then keeps one
   * crossing in MEMO_SPARSE_KEEP until its copies answer as many reads as cross.
   */
  #admit() {
    const n = ++this.#crossings
    if (n >= MEMO_WINDOW) {
      this.#sparse = this.#windowHits < n
      this.#windowHits = 0
      this.#crossings = 0
    }
    return !this.#sparse || n % MEMO_SPARSE_KEEP === 0
  }

  #add(k, e) {
    this.#young.set(k, e)
    this.#youngBytes += cost(k, e.t)
    if (this.#young.size >= MEMO_MAX_ENTRIES / 2 || this.#youngBytes > this.#half) {
      this.#old = this.#young
      this.#young = new Map()
      this.#youngBytes = 0
    }
  }

  /** The current copy's text for `k`, or undefined: never crosses. */
  peek(k) {
    let e = this.#young.get(k)
    let young = true
    if (e === undefined) {
      e = this.#old.get(k)
      if (e === undefined) return undefined
      young = false
    }
    const u32 = this.#u32
    // Every MEMO_RECROSS_EVERY-th read of a copy crosses anyway, so the store still sees the key used (TinyLFU).
    if (e.v === u32[e.s] && e.g === u32[EPOCH] && --e.n > 0) {
      const now = performance.now() + this.#offset
      if (now < this.#f64[OPEN_UNTIL] && now < e.d) {
        this.hits++
        this.#windowHits++
        if (!young) {
          this.#old.delete(k)
          this.#add(k, e)
        }
        return e.t
      }
    }
    if (young) {
      this.#young.delete(k)
      this.#youngBytes -= cost(k, e.t)
    } else this.#old.delete(k)
    return undefined
  }

  /** L1's texts for `list` (null where none): from copies, then one crossing per missed key for a few, else one for them all. */
  many(list) {
    const out = new Array(list.length)
    const missed = []
    for (let i = 0; i < list.length; i++) {
      const copy = this.peek(list[i])
      if (copy === undefined) missed.push(i)
      else out[i] = copy
    }
    if (missed.length > MEMO_MGET_CROSSINGS) {
      const texts = localMget(this.#handle, missed.length === list.length ? list : missed.map((i) => list[i]))
      for (let j = 0; j < missed.length; j++) out[missed[j]] = texts[j]
    } else {
      for (const i of missed) out[i] = this.get(list[i])
    }
    return out
  }

  takeHits() {
    const n = this.hits
    this.hits = 0
    return n
  }

  clear() {
    this.#young = new Map()
    this.#old = new Map()
    this.#youngBytes = 0
  }
}

/**
 * What a copy retains: its text and its key (each counted at two bytes a
 * character, as V8 keeps non-Latin-1 text) plus MEMO_COPY_BYTES.
 */
const cost = (key, text) => 2 * (key.length + text.length) + MEMO_COPY_BYTES

module.exports = { Memo, LAYOUT }
