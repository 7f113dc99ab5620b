'use strict'

// getOrSetMany's factory calls. Each key the call computes runs as a getOrSet
// run (lib/getorset.js: guard, read, grace, timeouts, lock, guarded store); a
// run that reaches the factory `ask`s the batch for its key's value, and a run
// that will not (found in Redis, answered by the copy, waiting for another
// process' lease) `pass`es. Once every key has done one or the other, the
// factory is called once, at the end of that turn, with the keys that asked,
// in the call's order. A key that asks later (it took over a lease whose
// holder failed) goes in a further call, with the keys asking in the same turn.
const { describe } = require('./errors.js')
const { parse } = require('./calls.js')
const { SharedCall, FactoryContext } = require('./cancel.js')

/** A key the factory left out (or gave `undefined`): null to the caller, nothing stored. */
const LEFT_OUT = Symbol('left out')

/** The factory's result as a key's value (LEFT_OUT when absent), or null when it is neither a Map nor a plain object. */
function picker(result) {
  if (result instanceof Map) return (k) => result.get(k)
  if (result === null || typeof result !== 'object') return null
  const proto = Object.getPrototypeOf(result)
  if (proto !== Object.prototype && proto !== null) return null
  return (k) => (Object.hasOwn(result, k) ? result[k] : undefined)
}

class Batch {
  #factory
  #order
  #signals
  #ran
  /** Keys that may still ask before the first call. */
  #pending
  /** Keys asking for the next call: key -> { flight, resolve, reject }. */
  #asks = new Map()
  #scheduled = false

  /** `order`: the call's keys, deduplicated; `pending`: those whose runs this batch waits for; `ran()` counts a factory call. */
  constructor(factory, order, signals, pending, ran) {
    this.#factory = factory
    this.#order = order
    this.#signals = signals
    this.#pending = new Set(pending)
    this.#ran = ran
  }

  /** The factory's value for `k` (LEFT_OUT), from the next call; `flight`: the key's run. */
  ask(k, flight) {
    const answer = new Promise((resolve, reject) => this.#asks.set(k, { flight, resolve, reject }))
    this.pass(k)
    return answer
  }

  /** `k`'s run will not ask now. */
  pass(k) {
    this.#pending.delete(k)
    if (this.#pending.size === 0 && this.#asks.size > 0 && !this.#scheduled) {
      this.#scheduled = true
      // After this turn's microtasks: runs resolved by one Redis reply all ask first.
      process.nextTick(this.#call)
    }
  }

  #call = () => {
    this.#scheduled = false
    const asks = this.#asks
    this.#asks = new Map()
    const flights = []
    for (const a of asks.values()) flights.push(a.flight)
    const call = new SharedCall(this.#signals, flights)
    // Every caller of every key stopped waiting before the factory started: it does not run.
    if (flights.every((f) => f.abandoned)) {
      for (const a of asks.values()) a.reject(a.flight.reason)
      return
    }
    const missing = this.#order.filter((k) => asks.has(k))
    this.#ran()
    let result
    try {
      result = Promise.resolve(this.#factory(missing, new FactoryContext(call)))
    } catch (error) {
      result = Promise.reject(error)
    }
    result.then(
      (r) => {
        call.done()
        let values
        try {
          values = valuesOf(r, asks.keys())
        } catch (error) {
          // A getter, a Proxy or a Map subclass that throws as it is read fails the call as a rejection would.
          for (const a of asks.values()) a.reject(error)
          return
        }
        for (const [k, a] of asks) a.resolve(values.get(k))
      },
      (error) => {
        call.done()
        for (const a of asks.values()) a.reject(error)
      },
    )
  }
}

/** Errors that say the getOrSetMany factory's result had the wrong shape: no concern of a getOrSet caller joining one of its keys. */
const shapeErrors = new WeakSet()

/** The factory's value (LEFT_OUT when absent) for each of `keys`; throws what reading it throws. */
function valuesOf(result, keys) {
  const pick = picker(result)
  if (pick === null) {
    const error = new TypeError(`getOrSetMany factory must resolve to a plain object or a Map of values by key, got ${describe(result)}`)
    shapeErrors.add(error)
    throw error
  }
  const values = new Map()
  for (const k of keys) {
    const value = pick(k)
    values.set(k, value === undefined ? LEFT_OUT : value)
  }
  return values
}

/** A fresh copy of an answer for a repeated key (as mget's): its JSON parsed; null when JSON has no text for it. */
function copyOf(value) {
  try {
    return parse(JSON.stringify(value))
  } catch {
    return null
  }
}

/** Keys deduplicated, in first-seen order. */
function uniqueKeys(keys) {
  return keys.length < 2 ? keys : [...new Set(keys)]
}

/** The call's answer: one value per key of `keys` (duplicates too), from `answers` (key of `unique` -> value or its promise). */
async function inKeyOrder(keys, unique, answers) {
  const values = await Promise.all(unique.map((k) => answers.get(k)))
  if (unique.length === keys.length) return values
  const byKey = new Map(unique.map((k, i) => [k, values[i]]))
  const given = new Set()
  // The first position gets the value, each repeat a copy of its own: every call returns fresh values.
  return keys.map((k) => (given.has(k) ? copyOf(byKey.get(k)) : (given.add(k), byKey.get(k))))
}

module.exports = { Batch, LEFT_OUT, shapeErrors, uniqueKeys, inKeyOrder }
