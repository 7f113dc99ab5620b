'use strict'

// The public surface: CacheService's methods, the original's name for name.
// Each job lives in its own module under lib/ (options, memo, batching, the
// getOrSet engine, the prom-client bridge, logging); tiers, connections,
// invalidation and counters live in Rust (src/).
const { NativeCache, Note, localGet, localGetOrQueue, localMget } = require('./native.js')
const { CODES, CacheClosedError, TimeoutError, describe } = require('./lib/errors.js')
const { toKey, toKeys, toTtlMs, getOrSetPolicy } = require('./lib/args.js')
const { resolveOptions, DEFAULT_TTL } = require('./lib/options.js')
const { Log, redactText } = require('./lib/logging.js')
const { Memo } = require('./lib/memo.js')
const { Batcher } = require('./lib/batch.js')
const { GetOrSet, parse } = require('./lib/getorset.js')
const { registerMetrics } = require('./lib/metrics-bridge.js')

const LAZY = Symbol('lazy')
const NO_VALUE = Symbol('no value')

// How each op's replies become the value its promise resolves to:
// (ok, num, texts, t) where texts[t] is the op's first text (Rust says where).
const asUndefined = () => undefined
const asValue = (ok, num, texts, t) => parse(texts[t])
const asBool = (ok, num) => ok && num === 1
const asTtl = (ok, num) => (ok ? num : -1)
const asInfo = (ok, num, texts, t) =>
  ok ? { keyCount: num, memoryUsage: texts[t] ?? 'unknown' } : { keyCount: 0, memoryUsage: 'unknown' }

class CacheService {
  #native = null
  /** This instance's handle for the hit path (free functions are cheaper to call than methods). */
  #handle = -1
  /** Copies of hot L1 entries served without a native call; null with L1 off. */
  #memo = null
  #memory = false
  #defaultTtlMs = DEFAULT_TTL * 1000
  #log = new Log()
  #closed = false
  /** Call batching (lib/batch.js) and getOrSet (lib/getorset.js), made with the native half. */
  #batch = null
  #getOrSet = null
  /** This instance's metric families for the prom-client bridge; null once closed. */
  #families = null

  /**
   * @param {import('./index').CacheServiceOptions} [options]
   */
  constructor(options) {
    if (options === LAZY) return
    this.#init(resolveOptions(options, process.env))
  }

  #init(resolved) {
    this.#log.secrets = resolved.secrets
    try {
      this.#native = new NativeCache(resolved.native)
    } catch (err) {
      throw new TypeError(redactText(err && err.message ? err.message : String(err), resolved.secrets))
    }
    this.#handle = this.#native.handle
    if (resolved.native.localMaxBytes > 0) this.#memo = Memo.create(this.#handle, this.#native.memoBytes)
    this.#memory = resolved.native.mode === 'memory'
    this.#defaultTtlMs = resolved.defaultTtlMs
    // The lazy singleton may have been given a logger before its first use.
    if (!this.#log.chosen) this.#log.logger = resolved.logger
    const log = (level, message, meta) => this.#log.write(level, message, meta)
    this.#batch = new Batcher(this.#native, this.#memory, log)
    this.#getOrSet = new GetOrSet({
      native: this.#native,
      call: (settle) => this.#batch.call(settle),
      local: (k) => this.#local(k),
      log,
      memory: this.#memory,
      serialize: (value, k) => this.#serialize(value, k),
      closed: () => this.#closed,
    })
  }

  /** The native half, created on first use for the lazy singleton. Throws when closed. */
  #cache() {
    if (this.#closed) throw new CacheClosedError()
    if (this.#native === null) this.#init(resolveOptions(undefined, process.env))
    return this.#native
  }

  #call(settle) {
    return this.#batch.call(settle)
  }

  /** Runs `fn` with the native half, turning argument errors into rejections. */
  #guard(fn) {
    try {
      return fn(this.#cache())
    } catch (err) {
      return Promise.reject(err)
    }
  }

  /** JSON text of `value`, `undefined` when JSON has no text for it, NO_VALUE when stringify throws. */
  #serialize(value, key) {
    try {
      return JSON.stringify(value)
    } catch (error) {
      this.#log.write('warn', 'Cache set skipped: the value cannot be serialized to JSON', { key, error, code: CODES.serialize })
      return NO_VALUE
    }
  }

  /** L1's JSON text for `k`, or null. */
  #local(k) {
    return this.#memo === null ? localGet(this.#handle, k) : this.#memo.get(k)
  }

  /** L1's texts for `list` (null where none). */
  #localMany(list) {
    return this.#memo === null ? localMget(this.#handle, list) : this.#memo.many(list)
  }

  /** Hits the memo served, handed to the native counters before they are read. */
  #countMemoHits() {
    if (this.#memo !== null && this.#memo.hits > 0) this.#native.note(Note.MemoHits, this.#memo.takeHits())
  }

  /** @template T @param {string|number} key @returns {Promise<T|null>} */
  get(key) {
    return this.#guard(() => {
      const k = toKey(key, 'key')
      if (this.#memory) {
        const text = this.#local(k)
        return Promise.resolve(text === null ? null : parse(text))
      }
      // One crossing: L1's copy, or the Redis read queued.
      const memo = this.#memo
      const text = memo === null ? localGetOrQueue(this.#handle, k) : memo.get(k, localGetOrQueue)
      if (text !== null) return Promise.resolve(parse(text))
      return this.#call(asValue)
    })
  }

  #setJson(k, json, ttlMs) {
    if (json === NO_VALUE) return Promise.resolve(undefined)
    this.#getOrSet.forget(k)
    // JSON has no text for undefined, functions and symbols: the key goes, so get answers null.
    if (json === undefined) this.#native.queueDel([k])
    else this.#native.queueSet(k, json, ttlMs)
    return this.#call(asUndefined)
  }

  set(key, value, ttl) {
    return this.#guard(() => {
      const k = toKey(key, 'key')
      const ttlMs = toTtlMs(ttl, this.#defaultTtlMs)
      return this.#setJson(k, this.#serialize(value, k), ttlMs)
    })
  }

  del(keys) {
    return this.#guard((native) => {
      const list = Array.isArray(keys) ? toKeys(keys, 'keys') : [toKey(keys, 'keys')]
      if (list.length === 0) return Promise.resolve(undefined)
      for (const k of list) this.#getOrSet.forget(k)
      native.queueDel(list)
      return this.#call(asUndefined)
    })
  }

  /**
   * The cached value, else `factory()`'s, stored with the ttl unless the key
   * was written or deleted meanwhile; `ttlOrOptions` is a ttl or
   * `{ ttl, grace, timeout: { soft, hard }, eagerRefresh, lock }`.
   */
  getOrSet(key, factory, ttlOrOptions) {
    return this.#guard(() => {
      const k = toKey(key, 'key')
      const o = getOrSetPolicy(ttlOrOptions, this.#defaultTtlMs)
      if (typeof factory !== 'function') {
        throw new TypeError(`factory must be a function, got ${describe(factory)}`)
      }
      return this.#getOrSet.get(k, factory, o)
    })
  }

  invalidatePattern(pattern) {
    return this.#guard((native) => {
      const p = toKey(pattern, 'pattern')
      // Alone in its batch: its SCAN rounds may take far longer than
      // commandTimeoutMs, and calls made with it must keep their own deadline.
      this.#batch.flush()
      native.queueDelPattern(p)
      // New getOrSet calls must not join a run that started before this write.
      this.#getOrSet.forgetAll()
      const done = this.#call(asUndefined)
      this.#batch.flush()
      return done
    })
  }

  exists(key) {
    return this.#guard((native) => {
      native.queueExists(toKey(key, 'key'))
      return this.#call(asBool)
    })
  }

  ttl(key) {
    return this.#guard((native) => {
      native.queueTtl(toKey(key, 'key'))
      return this.#call(asTtl)
    })
  }

  ping() {
    return this.#guard((native) => {
      native.queuePing()
      return this.#call(asBool)
    })
  }

  mget(keys) {
    return this.#guard((native) => {
      const list = toKeys(keys, 'keys')
      if (list.length === 0) return Promise.resolve([])
      const local = this.#localMany(list)
      const missing = []
      for (let i = 0; i < local.length; i++) if (local[i] === null) missing.push(i)
      if (missing.length === 0 || this.#memory) {
        for (let i = 0; i < local.length; i++) local[i] = parse(local[i])
        return Promise.resolve(local)
      }
      const keysToFetch = missing.length === list.length ? list : missing.map((i) => list[i])
      native.queueMget(keysToFetch)
      return this.#call((ok, num, texts, t) => {
        if (!ok) return []
        for (let j = 0; j < missing.length; j++) local[missing[j]] = texts[t + j]
        return local.map(parse)
      })
    })
  }

  mset(record, ttl) {
    return this.#guard((native) => {
      if (typeof record !== 'object' || record === null) {
        throw new TypeError(`record must be an object of key/value pairs, got ${describe(record)}`)
      }
      const ttlMs = toTtlMs(ttl, this.#defaultTtlMs)
      const strs = []
      const gone = []
      for (const [k, value] of Object.entries(record)) {
        const json = this.#serialize(value, k)
        if (json === NO_VALUE) continue
        this.#getOrSet.forget(k)
        if (json === undefined) gone.push(k)
        else strs.push(k, json)
      }
      const calls = []
      if (strs.length > 0) {
        native.queueMset(strs, ttlMs)
        calls.push(this.#call(asUndefined))
      }
      if (gone.length > 0) {
        native.queueDel(gone)
        calls.push(this.#call(asUndefined))
      }
      return Promise.all(calls).then(asUndefined)
    })
  }

  getInfo() {
    return this.#guard((native) => {
      native.queueInfo()
      return this.#call(asInfo)
    })
  }

  clear() {
    return this.#guard((native) => {
      native.queueClear()
      this.#getOrSet.forgetAll()
      return this.#call(asUndefined)
    })
  }

  /**
   * Where swallowed failures go from now on: a winston-compatible logger,
   * `false` for nowhere, `null` for the default (rate-limited warnings on stderr).
   * Lets an application give the lazy `cacheService` its logger without touching callers.
   */
  setLogger(logger) {
    this.#log.set(logger)
  }

  /** Releases the connection and background work (and any distributed lease held). Later calls reject with a CacheClosedError. */
  close() {
    if (!this.#closed) {
      if (this.#native !== null) {
        this.#getOrSet.releaseLeases()
        this.#batch.flush()
      }
      this.#closed = true
      this.#memo?.clear()
      if (this.#native !== null) this.#native.close()
    }
    return Promise.resolve()
  }

  /** The native half for a synchronous report; throws once closed. */
  #report() {
    if (this.#native === null && !this.#closed) this.#cache()
    if (this.#native === null) throw new CacheClosedError()
    this.#countMemoHits()
    return this.#native
  }

  /** `stats()` in the Prometheus text exposition format (names `native_cache_…`); synchronous. */
  metrics() {
    return this.#report().metrics()
  }

  /**
   * Adds this instance's metrics (those of `metrics()`) to a prom-client
   * registry, default prom-client's global `register`; its samples carry the
   * label `cache` = `options.name` (default `'default'`).
   */
  registerMetrics(registry, options) {
    if (options !== undefined && (options === null || typeof options !== 'object')) {
      throw new TypeError('registerMetrics: options must be an object')
    }
    const name = options?.name ?? 'default'
    if (typeof name !== 'string' || name === '') {
      throw new TypeError('registerMetrics: options.name must be a non-empty string')
    }
    this.#cache()
    // One snapshot per scrape: every family's collect runs in the same turn.
    let snapshot = null
    this.#families ??= () => {
      if (this.#closed) return null
      if (snapshot === null) {
        this.#countMemoHits()
        snapshot = new Map(this.#native.metricFamilies().map((f) => [f.name, f]))
        queueMicrotask(() => (snapshot = null))
      }
      return snapshot
    }
    registerMetrics(registry, name, this.#families)
  }

  /** Counters of both tiers and the L1 size; synchronous. */
  stats() {
    return this.#report().stats()
  }
}

/** The lazily connected, environment-configured instance the backend imports. */
const cacheService = new CacheService(LAZY)

module.exports = { CacheService, cacheService, CacheClosedError, TimeoutError }
