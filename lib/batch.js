'use strict'

// Call-order batching: the calls one event-loop turn makes go to Rust as one
// batch (sent on process.nextTick, or at once when it reaches BATCH_SPLIT
// calls), and their promises settle in call order, as ioredis' do.
const { CODES } = require('./errors.js')

/** Calls in one native batch at most before it is sent. */
const BATCH_SPLIT = 16
const EMPTY = []

class Batcher {
  #native
  #memory
  #log
  /** The batch this event-loop turn is filling. */
  #pending = null
  /**
   * Batches sent and not yet settled, oldest first. Native replies can arrive
   * out of order (each batch's promise is its own task), so a batch Redis
   * answered settles only after every earlier one. A batch failed by its own
   * deadline settles at once.
   */
  #sent = []

  /** `log(level, message, meta)` receives each failure. */
  constructor(native, memory, log) {
    this.#native = native
    this.#memory = memory
    this.#log = log
  }

  /**
   * The promise of the call just queued natively (`native.queue*`): `settle`
   * maps its reply `(ok, num, texts, t)` (texts[t] is its first text) to the
   * value. In 'memory' mode it runs at once.
   */
  call(settle) {
    if (this.#memory) {
      const r = this.#native.runSync()
      return Promise.resolve(settle(r.ok[0], r.nums[0], r.texts, r.starts[0], r.errors[0]?.code))
    }
    let waiters = this.#pending
    if (waiters === null) {
      waiters = this.#pending = []
      process.nextTick(this.flush)
    }
    const promise = new Promise((resolve) => waiters.push({ settle, resolve }))
    // A turn with many calls goes as several batches: the first is out (and
    // Redis at work) while this thread is still making the rest.
    if (waiters.length >= BATCH_SPLIT) this.flush()
    return promise
  }

  flush = () => {
    const waiters = this.#pending
    if (waiters === null) return
    this.#pending = null
    const batch = { waiters, replies: null, done: false }
    this.#sent.push(batch)
    let replies
    try {
      replies = this.#native.flush()
    } catch (err) {
      this.#settled(batch, null, err)
      return
    }
    replies.then(
      (r) => this.#settled(batch, r, null),
      (err) => this.#settled(batch, null, err),
    )
  }

  /** Settles `batch` (at once if Redis had no part in it), then every answered batch at the head of the queue. */
  #settled(batch, replies, error) {
    const sent = this.#sent
    if (error !== null || replies.unanswered) {
      // Nothing from Redis in it: it waits for no earlier batch (a call keeps its own commandTimeoutMs).
      sent.splice(sent.indexOf(batch), 1)
      if (error === null) this.#dispatch(batch.waiters, replies)
      else this.#fail(batch.waiters, error)
    } else {
      batch.replies = replies
      batch.done = true
    }
    while (sent.length > 0 && sent[0].done) {
      const b = sent.shift()
      this.#dispatch(b.waiters, b.replies)
    }
  }

  #dispatch(waiters, r) {
    for (const e of r.errors) this.#log('error', e.message, { code: e.code })
    this.drainLogs()
    const { ok, nums, texts, starts, errors } = r
    for (let i = 0; i < waiters.length; i++) {
      const w = waiters[i]
      // A failed call's code, for the tracing channel (lib/tracing.js).
      const code = ok[i] ? undefined : errors.find((e) => e.op === i)?.code
      w.resolve(w.settle(ok[i], nums[i], texts, starts[i], code))
    }
  }

  #fail(waiters, err) {
    this.#log('error', 'Cache error: native call failed', { error: err, code: CODES.protocol })
    for (const w of waiters) w.resolve(w.settle(false, 0, EMPTY, 0, CODES.protocol))
  }

  /** Messages Rust kept for the logger (connects, failovers). */
  drainLogs() {
    for (const { level, message, code } of this.#native.drainLogs()) this.#log(level, message, { code })
  }
}

module.exports = { Batcher }
