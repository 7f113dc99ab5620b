'use strict'

// The distributed leases (`lock: 'distributed'`) this instance holds: taken
// on `${key}:__lock`, renewed while the factory runs, released once, and all
// released on close() so waiters elsewhere need not wait for them to lapse.
const { DEFAULT_LOCK_LEASE_MS: LOCK_LEASE_MS } = require('../native.js')

const asUndefined = () => undefined

/** The key holding `key`'s lease: beside the main key, whose bytes and TTL stay the original's. */
const lockKey = (key) => `${key}:__lock`

class Leases {
  #native
  #call
  #closed
  /** Lock key -> token, for each lease held. */
  #held = new Map()

  constructor(native, call, closed) {
    this.#native = native
    this.#call = call
    this.#closed = closed
  }

  /** Queues an attempt to take `lk` (its promise answers whether it was taken, and Redis' ok). */
  take(lk, token) {
    this.#native.queueLockTake(lk, token, LOCK_LEASE_MS)
    return this.#call((ok, num) => {
      if (num === 1) this.#held.set(lk, token)
      return { ok, taken: num === 1 }
    })
  }

  /** Renews `lk` every third of the lease until the returned function is called. */
  renewing(lk, token) {
    const timer = setInterval(() => {
      if (this.#closed()) return
      this.#native.queueLockRenew(lk, token, LOCK_LEASE_MS)
      this.#call(asUndefined)
    }, LOCK_LEASE_MS / 3)
    // A factory that never settles keeps the process alive by itself, or not: the lease must not.
    timer.unref?.()
    return () => clearInterval(timer)
  }

  /** Releases `lk` if this instance still holds it with `token` (once; after close(), close() has). */
  release(lk, token) {
    if (this.#held.get(lk) !== token) return
    this.#held.delete(lk)
    if (this.#closed()) return
    this.#native.queueLockRelease(lk, token)
    this.#call(asUndefined)
  }

  /** close(): queues the release of every lease held; the caller flushes them before closing. */
  releaseAll() {
    for (const [lk, token] of this.#held) {
      this.#native.queueLockRelease(lk, token)
      this.#call(asUndefined)
    }
    this.#held.clear()
  }
}

module.exports = { Leases, lockKey }
