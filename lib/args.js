'use strict'

// Checks of the methods' arguments: keys, ttls and getOrSet's options. Each
// throws a TypeError/RangeError naming the bad argument.
const { describe } = require('./errors.js')
const { toTags } = require('./tags.js')

const MAX_TTL_MS = Number.MAX_SAFE_INTEGER

function toKey(key, name) {
  if (typeof key === 'string') return key
  // ioredis turns numbers into strings; so do we (String(-0) is '0', as in ioredis).
  if (typeof key === 'number') return String(key)
  throw new TypeError(`${name} must be a string or a number, got ${describe(key)}`)
}

function toKeys(keys, name) {
  if (!Array.isArray(keys)) throw new TypeError(`${name} must be an array of keys, got ${describe(keys)}`)
  const out = new Array(keys.length)
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i]
    // The name is built only for an error: a template string per key was a fifth of a 10-key mget.
    out[i] = typeof k === 'string' ? k : toKey(k, `${name}[${i}]`)
  }
  return out
}

/** Seconds as the original took them (falsy: the default), in whole milliseconds for `PX`. */
function toTtlMs(ttl, defaultTtlMs) {
  if (!ttl) return defaultTtlMs
  let n
  if (typeof ttl === 'number') n = ttl
  else if (typeof ttl === 'string') {
    n = ttl.trim() === '' ? Number.NaN : Number(ttl)
    if (Number.isNaN(n)) throw new TypeError(`ttl must be a number of seconds, got ${describe(ttl)}`)
    if (n === 0) return defaultTtlMs
  } else if (typeof ttl === 'bigint') n = Number(ttl)
  else throw new TypeError(`ttl must be a number of seconds, got ${describe(ttl)}`)
  if (!(n > 0) || !Number.isFinite(n)) {
    throw new RangeError(`ttl must be a positive, finite number of seconds, got ${String(ttl)}`)
  }
  const ms = Math.max(1, Math.round(n * 1000))
  if (ms > MAX_TTL_MS) throw new RangeError(`ttl is too large: ${String(ttl)} seconds`)
  return ms
}

const OPTION_NAMES = new Set(['ttl', 'grace', 'timeout', 'eagerRefresh', 'lock', 'tags'])

/** A non-negative, finite number (or undefined: `fallback`); names the option in its errors. */
function amount(value, name, unit, fallback) {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || Number.isNaN(value)) {
    throw new TypeError(`${name} must be a number of ${unit}, got ${describe(value)}`)
  }
  if (!(value >= 0) || !Number.isFinite(value)) {
    throw new RangeError(`${name} must be a non-negative, finite number of ${unit}, got ${String(value)}`)
  }
  return value
}

/** What a getOrSet call asks for, checked; the plain form (a ttl) is the same with every option off. */
function policy(ttlMs, graceMs, soft, hard, eager, distributed) {
  return {
    ttlMs,
    graceMs,
    soft,
    hard,
    /** How long the copy of a value read or written is kept: ttl + grace. */
    keepMs: ttlMs + graceMs,
    /** A hit with this little left of its ttl starts a refresh; -1: never. */
    refreshLeftMs: eager > 0 ? ttlMs * (1 - eager) : -1,
    /** Whether hits must tell Rust (to keep the copy, or to learn the key's age). */
    track: graceMs > 0 || eager > 0,
    /** Single flight across processes: a lease in Redis. */
    distributed,
  }
}

/**
 * getOrSet's third argument, checked: a ttl, or `{ ttl, grace, timeout: { soft, hard }, eagerRefresh, lock }`.
 * Throws a TypeError/RangeError naming the bad option.
 */
function getOrSetPolicy(o, defaultTtlMs) {
  if (typeof o !== 'object' || o === null || Array.isArray(o)) return policy(toTtlMs(o, defaultTtlMs), 0, 0, 0, 0, false)
  for (const name of Object.keys(o)) {
    if (!OPTION_NAMES.has(name)) throw new TypeError(`getOrSet options: unknown option ${JSON.stringify(name)}`)
  }
  const ttlMs = toTtlMs(o.ttl, defaultTtlMs)
  const graceMs = Math.round(amount(o.grace, 'grace', 'seconds', 0) * 1000)
  let soft = 0
  let hard = 0
  if (o.timeout !== undefined) {
    const t = o.timeout
    if (typeof t !== 'object' || t === null || Array.isArray(t)) {
      throw new TypeError(`timeout must be { soft, hard } in milliseconds, got ${describe(t)}`)
    }
    for (const name of Object.keys(t)) {
      if (name !== 'soft' && name !== 'hard') throw new TypeError(`getOrSet options: unknown option ${JSON.stringify(`timeout.${name}`)}`)
    }
    soft = amount(t.soft, 'timeout.soft', 'milliseconds', 0)
    hard = amount(t.hard, 'timeout.hard', 'milliseconds', 0)
    if (soft > 0 && hard > 0 && soft > hard) {
      throw new RangeError(`timeout.soft (${soft} ms) must not exceed timeout.hard (${hard} ms)`)
    }
  }
  let eager = 0
  if (o.eagerRefresh !== undefined) {
    eager = o.eagerRefresh
    if (typeof eager !== 'number' || Number.isNaN(eager)) {
      throw new TypeError(`eagerRefresh must be a fraction of the ttl, got ${describe(eager)}`)
    }
    if (!(eager > 0 && eager < 1)) throw new RangeError(`eagerRefresh must be above 0 and below 1, got ${String(eager)}`)
  }
  if (o.lock !== undefined && o.lock !== 'distributed') {
    throw new TypeError(`lock must be 'distributed', got ${describe(o.lock)}`)
  }
  return { ...policy(ttlMs, graceMs, soft, hard, eager, o.lock === 'distributed'), tags: toTags(o.tags, 'tags') }
}

module.exports = { toKey, toKeys, toTtlMs, getOrSetPolicy, MAX_TTL_MS }
