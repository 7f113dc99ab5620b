'use strict'

// getOrSet's `lock: 'distributed'` (lib/getorset.js): the lease rounds after a
// miss, and the holder's run. `parts`: what they use of the engine.
const { randomUUID } = require('node:crypto')
const { Note } = require('../native.js')
const { lockKey } = require('./lease.js')

/** A lock waiter re-checks at least this often (doubling from LOCK_POLL_MIN_MS), woken or not. */
const LOCK_POLL_MIN_MS = 50
const LOCK_POLL_MAX_MS = 500
/** A GET+PTTL reply as a read: `{ ok, text, pttl }`. */
const asRead = (ok, num, texts, t) => ({ ok, text: texts[t] ?? null, pttl: num })

/**
 * `lock: 'distributed'` after a miss: takes the lease on `${k}:__lock`
 * (`SET NX PX`) and runs the factory, or waits for the holder's value. Each
 * round registers a waiter for tracking pushes on the key and the lock key
 * (both read in that round, so the server tracks them for this connection),
 * then sends the lease attempt and a re-read in one pipeline: a lease taken
 * after the holder wrote and released still sees its value. Between rounds:
 * a push, or a poll delay (50 ms doubling to 500 ms) when none comes.
 * Redis failing answers as a plain getOrSet does: the copy, else the factory.
 * Each round's read is guarded anew: the holder's own write is no reason to drop ours.
 */
async function fillLocked(parts, k, source, o, flight, state) {
  const { host, leases } = parts
  const native = host.native
  const lk = lockKey(k)
  const token = randomUUID()
  const deadline = o.hard > 0 ? Date.now() + o.hard : Infinity
  let delay = LOCK_POLL_MIN_MS
  let waited = false
  for (;;) {
    // No caller waits any more: no further lease attempt.
    if (flight.abandoned) throw flight.reason
    const left = deadline - Date.now()
    const woken = native.waitChange([k, lk], Math.min(delay, Math.max(left, 0)))
    native.releaseGuard(state.guard)
    const guard = (state.guard = native.guardKey(k))
    const take = leases.take(lk, token)
    native.queueGetTtl(k, guard)
    const read = await host.call(asRead)
    state.seen = read.text
    const { ok, taken } = await take
    const found = parts.found(k, read, o)
    if (found !== null) {
      if (taken) leases.release(lk, token)
      return found
    }
    if (taken) return produceLocked(parts, k, source, o, flight, lk, token, guard, read.text)
    let reason = null
    if (!ok || !read.ok || host.closed()) reason = 'redis-unavailable'
    else if (Date.now() >= deadline) reason = 'lock-timeout'
    if (reason !== null) {
      // Redis failed mid-lock, or timeout.hard was spent waiting: the copy, else a run of this caller's own.
      return parts.stale(k, o, reason) ?? parts.produce(k, source, o, flight, guard, read.text)
    }
    if (!waited) {
      waited = true
      native.note(Note.LockWait, 1)
      flight.waiting()
    }
    if (!(await woken)) delay = Math.min(delay * 2, LOCK_POLL_MAX_MS)
  }
}

/** The lease holder's run: renews the lease while the factory runs, releases it after the write. */
async function produceLocked(parts, k, source, o, flight, lk, token, guard, seen) {
  const leases = parts.leases
  const stop = leases.renewing(lk, token)
  try {
    // Released right behind the write (same batch), before the callers are answered.
    return await parts.produce(k, source, o, flight, guard, seen, { settled: stop, written: () => leases.release(lk, token) })
  } finally {
    stop()
    leases.release(lk, token)
  }
}

module.exports = { fillLocked, asRead }
