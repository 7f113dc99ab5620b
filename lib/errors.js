'use strict'

// The errors the package throws or rejects with, and how values are named in
// messages. Codes come from Rust (src/error.rs), so both sides use one list.
const { errorCodes } = require('../native.js')

const CODES = errorCodes()

class CacheClosedError extends Error {
  constructor() {
    super('CacheService is closed: create a new instance to use the cache again')
    this.name = 'CacheClosedError'
    this.code = CODES.closed
  }
}

/** Rejection of a `getOrSet` (`getOrSetMany`) whose factory ran past `timeout.hard` with no fail-safe copy to answer. */
class TimeoutError extends Error {
  constructor(key, ms, method = 'getOrSet') {
    super(`${method} factory for key ${shortKey(key)} did not settle within timeout.hard (${ms} ms)`)
    this.name = 'TimeoutError'
    this.code = CODES.factoryTimeout
  }
}

/** `key` quoted for a message, cut at 80 characters. */
const shortKey = (key) => JSON.stringify(key.length > 80 ? `${key.slice(0, 80)}…` : key)

/** A description of `v` for error messages that never throws (symbols, null prototypes). */
function describe(v) {
  if (v === null) return 'null'
  if (Array.isArray(v)) return 'an array'
  const t = typeof v
  if (t === 'object') return Object.getPrototypeOf(v) === null ? 'an object without a prototype' : 'an object'
  if (t === 'string') return `the string ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v)}`
  if (t === 'number' || t === 'bigint' || t === 'boolean') return `${t} ${String(v)}`
  return t === 'undefined' ? 'undefined' : `a ${t}`
}

module.exports = { CODES, CacheClosedError, TimeoutError, describe, shortKey }
