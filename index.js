'use strict'

// The public surface: CacheService's methods, the original's name for name.
// Each job lives in its own module under lib/ (options, memo, batching, the
// getOrSet engine, the prom-client bridge, logging); tiers, connections,
// invalidation and counters live in Rust (src/).
const { NativeCache, Note, localGet, localGetOrQueue, localMget } = require('./native.js')
const { CacheClosedError, TimeoutError, describe } = require('./lib/errors.js')
const { toKey, toKeys, toTtlMs, getOrSetPolicy, checkFactory } = require('./lib/args.js')
const { setTags, toTagList } = require('./lib/tags.js')
const { resolveOptions, closedUnused, DEFAULT_TTL } = require('./lib/options.js')
const { Log, redactText } = require('./lib/logging.js')
const { Memo } = require('./lib/memo.js')
const { Batcher } = require('./lib/batch.js')
const { GetOrSet } = require('./lib/getorset.js')
const { parse, asUndefined, asValue, asBool, asTtl, asCount, asInfo, queueExists, queueTtl, queuePing, queueInfo, queueClear, checkName, recordTexts, msetCalls, mgetMerge, serializer, NO_VALUE } = require('./lib/calls.js')
const { registerMetrics, snapshotPerTurn } = require('./lib/metrics-bridge.js')
const { registerOpenTelemetry } = require('./lib/otel.js')
const tracing = require('./lib/tracing.js')

const { channel, trace, maybeTrace, memoOrL1, observe, settled, notStored, answered } = tracing

const LAZY = Symbol('lazy')

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
  /** `(value, key)`: JSON text, `undefined` when JSON has none, NO_VALUE when stringify throws (logged). */
  #serialize = null
  /** This instance's metric families for the prom-client bridge; null once closed. */
  #families = null
  /** What removes each OpenTelemetry registration, run by close() so the meter keeps no closed instance. */
  #otelOff = []

  /** @param {import('./index').CacheServiceOptions} [options] */
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
    this.#serialize = serializer(log)
    this.#batch = new Batcher(this.#native, this.#memory, log)
    this.#getOrSet = new GetOrSet({
      native: this.#native,
      call: (settle) => this.#batch.call(settle),
      local: (k) => this.#local(k),
      log,
      memory: this.#memory,
      serialize: this.#serialize,
      closed: () => this.#closed,
    })
  }

  /** The native half, created on first use for the lazy singleton. Throws when closed. */
  #cache() {
    if (this.#closed) throw new CacheClosedError()
    if (this.#native === null) this.#init(resolveOptions(undefined, process.env))
    return this.#native
  }

  /** Runs `fn` with the native half, turning argument errors into rejections. */
  #guard(fn) {
    try {
      return fn(this.#cache())
    } catch (err) {
      return Promise.reject(err)
    }
  }

  /** L1's JSON text for `k`, or null. */
  #local(k) {
    return this.#memo === null ? localGet(this.#handle, k) : this.#memo.get(k)
  }

  /** Hits the memo served, handed to the native counters before they are read. */
  #countMemoHits() {
    if (this.#memo !== null && this.#memo.hits > 0) this.#native.note(Note.MemoHits, this.#memo.takeHits())
  }

  /** @template T @param {string|number} key @returns {Promise<T|null>} */
  get(key) {
    return channel.hasSubscribers
      ? trace({ method: 'get', key }, (ctx) => memoOrL1(ctx, this.#memo, () => this.#get(key, ctx)))
      : this.#get(key, undefined)
  }

  /** `get`; `ctx`: the traced call's context (lib/tracing.js), undefined when untraced. */
  #get(key, ctx) {
    return this.#guard(() => {
      const k = toKey(key, 'key')
      if (this.#memory) {
        const text = this.#local(k)
        if (ctx !== undefined) ctx.outcome = text === null ? 'miss' : 'l1'
        return Promise.resolve(text === null ? null : parse(text))
      }
      // One crossing: L1's copy, or the Redis read queued.
      const memo = this.#memo
      const text = memo === null ? localGetOrQueue(this.#handle, k) : memo.get(k, localGetOrQueue)
      if (text !== null) {
        if (ctx !== undefined) ctx.outcome = 'l1'
        return Promise.resolve(parse(text))
      }
      return this.#batch.call(ctx === undefined ? asValue : observe(ctx, asValue, true))
    })
  }

  /** `tags`: checked (lib/tags.js), undefined for none. */
  #setJson(k, json, ttlMs, ctx, tags) {
    if (json === NO_VALUE) {
      if (ctx !== undefined) notStored(ctx)
      return Promise.resolve(undefined)
    }
    this.#getOrSet.forget(k)
    // JSON has no text for undefined, functions and symbols: the key goes, so get answers null.
    if (json === undefined) this.#native.queueDel([k])
    else this.#native.queueSet(k, json, ttlMs, tags)
    return this.#batch.call(settled(asUndefined, ctx))
  }

  set(key, value, ttl, options) {
    return maybeTrace(() => ({ method: 'set', key }), (ctx) => this.#set(key, value, ttl, options, ctx))
  }

  #set(key, value, ttl, options, ctx) {
    return this.#guard(() => {
      const k = toKey(key, 'key')
      const ttlMs = toTtlMs(ttl, this.#defaultTtlMs)
      const tags = options === undefined ? undefined : setTags(options)
      return this.#setJson(k, this.#serialize(value, k), ttlMs, ctx, tags)
    })
  }

  del(keys) {
    return maybeTrace(() => (Array.isArray(keys) ? { method: 'del', keys } : { method: 'del', key: keys }), (ctx) => this.#del(keys, ctx))
  }

  #del(keys, ctx) {
    return this.#guard((native) => {
      const list = Array.isArray(keys) ? toKeys(keys, 'keys') : [toKey(keys, 'keys')]
      if (list.length === 0) return answered(ctx, 'ok', undefined)
      for (const k of list) this.#getOrSet.forget(k)
      native.queueDel(list)
      return this.#batch.call(settled(asUndefined, ctx))
    })
  }

  /** The cached value, else `factory()`'s, stored unless the key was written meanwhile (lib/getorset.js). */
  getOrSet(key, factory, ttlOrOptions) {
    return channel.hasSubscribers
      ? trace({ method: 'getOrSet', key }, (ctx) => this.#getOrSetTraced(key, factory, ttlOrOptions, ctx))
      : this.#getOrSetCall(key, factory, ttlOrOptions, undefined)
  }

  #getOrSetCall(key, factory, ttlOrOptions, ctx) {
    return this.#guard(() => {
      const k = toKey(key, 'key')
      const o = getOrSetPolicy(ttlOrOptions, this.#defaultTtlMs)
      checkFactory(factory)
      return this.#getOrSet.get(k, factory, o, ctx)
    })
  }

  /** The cached values of `keys` in order; the missing ones from one `factory(missing, ctx)` call, stored (lib/getorset.js). */
  getOrSetMany(keys, factory, ttlOrOptions) {
    return channel.hasSubscribers
      ? trace({ method: 'getOrSetMany', keys }, (ctx) => memoOrL1(ctx, this.#memo, () => this.#getOrSetMany(keys, factory, ttlOrOptions, ctx)))
      : this.#getOrSetMany(keys, factory, ttlOrOptions, undefined)
  }

  #getOrSetMany(keys, factory, ttlOrOptions, ctx) {
    return this.#guard(() => {
      const list = toKeys(keys, 'keys')
      const o = getOrSetPolicy(ttlOrOptions, this.#defaultTtlMs, 'getOrSetMany')
      checkFactory(factory)
      return this.#getOrSet.many(list, factory, o, ctx)
    })
  }

  /** A traced getOrSet: its outcome from the run that answered it (lib/getorset.js sets it). */
  #getOrSetTraced(key, factory, ttlOrOptions, ctx) {
    const answer = memoOrL1(ctx, this.#memo, () => this.#getOrSetCall(key, factory, ttlOrOptions, ctx))
    return answer.then((value) => {
      // Answered before any run said how: a timeout or a factory failure answered the fail-safe copy.
      if (ctx.outcome === undefined) tracing.failsafe(ctx)
      return value
    })
  }

  invalidatePattern(pattern) {
    return maybeTrace(() => ({ method: 'invalidatePattern', pattern }), (ctx) => this.#invalidatePattern(pattern, ctx))
  }

  #invalidatePattern(pattern, ctx) {
    return this.#guard((native) => {
      const p = toKey(pattern, 'pattern')
      return this.#alone(() => native.queueDelPattern(p), asUndefined, ctx)
    })
  }

  /** A call of keys JavaScript does not know, alone in its batch: its rounds may take far longer than commandTimeoutMs, and calls made with it must keep their own deadline. */
  #alone(queue, settle, ctx) {
    this.#batch.flush()
    queue()
    // New getOrSet calls must not join a run that started before this write.
    this.#getOrSet.forgetAll()
    const done = this.#batch.call(settled(settle, ctx))
    this.#batch.flush()
    return done
  }

  /** Deletes every key written with any of `tags` (docs/tags.md); resolves with how many, 0 on failure. */
  invalidateTags(tags) {
    return maybeTrace(() => ({ method: 'invalidateTags', tags }), (ctx) => this.#invalidateTags(tags, ctx))
  }

  #invalidateTags(tags, ctx) {
    return this.#guard((native) => {
      const list = toTagList(tags, 'tags')
      if (list.length === 0) return answered(ctx, 'ok', 0)
      return this.#alone(() => native.queueDelTags(list), asCount, ctx)
    })
  }

  exists(key) {
    return this.#simple('exists', key, queueExists, asBool)
  }

  ttl(key) {
    return this.#simple('ttl', key, queueTtl, asTtl)
  }

  ping() {
    return this.#simple('ping', undefined, queuePing, asBool)
  }

  /** A call of one native op (`queue(native, arg, getOrSet)`, its reply mapped by `settle`), traced when subscribed. */
  #simple(method, arg, queue, settle) {
    return maybeTrace(
      () => (arg === undefined ? { method } : { method, key: arg }),
      (ctx) => this.#guard((native) => (queue(native, arg, this.#getOrSet), this.#batch.call(settled(settle, ctx)))),
    )
  }

  mget(keys) {
    // An L1 hit path: no closures built unless someone subscribes.
    return channel.hasSubscribers ? trace({ method: 'mget', keys }, (ctx) => this.#mget(keys, ctx)) : this.#mget(keys, undefined)
  }

  #mget(keys, ctx) {
    return this.#guard((native) => {
      const list = toKeys(keys, 'keys')
      if (list.length === 0) return answered(ctx, 'miss', [])
      const seen = ctx === undefined || this.#memo === null ? 0 : this.#memo.hits
      const local = this.#memo === null ? localMget(this.#handle, list) : this.#memo.many(list)
      const missing = []
      for (let i = 0; i < local.length; i++) if (local[i] === null) missing.push(i)
      if (missing.length === 0 || this.#memory) {
        for (let i = 0; i < local.length; i++) local[i] = parse(local[i])
        // Every key from this process: the memo's when it served them all.
        if (ctx === undefined) return Promise.resolve(local)
        return answered(ctx, missing.length === list.length ? 'miss' : this.#memo !== null && this.#memo.hits - seen === list.length ? 'memo' : 'l1', local)
      }
      const keysToFetch = missing.length === list.length ? list : missing.map((i) => list[i])
      native.queueMget(keysToFetch)
      const settle = mgetMerge(local, missing)
      return this.#batch.call(ctx === undefined ? settle : observe(ctx, settle, true))
    })
  }

  mset(record, ttl) {
    return maybeTrace(() => ({ method: 'mset', keys: record !== null && typeof record === 'object' ? Object.keys(record) : [] }), (ctx) => this.#mset(record, ttl, ctx))
  }

  #mset(record, ttl, ctx) {
    return this.#guard((native) => {
      if (typeof record !== 'object' || record === null) {
        throw new TypeError(`record must be an object of key/value pairs, got ${describe(record)}`)
      }
      const ttlMs = toTtlMs(ttl, this.#defaultTtlMs)
      const { strs, gone } = recordTexts(record, this.#serialize, (k) => this.#getOrSet.forget(k))
      return msetCalls(native, strs, gone, ttlMs, () => this.#batch.call(settled(asUndefined, ctx)), ctx)
    })
  }

  getInfo() {
    return this.#simple('getInfo', undefined, queueInfo, asInfo)
  }

  clear() {
    return this.#simple('clear', undefined, queueClear, asUndefined)
  }

  /** Where swallowed failures go from now on: a logger, `false` (nowhere) or `null` (stderr); index.d.ts. */
  setLogger(logger) {
    this.#log.set(logger)
  }

  /** Releases the connection and background work (and any distributed lease held). Later calls reject with a CacheClosedError. */
  close() {
    return maybeTrace(() => ({ method: 'close' }), (ctx) => this.#close(ctx))
  }

  #close(ctx) {
    if (ctx !== undefined) ctx.outcome = 'ok'
    if (!this.#closed) {
      if (this.#native !== null) {
        this.#getOrSet.releaseLeases()
        this.#batch.flush()
      }
      this.#closed = true
      // Factories in flight are told through their signal; their callers get what the factories answer.
      this.#getOrSet?.abortFactories()
      for (const off of this.#otelOff.splice(0)) off()
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

  /** This instance's metric families now (the memo's hits counted first), or null once closed. */
  #familiesNow() {
    if (this.#closed) return null
    this.#countMemoHits()
    return this.#native.metricFamilies()
  }

  /** `metrics()`'s families in a prom-client registry (default: the global one), labelled cache=<name> (index.d.ts). */
  registerMetrics(registry, options) {
    const name = checkName('registerMetrics', options)
    this.#cache()
    this.#families ??= snapshotPerTurn(() => this.#familiesNow())
    registerMetrics(registry, name, this.#families)
  }

  /** `metrics()`'s families as OpenTelemetry instruments with cache.name; returns what removes them (index.d.ts). */
  registerOpenTelemetry(meter, options) {
    const name = checkName('registerOpenTelemetry', options)
    this.#cache()
    const samples = (seen) => (this.#closed ? null : this.#native.invalidationSamples(seen))
    const off = registerOpenTelemetry(meter, name, () => this.#familiesNow(), samples)
    this.#otelOff.push(off)
    return off
  }

  /** `{ status, redis, local }` from state the instance holds, no Redis round trip (index.d.ts). */
  health() {
    if (this.#native === null && this.#closed) return closedUnused(process.env)
    const h = this.#report().health()
    // Closed ('memory' mode keeps no such state in Rust): nothing is served any more.
    return this.#closed ? { ...h, status: 'down', local: { serving: false, reason: 'closed' } } : h
  }

  /** Counters of both tiers and the L1 size; synchronous. */
  stats() {
    return this.#report().stats()
  }
}

/** The lazily connected, environment-configured instance the backend imports. */
const cacheService = new CacheService(LAZY)

module.exports = { CacheService, cacheService, CacheClosedError, TimeoutError }
