'use strict'

// getOrSet's engine, one path for every form: the hit (L1 or the memo), the
// single flight (concurrent callers join one run), the miss read, the factory
// and its guarded write-back (stored only if nobody wrote or deleted the key
// since the miss was read: decided in Redis, `queueStoreIf`), fail-safe
// copies (`grace`) and timeouts (lib/bounds.js), eager refresh and the
// distributed lock. getOrSetMany runs each key it computes as such a run; only
// the factory differs: one call for the keys (lib/getorset-many.js).
// State Rust holds (copies, guards, counters) is asked of Rust, not mirrored.
const { Note } = require('../native.js')
const { CODES, shortKey } = require('./errors.js')
const { Leases } = require('./lease.js')
const { fillLocked, asRead } = require('./getorset-lock.js')
const { runOutcome, manyOutcome } = require('./tracing.js')
const { parse, asUndefined, asBool } = require('./calls.js')
const { Signals, Flight, FactoryContext, Caller } = require('./cancel.js')
const { Batch, LEFT_OUT, shapeErrors, uniqueKeys, inKeyOrder } = require('./getorset-many.js')
const { Bounds } = require('./bounds.js')


/** A joiner's own copy of a run's result: parsed from its text, or the value itself when JSON had none. */
const ownCopy = (r) => (typeof r.json === 'string' ? parse(r.json) : r.value)

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
  /** What the distributed lock's rounds use of this engine (lib/getorset-lock.js). */
  #lockParts
  /** Factories in flight that hold a signal, aborted by close(). */
  #signals = new Signals()
  /** What answers a caller when the factory fails or is slow (lib/bounds.js). */
  #bounds

  /**
   * `host`: the instance's native half, `call(settle)` (lib/batch.js), `local(k)` (L1's text or null),
   * `log(level, message, meta)`, `memory`, `serialize(value, k)`, `closed()`.
   */
  constructor(host) {
    this.#host = host
    this.#native = host.native
    this.#local = host.local
    this.#leases = new Leases(host.native, host.call, host.closed)
    this.#lockParts = {
      host,
      leases: this.#leases,
      found: (k, read, o) => this.#found(k, read, o),
      stale: (k, o, reason) => this.#bounds.stale(k, o, reason),
      produce: (...args) => this.#produce(...args),
    }
    this.#bounds = new Bounds(host, (k, run) => {
      if (this.#inflight.get(k) === run) this.#inflight.delete(k)
    })
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
    if (o.signal !== undefined && o.signal.aborted) return Promise.reject(o.signal.reason)
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
    const caller = o.signal === undefined ? undefined : new Caller(o.signal)
    let run = this.#joinable(k)
    let answer
    if (run !== undefined) {
      native.note(Note.Coalesced, 1)
      answer = run.then(
        (r) => this.#joined(k, r, factory, o, trace),
        (error) => {
          // A getOrSetMany factory's result of the wrong shape is no concern of this caller: it runs its own.
          if (shapeErrors.has(error)) return this.get(k, factory, o, trace)
          throw error
        },
      )
    } else {
      // What the miss saw (absent, or text that is no value): the write-back expects it still there.
      const state = { guard: 0, seen: text }
      run = this.#start(k, state, (flight) => this.#fill(k, factory, o, flight, state))
      answer = run.then((r) => this.#ran(k, r, factory, o, trace))
    }
    const bounded = this.#bounds.bound(k, run, answer, o, caller)
    if (caller !== undefined) bounded.then(caller.off, caller.off)
    return bounded
  }

  /**
   * One caller's getOrSetMany of `keys` (checked) under `o`: hits from L1, runs
   * in flight joined, and a getOrSet run for each other key, whose factory is
   * one call for all of them (lib/getorset-many.js).
   */
  many(keys, factory, o, trace) {
    if (o.signal !== undefined && o.signal.aborted) return Promise.reject(o.signal.reason)
    if (keys.length === 0) {
      if (trace !== undefined) trace.outcome = 'miss'
      return Promise.resolve([])
    }
    const native = this.#native
    const unique = uniqueKeys(keys)
    /** Key -> its value, or the promise of it. */
    const answers = new Map()
    /** Key -> its outcome, when traced. */
    const parts = trace === undefined ? undefined : new Map()
    const refresh = o.refreshLeftMs >= 0 ? new Batch(factory, unique, this.#signals, [], this.#ranMany) : undefined
    let caller
    let batch
    /** What stops each key's wait once the call has settled without it (made on the first wait: none for hits). */
    let stops
    let own = null
    let joined = false
    for (const k of unique) {
      const part = parts === undefined ? undefined : {}
      parts?.set(k, part)
      const text = this.#local(k)
      const value = parse(text)
      if (value !== null) {
        if (part !== undefined) part.outcome = 'l1'
        if (o.track && native.onHit(k, o.keepMs, o.refreshLeftMs)) this.#refresh(k, refresh, o, text)
        answers.set(k, value)
        continue
      }
      const run = this.#joinable(k)
      if (run === undefined) {
        ;(own ??= []).push(k, text)
        continue
      }
      native.note(Note.Coalesced, 1)
      joined = true
      stops ??= []
      if (o.signal !== undefined) caller ??= new Caller(o.signal)
      answers.set(k, this.#bounds.bound(k, run, run.then((r) => this.#joined(k, r, batch, o, part)), o, caller, stops))
    }
    if (own === null && !joined) {
      if (trace !== undefined) trace.outcome = 'l1'
      return Promise.resolve(keys.map((k) => answers.get(k)))
    }
    if (o.signal !== undefined) caller ??= new Caller(o.signal)
    stops ??= []
    const mine = own === null ? [] : own.filter((_, i) => i % 2 === 0)
    batch = new Batch(factory, unique, this.#signals, mine, this.#ranMany)
    for (let i = 0; own !== null && i < own.length; i += 2) {
      const k = own[i]
      const state = { guard: 0, seen: own[i + 1] }
      const flight = new Flight(this.#signals)
      const pass = () => batch.pass(k)
      flight.onWaiting = pass
      const run = this.#start(k, state, (f) => this.#fill(k, batch, o, f, state), flight)
      const answer = run.then(
        (r) => (pass(), this.#ran(k, r, refresh, o, parts?.get(k))),
        (error) => {
          pass()
          throw error
        },
      )
      answers.set(k, this.#bounds.bound(k, run, answer, o, caller, stops))
    }
    const result = inKeyOrder(keys, unique, answers).then(
      (values) => {
        caller?.off()
        if (trace !== undefined) manyOutcome(trace, parts.values())
        return values
      },
      (error) => {
        caller?.off()
        // Rejected early: the keys still running have no one waiting for them here (once no one does, the factory aborts).
        for (const stop of stops) stop(error)
        throw error
      },
    )
    return result
  }

  #ranMany = () => this.#native.note(Note.FactoryRun, 1)

  /** The run in flight for `k` that a caller may join, if any. */
  #joinable(k) {
    const run = this.#inflight.get(k)
    // A run whose guard a write spoiled would answer an older value: not joined.
    if (run !== undefined && run.state.guard !== 0 && !this.#native.guardFresh(run.state.guard)) return undefined
    return run
  }

  /** A joiner's answer from the run it joined; `source`: its own factory (getOrSet) or batch (getOrSetMany). */
  #joined(k, r, source, o, trace) {
    // Redis was down and the run answered from the copy: not for a caller without grace, which runs its own.
    if ((r.stale && o.graceMs === 0) || this.#leftOut(r, source)) return this.#again(k, source, o, trace)
    if (trace !== undefined) runOutcome(trace, r, true)
    if (!r.stale) return ownCopy(r)
    this.#native.note(Note.Failsafe, 1)
    return parse(r.json)
  }

  /** The answer of the caller whose run it was; `source` also makes its eager refresh. */
  #ran(k, r, source, o, trace) {
    if (this.#leftOut(r, source)) return this.#again(k, source, o, trace)
    if (trace !== undefined) runOutcome(trace, r, false)
    if (r.stale) this.#native.note(Note.Failsafe, 1)
    if (r.refresh) this.#refresh(k, source, o, r.json)
    // The caller that ran the factory gets its value itself, as with the original.
    return r.value
  }

  /** A getOrSetMany factory left the key out: a getOrSet caller's answer is still its own factory's. */
  #leftOut(r, source) {
    return r.leftOut === true && typeof source === 'function'
  }

  /**
   * A run of the caller's own, when the one it got cannot answer it: getOrSet's
   * as a new call (single flight, timeouts, signal; the run it got is out of
   * #inflight by now), getOrSetMany's key asks its batch again.
   */
  #again(k, source, o, trace) {
    if (typeof source === 'function') return this.get(k, source, o, trace)
    return this.#fill(k, source, o, new Flight(this.#signals), { guard: 0, seen: null }).then((mine) => {
      if (trace !== undefined) runOutcome(trace, mine, false)
      return mine.value
    })
  }

  /**
   * Registers a run for `k` so concurrent callers join it. `body(flight)`
   * calls `flight.start()` as the factory starts and `flight.settle()` when it
   * settles (callers' timeouts count only while the factory runs), and sets
   * `state.guard` to its write-back guard.
   */
  #start(k, state, body, flight = new Flight(this.#signals)) {
    const run = body(flight)
    run.flight = flight
    run.state = state
    this.#inflight.set(k, run)
    const done = () => {
      if (this.#inflight.get(k) === run) this.#inflight.delete(k)
    }
    run.then(done, done)
    // No caller waits any more: callers from now on start a run of their own.
    flight.onAbandon = done
    return run
  }

  /**
   * The miss: Redis' value (or the fail-safe copy when Redis fails), else the
   * factory's, stored under guard. `source`: getOrSet's factory, or the
   * getOrSetMany batch the key asks its value of.
   */
  async #fill(k, source, o, flight, state) {
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
        const stale = read.ok ? null : this.#bounds.stale(k, o, 'redis-unavailable')
        if (stale !== null) return stale
      }
      const refresh = this.#refreshing.get(k)
      if (refresh !== undefined) {
        native.note(Note.Coalesced, 1)
        flight.start()
        flight.waiting()
        const joined = refresh.then((r) => ({ json: r.json, value: ownCopy(r), stored: r.stored, leftOut: r.leftOut }))
        const settle = () => flight.settle()
        joined.then(settle, settle)
        return joined
      }
      if (o.distributed && !this.#host.memory) return await fillLocked(this.#lockParts, k, source, o, flight, state)
      return await this.#produce(k, source, o, flight, state.guard, state.seen)
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

  /** close(): see Leases.releaseAll. */
  releaseLeases() {
    this.#leases.releaseAll()
  }

  /** close(): aborts the signal of every factory in flight (eager refreshes too). */
  abortFactories() {
    this.#signals.abortAll()
  }

  /**
   * Runs the factory (`source`: getOrSet's, called with `{ key, signal }`, or
   * the getOrSetMany batch's) and stores its value with the ttl under `guard`:
   * only if nobody wrote or deleted the key since the guard was taken, and
   * (Redis decides) the key still holds `expect`, the text read (null: absent).
   * Keeps the value as the fail-safe copy. `lock`: the lease's `settled()` (the
   * factory settled) and `written()` (right behind the write, same batch).
   */
  async #produce(k, source, o, flight, guard, expect, lock = undefined) {
    const native = this.#native
    // Every caller stopped waiting before the factory started: it does not run.
    if (flight.abandoned) throw flight.reason
    flight.start()
    let value
    try {
      if (typeof source === 'function') {
        native.note(Note.FactoryRun, 1)
        value = await source(new FactoryContext(flight, k))
      } else value = await source.ask(k, flight)
    } finally {
      lock?.settled()
      flight.settle()
    }
    if (value === LEFT_OUT) {
      lock?.written()
      return { value: null, json: null, stored: false, leftOut: true }
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
      lock?.written()
      return { value, json, stored: (await written) === true }
    }
    return { value, json, stored: false }
  }

  /** One background refresh of `k` (eagerRefresh), stored only while the key still holds `text`; its signal aborts on close(). */
  #refresh(k, source, o, text) {
    if (this.#host.closed() || this.#refreshing.has(k) || this.#inflight.has(k)) return
    const native = this.#native
    native.note(Note.EagerRefresh, 1)
    const guard = native.guardKey(k)
    const run = this.#produce(k, source, o, new Flight(this.#signals), guard, text)
    this.#refreshing.set(k, run)
    const done = () => {
      native.releaseGuard(guard)
      if (this.#refreshing.get(k) === run) this.#refreshing.delete(k)
    }
    run.then(done, (error) => {
      done()
      // After close() (which aborts it), no news.
      if (!this.#host.closed()) this.#host.log('warn', `Cache eager refresh of ${shortKey(k)} failed; the current value stays`, { code: CODES.factory, key: k, error })
    })
  }
}

module.exports = { GetOrSet }
