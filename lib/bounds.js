'use strict'

// What answers a getOrSet caller when the factory fails or is slow: the
// fail-safe copy (`grace`), `timeout: { soft, hard }`, and the caller's own
// `signal`. Each caller is bounded on its own, so callers that join a run
// are bounded too.
const { Note } = require('../native.js')
const { CODES, TimeoutError, shortKey } = require('./errors.js')
const { parse } = require('./calls.js')

const NO_VALUE = Symbol('no value')

class Bounds {
  #host
  #drop

  /** `host`: as lib/getorset.js's; `drop(k, run)`: later callers of `k` do not join `run`. */
  constructor(host, drop) {
    this.#host = host
    this.#drop = drop
  }

  /** The fail-safe copy of `k`, parsed, or NO_VALUE. */
  #graceValue(k, o) {
    if (o.graceMs === 0 || this.#host.closed()) return NO_VALUE
    const value = parse(this.#host.native.graceGet(k))
    return value === null ? NO_VALUE : value
  }

  #warnFailsafe(k, reason, error) {
    const meta = { code: CODES.failsafe, key: k, reason }
    if (error !== undefined) meta.error = error
    this.#host.log('warn', `Cache getOrSet answered ${shortKey(k)} with its fail-safe copy (${reason})`, meta)
  }

  /** A run's result from the fail-safe copy (counted by its callers), or null when there is none. */
  stale(k, o, reason) {
    const value = this.#graceValue(k, o)
    if (value === NO_VALUE) return null
    this.#warnFailsafe(k, reason)
    return { json: JSON.stringify(value), value, stale: true }
  }

  /** A caller's answer from the fail-safe copy (counted, said once per run), or NO_VALUE when there is none. */
  #failsafe(k, o, run, reason, error) {
    const value = this.#graceValue(k, o)
    if (value === NO_VALUE) return NO_VALUE
    this.#host.native.note(Note.Failsafe, 1)
    if (!run.failsafeLogged) {
      run.failsafeLogged = true
      this.#warnFailsafe(k, reason, error)
    }
    return value
  }

  /**
   * One caller's answer from a run: a factory failure answers the fail-safe copy
   * when there is one; past `timeout.soft` the copy answers while the factory
   * goes on; past `timeout.hard` the copy or a TimeoutError. `caller`: the
   * caller's own signal; its abort rejects with its reason. A caller answered
   * at `timeout.hard` or by its abort stops waiting: once no caller of the run
   * waits, the factory's signal aborts. `many`: a getOrSetMany call's list of
   * stops, called when the call settles before this key's answer.
   */
  bound(k, run, answer, o, caller, many = undefined) {
    const flight = run.flight
    flight.join()
    return new Promise((resolve, reject) => {
      let settled = false
      const timers = []
      const finish = (fn, v) => {
        if (settled) return
        settled = true
        for (const t of timers) clearTimeout(t)
        fn(v)
      }
      const quit = (fn, v, reason) => {
        if (settled) return
        finish(fn, v)
        flight.leave(reason)
      }
      answer.then(
        (value) => finish(resolve, value),
        (error) => {
          if (settled) {
            // A factory that stopped because it was told to is no news.
            if (!flight.obeyed(error)) this.#host.log('warn', `Cache getOrSet factory for ${shortKey(k)} failed after its callers were answered`, { code: CODES.factory, key: k, error })
            return
          }
          const copy = this.#failsafe(k, o, run, 'factory-error', error)
          if (copy === NO_VALUE) finish(reject, error)
          else finish(resolve, copy)
        },
      )
      if (caller !== undefined) caller.add((reason) => quit(reject, reason, reason))
      if (many !== undefined) many.push((reason) => quit(reject, reason, reason))
      if (o.soft === 0 && o.hard === 0) return
      // Once the factory has settled, what is left (the write) is bounded by commandTimeoutMs.
      let factoryDone = false
      flight.settled.then(() => {
        factoryDone = true
        for (const t of timers) clearTimeout(t)
      })
      flight.started.then(() => {
        if (settled || factoryDone) return
        if (o.soft > 0) {
          timers.push(
            setTimeout(() => {
              const copy = this.#failsafe(k, o, run, 'soft-timeout')
              if (copy === NO_VALUE) return
              this.#host.native.note(Note.SoftTimeout, 1)
              finish(resolve, copy)
            }, o.soft),
          )
        }
        if (o.hard > 0) {
          timers.push(
            setTimeout(() => {
              this.#host.native.note(Note.HardTimeout, 1)
              // Callers from now on start a run of their own rather than join this one.
              this.#drop(k, run)
              const error = new TimeoutError(k, o.hard, many === undefined ? 'getOrSet' : 'getOrSetMany')
              const copy = this.#failsafe(k, o, run, 'hard-timeout')
              if (copy === NO_VALUE) quit(reject, error, error)
              else quit(resolve, copy, error)
            }, o.hard),
          )
        }
      })
    })
  }
}

module.exports = { Bounds }
