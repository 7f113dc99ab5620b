'use strict'

// The pieces index.js's methods are made of that hold no state: JSON parsing, how each
// op's reply becomes the value its promise resolves to, what the one-op
// methods queue, set's JSON text, and the registration methods' name check.
const { toKey } = require('./args.js')
const { CODES } = require('./errors.js')

/** JSON text parsed; null for no text or text that is not JSON (as the original's safeJsonParse). */
function parse(text) {
  if (!text) return null
  try {
    return JSON.parse(text)
  } catch {
    return null
  }
}

// How each op's replies become the value its promise resolves to:
// (ok, num, texts, t) where texts[t] is the op's first text (Rust says where).
const asUndefined = () => undefined
const asValue = (ok, num, texts, t) => parse(texts[t])
const asBool = (ok, num) => ok && num === 1
const asTtl = (ok, num) => (ok ? num : -1)
const asCount = (ok, num) => (ok ? num : 0)
const asInfo = (ok, num, texts, t) =>
  ok ? { keyCount: num, memoryUsage: texts[t] ?? 'unknown' } : { keyCount: 0, memoryUsage: 'unknown' }

/** mget's settle: L1's texts `local` (null where missing) with Redis' texts for the indexes `missing` put in, parsed. */
const mgetMerge = (local, missing) => (ok, num, texts, t) => {
  if (!ok) return []
  for (let j = 0; j < missing.length; j++) local[missing[j]] = texts[t + j]
  return local.map(parse)
}

// What the one-op methods queue: (native, argument, the getOrSet engine).
const queueExists = (native, key) => native.queueExists(toKey(key, 'key'))
const queueTtl = (native, key) => native.queueTtl(toKey(key, 'key'))
const queuePing = (native) => native.queuePing()
const queueInfo = (native) => native.queueInfo()
const queueClear = (native, _, getOrSet) => {
  native.queueClear()
  getOrSet.forgetAll()
}

/** What `serializer` answers when `JSON.stringify` throws. */
const NO_VALUE = Symbol('no value')

/**
 * mset's record as `strs` (key, JSON, key, JSON, …) and `gone` (keys whose value
 * JSON has no text for: deleted); values that cannot be serialized are left out.
 * `forget(k)` for each key written.
 */
function recordTexts(record, serialize, forget) {
  const strs = []
  const gone = []
  for (const [k, value] of Object.entries(record)) {
    const json = serialize(value, k)
    if (json === NO_VALUE) continue
    forget(k)
    if (json === undefined) gone.push(k)
    else strs.push(k, json)
  }
  return { strs, gone }
}

/** set's JSON text of a value: `undefined` when JSON has none, NO_VALUE (and a warning to `log`) when stringify throws. */
const serializer = (log) => (value, key) => {
  try {
    return JSON.stringify(value)
  } catch (error) {
    log('warn', 'Cache set skipped: the value cannot be serialized to JSON', { key, error, code: CODES.serialize })
    return NO_VALUE
  }
}

/** mset's native calls, queued: `strs` stored (key, text, …), `gone` deleted; `call()` the promise of the last one queued. */
function msetCalls(native, strs, gone, ttlMs, call, ctx) {
  const calls = []
  if (strs.length > 0) {
    native.queueMset(strs, ttlMs)
    calls.push(call())
  }
  if (gone.length > 0) {
    native.queueDel(gone)
    calls.push(call())
  }
  if (ctx !== undefined && calls.length === 0) ctx.outcome = 'ok'
  return Promise.all(calls).then(asUndefined)
}

/** `options.name` of a metrics registration, checked; default `'default'`. */
function checkName(method, options) {
  if (options !== undefined && (options === null || typeof options !== 'object')) {
    throw new TypeError(`${method}: options must be an object`)
  }
  const name = options?.name ?? 'default'
  if (typeof name !== 'string' || name === '') {
    throw new TypeError(`${method}: options.name must be a non-empty string`)
  }
  return name
}

module.exports = { parse, asUndefined, asValue, asBool, asTtl, asCount, asInfo, queueExists, queueTtl, queuePing, queueInfo, queueClear, checkName, recordTexts, msetCalls, mgetMerge, serializer, NO_VALUE }
