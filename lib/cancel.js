'use strict'

// Cancellable factories: the AbortSignal a factory is handed (its controller
// made only when the factory reads `ctx.signal`), who still waits for a
// factory run, and a caller's own `signal`. A run shared by several callers is
// aborted only once every one of them has stopped waiting (its `signal`
// aborted, or `timeout.hard` passed): one caller's abort must not cost the
// others their answer. close() aborts every factory in flight.
const { CacheClosedError } = require('./errors.js')

/** The factory runs holding a controller, for close(). */
class Signals {
  #live = new Set()
  closed = false

  add(c) {
    this.#live.add(c)
  }

  delete(c) {
    this.#live.delete(c)
  }

  abortAll() {
    this.closed = true
    const reason = new CacheClosedError()
    for (const c of this.#live) c.abort(reason)
    this.#live.clear()
  }
}

/** What a factory runs for: its controller is made on the first `signal()`. */
class Cancellable {
  #signals
  #controller = null
  /** The factory settled: a signal read from now on is not kept for close(). */
  #finished = false
  /** Why it was aborted; undefined while it is not. */
  reason = undefined

  constructor(signals) {
    this.#signals = signals
  }

  signal() {
    if (this.#controller === null) {
      this.#controller = new AbortController()
      if (this.reason !== undefined) this.#controller.abort(this.reason)
      else if (this.#signals.closed) this.#controller.abort(new CacheClosedError())
      else if (!this.#finished) this.#signals.add(this)
    }
    return this.#controller.signal
  }

  abort(reason) {
    if (this.reason !== undefined) return
    this.reason = reason
    if (this.#controller === null) return
    this.#signals.delete(this)
    this.#controller.abort(reason)
  }

  /** The factory settled: nothing left to abort. */
  done() {
    this.#finished = true
    if (this.#controller !== null) this.#signals.delete(this)
  }

  /** Whether `error` is the factory obeying this abort (not worth a warning). */
  obeyed(error) {
    return this.reason !== undefined && (error === this.reason || (error !== null && typeof error === 'object' && error.name === 'AbortError'))
  }
}

/** A promise with its resolve function. */
function deferred() {
  const d = {}
  d.promise = new Promise((resolve) => (d.resolve = resolve))
  return d
}

/** A deferred already resolved: what `started`/`settled` are once passed. */
const PASSED = { promise: Promise.resolve(), resolve() {} }

/**
 * One factory run's callers (lib/getorset.js). `started`/`settled` resolve as
 * the factory starts and settles (timeouts count only while it runs; made
 * only when a caller with a timeout asks). Each caller `join`s; `leave`
 * when it stops waiting; once all have left, the run is abandoned: aborted,
 * and `onAbandon` told (and the getOrSetMany call it is part of, `shared`).
 */
class Flight extends Cancellable {
  #callers = 0
  #left = 0
  /** Deferreds, made on first ask (PASSED once passed). */
  #started = null
  #settled = null
  onAbandon = null
  /** getOrSetMany: the run stopped before the factory to wait for another process' lease. */
  onWaiting = null
  /** getOrSetMany: the factory call this run's key is part of. */
  shared = null

  get started() {
    return (this.#started ??= deferred()).promise
  }

  get settled() {
    return (this.#settled ??= deferred()).promise
  }

  start() {
    this.#started?.resolve()
    this.#started = PASSED
  }

  settle() {
    this.done()
    this.#settled?.resolve()
    this.#settled = PASSED
  }

  waiting() {
    this.onWaiting?.()
  }

  join() {
    this.#callers++
  }

  leave(reason) {
    if (++this.#left < this.#callers) return
    this.abort(reason)
    this.onAbandon?.(reason)
    this.shared?.check(reason)
  }

  get abandoned() {
    return this.#left > 0 && this.#left >= this.#callers
  }
}

/** getOrSetMany's one factory call for several runs: aborted once every one of them is abandoned. */
class SharedCall extends Cancellable {
  #flights

  constructor(signals, flights) {
    super(signals)
    this.#flights = flights
    for (const f of flights) f.shared = this
  }

  check(reason) {
    if (this.#flights.every((f) => f.abandoned)) this.abort(reason)
  }
}

/** What a factory is called with: `{ key, signal }` (getOrSetMany's has no key); the controller is made when `signal` is first read. */
class FactoryContext {
  #of

  constructor(of, key) {
    this.#of = of
    if (key !== undefined) this.key = key
  }

  get signal() {
    return this.#of.signal()
  }
}

/** Signal -> the Callers listening to it: one listener per signal however many calls use it at once. */
const listening = new WeakMap()

function onAbort() {
  const callers = listening.get(this)
  if (callers === undefined) return
  listening.delete(this)
  this.removeEventListener('abort', onAbort)
  for (const c of callers) c.abort(this.reason)
}

/** A caller's own `signal`, for every run the call waits on; `off()` once the call settles. */
class Caller {
  #signal
  #stops = []

  constructor(signal) {
    this.#signal = signal
    let callers = listening.get(signal)
    if (callers === undefined) {
      listening.set(signal, (callers = new Set()))
      signal.addEventListener('abort', onAbort)
    }
    callers.add(this)
  }

  add(stop) {
    this.#stops.push(stop)
  }

  abort(reason) {
    for (const stop of this.#stops.splice(0)) stop(reason)
  }

  off = () => {
    this.#stops.length = 0
    const callers = listening.get(this.#signal)
    if (callers === undefined || !callers.delete(this) || callers.size > 0) return
    listening.delete(this.#signal)
    this.#signal.removeEventListener('abort', onAbort)
  }
}

module.exports = { Signals, Flight, SharedCall, FactoryContext, Caller }
