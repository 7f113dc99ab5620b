'use strict'

// getOrSet's engine, one path for every form: the hit (L1 or the memo), the
// single flight (concurrent callers join one run), the miss read, the factory
// and its guarded write-back (stored only if nobody wrote or deleted the key
// since the miss was read: decided in Redis, `queueStoreIf`), fail-safe
// copies (`grace`), timeouts, eager refresh and the distributed lock.
// State Rust holds (copies, guards, counters) is asked of Rust, not mirrored.
const { randomUUID } = require('node:crypto')
const { Note } = require('../native.js')
const { CODES, TimeoutError, shortKey } = require('./errors.js')
const { Leases, lockKey } = require('./lease.js')
const { runOutcome } = require('./tracing.js')
const { parse, asUndefined, asBool } = require('./calls.js')

/** A lock waiter re-checks at least this often (doubling from LOCK_POLL_MIN_MS), woken or not. */
const LOCK_POLL_MIN_MS = 50
const LOCK_POLL_MAX_MS = 500
const NO_VALUE = Symbol('no value')
const IDLE_PHASE = { started() {}, settled() {} }
const asRead = (ok, num, texts, t) => ({ ok, text: texts[t] ?? null, pttl: num })

/** A joiner's own copy of a run's result: parsed from its text, or the value itself when JSON had none. */
const ownCopy = (r) => (typeof r.json === 'string' ? parse(r.json) : r.value)

/** A promise with its resolve function, for "the factory has started". */
function deferred() {
  const d = {}
  d.promise = new Promise((resolve) => (d.resolve = resolve))
  return d
}

class GetOrSet {
  /** See the constructor; the hit path's two are kept apart. */
  #host
  #native
  #local
  /** getOrSet runs in flight, by key: concurrent callers join instead of running the factory again. */
  #inflight = new Map()
  /**
   * Eager refreshes in flight, by key, apart from #inflight: only a caller that
   * finds nothing joins one; callers that can read the current value do not wait.
   */
  #refreshing = new Map()
  /** Leases this instance holds (`lock: 'distributed'`). */
  #leases

  /**
   * `host`: the instance's native half, `call(settle)` (lib/batch.js), `local(k)` (L1's text or null),
   * `log(level, message, meta)`, `memory`, `serialize(value, k)`, `closed()`.
   */
  constructor(host) {
    this.#host = host
    this.#native = host.native
    this.#local = host.local
    this.#leases = new Leases(host.native, host.call, host.closed)
  }

  /** A write of `k` by this instance: later callers start a run of their own (the old one will not store). */
  forget(k) {
    this.#inflight.delete(k)
    this.#refreshing.delete(k)
  }

  forgetAll() {
    this.#inflight.clear()
    this.#refreshing.clear()
  }

  /** One caller's getOrSet of `k` under policy `o` (lib/args.js); `trace`: a traced call's context (lib/tracing.js). */
  get(k, factory, o, trace) {
    const native = this.#native
    const text = this.#local(k)
    if (text !== null) {
      const value = parse(text)
      if (value !== null) {
        if (trace !== undefined) trace.outcome = 'l1'
        if (o.track && native.onHit(k, o.keepMs, o.refreshLeftMs)) this.#refresh(k, factory, o, text)
        return Promise.resolve(value)
      }
    }
    let run = this.#inflight.get(k)
    let answer
    // A run whose guard a write spoiled would answer an older value: not joined.
    if (run !== undefined && run.state.guard !== 0 && !native.guardFresh(run.state.guard)) run = undefined
    if (run !== undefined) {
      native.note(Note.Coalesced, 1)
      answer = run.then((r) => {
        // Redis was down and the run answered from the copy: not for a caller without grace, which runs its own.
        if (r.stale && o.graceMs === 0) {
          return this.#fill(k, factory, o, IDLE_PHASE, { guard: 0, seen: null }).then((mine) => {
            if (trace !== undefined) runOutcome(trace, mine, false)
            return mine.value
          })
        }
        if (trace !== undefined) runOutcome(trace, r, true)
        if (!r.stale) return ownCopy(r)
        native.note(Note.Failsafe, 1)
        return parse(r.json)
      })
    } else {
      // What the miss saw (absent, or text that is no value): the write-back expects it still there.
      const state = { guard: 0, seen: text }
      run = this.#start(k, state, (phase) => this.#fill(k, factory, o, phase, state))
      answer = run.then((r) => {
        if (trace !== undefined) runOutcome(trace, r, false)
        if (r.stale) native.note(Note.Failsafe, 1)
        if (r.refresh) this.#refresh(k, factory, o, r.json)
        // The caller that ran the factory gets its value itself, as with the original.
        return r.value
      })
    }
    return this.#bounded(k, run, answer, o)
  }

  /**
   * Registers a run for `k` so concurrent callers join it. `body(phase)`
   * calls `phase.started()` as the factory starts and `phase.settled()` when it
   * settles (callers' timeouts count only while the factory runs), and sets
   * `state.guard` to its write-back guard.
   */
  #start(k, state, body) {
    const started = deferred()
    const settled = deferred()
    const run = body({ started: started.resolve, settled: settled.resolve })
    run.started = started.promise
    run.settled = settled.promise
    run.state = state
    this.#inflight.set(k, run)
    const done = () => {
      if (this.#inflight.get(k) === run) this.#inflight.delete(k)
    }
    run.then(done, done)
    return run
  }

  /** The miss: Redis' value (or the fail-safe copy when Redis fails), else the factory's, stored under guard. */
  async #fill(k, factory, o, phase, state) {
    const native = this.#native
    // Taken before the read: a write of the key from here on wins over the factory's result.
    state.guard = native.guardKey(k)
    try {
      if (!this.#host.memory) {
        native.queueGetTtl(k, state.guard)
        const read = await this.#host.call(asRead)
        state.seen = read.text
        const found = this.#found(k, read, o)
        if (found !== null) return found
        // Redis could not be read: the copy rather than the factory, when there is one.
        const stale = read.ok ? null : this.#stale(k, o, 'redis-unavailable')
        if (stale !== null) return stale
      }
      const refresh = this.#refreshing.get(k)
      if (refresh !== undefined) {
        native.note(Note.Coalesced, 1)
        phase.started()
        const joined = refresh.then((r) => ({ json: r.json, value: ownCopy(r), stored: r.stored }))
        joined.then(phase.settled, phase.settled)
        return joined
      }
      if (o.distributed && !this.#host.memory) return await this.#fillLocked(k, factory, o, phase, state)
      return await this.#produce(k, factory, o, phase, state.guard, state.seen)
    } finally {
      // The latest guard (the lock's rounds take their own); a no-op once the write-back took it.
      native.releaseGuard(state.guard)
    }
  }

  /** A read's hit as a run's result (the copy kept, a refresh due?), or null. */
  #found(k, read, o) {
    const value = parse(read.text)
    if (value === null) return null
    if (o.track && !this.#host.closed()) this.#native.graceKeep(k, read.text, read.pttl, o.keepMs)
    const refresh = o.refreshLeftMs >= 0 && read.pttl >= 0 && read.pttl <= o.refreshLeftMs
    return { json: read.text, value, refresh, from: 'redis' }
  }

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
  async #fillLocked(k, factory, o, phase, state) {
    const native = this.#native
    const lk = lockKey(k)
    const token = randomUUID()
    const deadline = o.hard > 0 ? Date.now() + o.hard : Infinity
    let delay = LOCK_POLL_MIN_MS
    let waited = false
    for (;;) {
      const left = deadline - Date.now()
      const woken = native.waitChange([k, lk], Math.min(delay, Math.max(left, 0)))
      native.releaseGuard(state.guard)
      const guard = (state.guard = native.guardKey(k))
      const take = this.#leases.take(lk, token)
      native.queueGetTtl(k, guard)
      const read = await this.#host.call(asRead)
      state.seen = read.text
      const { ok, taken } = await take
      const found = this.#found(k, read, o)
      if (found !== null) {
        if (taken) this.#leases.release(lk, token)
        return found
      }
      if (taken) return this.#produceLocked(k, factory, o, phase, lk, token, guard, read.text)
      let reason = null
      if (!ok || !read.ok || this.#host.closed()) reason = 'redis-unavailable'
      else if (Date.now() >= deadline) reason = 'lock-timeout'
      if (reason !== null) {
        // Redis failed mid-lock, or timeout.hard was spent waiting: the copy, else a run of this caller's own.
        return this.#stale(k, o, reason) ?? this.#produce(k, factory, o, phase, guard, read.text)
      }
      if (!waited) {
        waited = true
        native.note(Note.LockWait, 1)
      }
      if (!(await woken)) delay = Math.min(delay * 2, LOCK_POLL_MAX_MS)
    }
  }

  /** The lease holder's run: renews the lease while the factory runs, releases it after the write. */
  async #produceLocked(k, factory, o, phase, lk, token, guard, seen) {
    const stop = this.#leases.renewing(lk, token)
    const settled = () => {
      stop()
      phase.settled()
    }
    try {
      // Released right behind the write (same batch), before the callers are answered.
      return await this.#produce(k, factory, o, { started: phase.started, settled }, guard, seen, () => this.#leases.release(lk, token))
    } finally {
      stop()
      this.#leases.release(lk, token)
    }
  }

  /** close(): see Leases.releaseAll. */
  releaseLeases() {
    this.#leases.releaseAll()
  }

  /**
   * Runs the factory and stores its value with the ttl under `guard`: only if
   * nobody wrote or deleted the key since the guard was taken, and (Redis
   * decides) the key still holds `expect`, the text read (null: absent).
   * Keeps the value as the fail-safe copy. `afterWrite` runs right behind the
   * write, in the same batch.
   */
  async #produce(k, factory, o, phase, guard, expect, afterWrite = undefined) {
    const native = this.#native
    phase.started()
    native.note(Note.FactoryRun, 1)
    let value
    try {
      value = await factory()
    } finally {
      phase.settled()
    }
    const json = this.#host.serialize(value, k)
    if (!this.#host.closed()) {
      let written
      if (typeof json === 'string') {
        if (o.track) native.graceKeep(k, json, o.ttlMs, o.keepMs)
        if (native.queueStoreIf(k, json, o.ttlMs, guard, expect, o.tags)) written = this.#host.call(asBool)
      } else if (json === undefined && expect !== null && native.guardFresh(guard)) {
        // JSON has no text for undefined, functions and symbols: the text read goes, so get answers null.
        // After a miss that found nothing there is nothing to delete, and a key written since must stay.
        native.queueDel([k])
        written = this.#host.call(asUndefined)
      }
      if (afterWrite !== undefined) afterWrite()
      return { value, json, stored: (await written) === true }
    }
    return { value, json, stored: false }
  }

  /** One background refresh of `k` (eagerRefresh), stored only while the key still holds `text`. */
  #refresh(k, factory, o, text) {
    if (this.#host.closed() || this.#refreshing.has(k) || this.#inflight.has(k)) return
    const native = this.#native
    native.note(Note.EagerRefresh, 1)
    const guard = native.guardKey(k)
    const run = this.#produce(k, factory, o, IDLE_PHASE, guard, text)
    this.#refreshing.set(k, run)
    const done = () => {
      native.releaseGuard(guard)
      if (this.#refreshing.get(k) === run) this.#refreshing.delete(k)
    }
    run.then(done, (error) => {
      done()
      this.#host.log('warn', `Cache eager refresh of ${shortKey(k)} failed; the current value stays`, { code: CODES.factory, key: k, error })
    })
  }

  /** The fail-safe copy of `k`, parsed, or NO_VALUE. */
  #graceValue(k, o) {
    if (o.graceMs === 0 || this.#host.closed()) return NO_VALUE
    const value = parse(this.#native.graceGet(k))
    return value === null ? NO_VALUE : value
  }

  #warnFailsafe(k, reason, error) {
    const meta = { code: CODES.failsafe, key: k, reason }
    if (error !== undefined) meta.error = error
    this.#host.log('warn', `Cache getOrSet answered ${shortKey(k)} with its fail-safe copy (${reason})`, meta)
  }

  /** A run's result from the fail-safe copy (counted by its callers), or null when there is none. */
  #stale(k, o, reason) {
    const value = this.#graceValue(k, o)
    if (value === NO_VALUE) return null
    this.#warnFailsafe(k, reason)
    return { json: JSON.stringify(value), value, stale: true }
  }

  /** A caller's answer from the fail-safe copy (counted, said once per run), or NO_VALUE when there is none. */
  #failsafe(k, o, run, reason, error) {
    const value = this.#graceValue(k, o)
    if (value === NO_VALUE) return NO_VALUE
    this.#native.note(Note.Failsafe, 1)
    if (!run.failsafeLogged) {
      run.failsafeLogged = true
      this.#warnFailsafe(k, reason, error)
    }
    return value
  }

  /**
   * One caller's answer from a run: a factory failure answers the fail-safe copy
   * when there is one; past `timeout.soft` the copy answers while the factory
   * goes on; past `timeout.hard` the copy or a TimeoutError.
   */
  #bounded(k, run, answer, o) {
    return new Promise((resolve, reject) => {
      let settled = false
      const timers = []
      const finish = (fn, v) => {
        if (settled) return
        settled = true
        for (const t of timers) clearTimeout(t)
        fn(v)
      }
      answer.then(
        (value) => finish(resolve, value),
        (error) => {
          if (settled) {
            this.#host.log('warn', `Cache getOrSet factory for ${shortKey(k)} failed after its callers were answered`, { code: CODES.factory, key: k, error })
            return
          }
          const copy = this.#failsafe(k, o, run, 'factory-error', error)
          if (copy === NO_VALUE) finish(reject, error)
          else finish(resolve, copy)
        },
      )
      if (o.soft === 0 && o.hard === 0) return
      // Once the factory has settled, what is left (the write) is bounded by commandTimeoutMs.
      let factoryDone = false
      run.settled.then(() => {
        factoryDone = true
        for (const t of timers) clearTimeout(t)
      })
      run.started.then(() => {
        if (settled || factoryDone) return
        if (o.soft > 0) {
          timers.push(
            setTimeout(() => {
              const copy = this.#failsafe(k, o, run, 'soft-timeout')
              if (copy === NO_VALUE) return
              this.#native.note(Note.SoftTimeout, 1)
              finish(resolve, copy)
            }, o.soft),
          )
        }
        if (o.hard > 0) {
          timers.push(
            setTimeout(() => {
              this.#native.note(Note.HardTimeout, 1)
              // Callers from now on start a run of their own rather than join this one.
              if (this.#inflight.get(k) === run) this.#inflight.delete(k)
              const copy = this.#failsafe(k, o, run, 'hard-timeout')
              if (copy === NO_VALUE) finish(reject, new TimeoutError(k, o.hard))
              else finish(resolve, copy)
            }, o.hard),
          )
        }
      })
    })
  }
}

module.exports = { GetOrSet }
