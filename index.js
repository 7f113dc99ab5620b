'use strict'

// The public surface. Kept thin on purpose: argument checks, JSON.parse /
// JSON.stringify (V8's own are the fastest there are) and promise plumbing.
// Tiers, connections, invalidation and counters live in Rust (src/).
const { randomUUID } = require('node:crypto')
const { readFileSync } = require('node:fs')
const binding = require('./native.js')

const { NativeCache, localGet, localGetOrQueue, localMget, localBoard, clockMs } = binding
// Defaults live in Rust (src/options.rs) and are read from there.
const DEFAULT_TTL = binding.DEFAULT_TTL_SECONDS
const DEFAULT_MAX_BYTES = binding.DEFAULT_LOCAL_MAX_BYTES
const DEFAULT_MAX_TTL = binding.DEFAULT_LOCAL_MAX_TTL_SECONDS
const DEFAULT_TIMEOUT_MS = binding.DEFAULT_COMMAND_TIMEOUT_MS
const LOCK_LEASE_MS = binding.DEFAULT_LOCK_LEASE_MS
/** A lock waiter re-checks at least this often (doubling from LOCK_POLL_MIN_MS), woken or not. */
const LOCK_POLL_MIN_MS = 50
const LOCK_POLL_MAX_MS = 500
/** The key holding `key`'s lease: beside the main key, whose bytes and TTL stay the original's. */
const lockKey = (key) => `${key}:__lock`
const MAX_TTL_MS = Number.MAX_SAFE_INTEGER
/** Longest commandTimeoutMs (setTimeout's own limit) and local.maxTtl (ten years). */
const MAX_TIMEOUT_MS = 2 ** 31 - 1
const MAX_SETTING_SECONDS = 10 * 365 * 24 * 3600

/** Calls in one native batch at most before it is sent (see #call). */
const BATCH_SPLIT = 16
const LAZY = Symbol('lazy')
const NO_VALUE = Symbol('no value')
const EMPTY = []

class CacheClosedError extends Error {
  constructor() {
    super('CacheService is closed: create a new instance to use the cache again')
    this.name = 'CacheClosedError'
    this.code = 'ERR_CACHE_CLOSED'
  }
}

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

/** Rejection of a `getOrSet` whose factory ran past `timeout.hard` with no fail-safe copy to answer. */
class TimeoutError extends Error {
  constructor(key, ms) {
    super(`getOrSet factory for key ${JSON.stringify(key.length > 80 ? `${key.slice(0, 80)}…` : key)} did not settle within timeout.hard (${ms} ms)`)
    this.name = 'TimeoutError'
    this.code = 'ERR_CACHE_FACTORY_TIMEOUT'
  }
}

const OPTION_NAMES = new Set(['ttl', 'grace', 'timeout', 'eagerRefresh', 'lock'])

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

/**
 * getOrSet's third argument as an options object, checked: `{ ttl, grace, timeout: { soft, hard }, eagerRefresh }`.
 * Throws a TypeError/RangeError naming the bad option.
 */
function getOrSetOptions(o, defaultTtlMs) {
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
    /** Single flight across processes: a lease in Redis (see #fillLocked). */
    distributed: o.lock === 'distributed',
  }
}

const IDLE_PHASE = { started() {}, settled() {} }

/** A promise with its resolve function, for "the factory has started". */
function deferred() {
  let resolve
  const promise = new Promise((r) => {
    resolve = r
  })
  return { promise, resolve }
}

function parse(text) {
  if (!text) return null
  try {
    return JSON.parse(text)
  } catch {
    return null
  }
}

/** Indexes into the board's views (`src/board.rs` gives the layout). */
const OPEN_UNTIL = 0
const SCRATCH_DEADLINE = 1
const SCRATCH_SLOT = 0
const SCRATCH_VERSION = 1
const SCRATCH_EPOCH = 2
const EPOCH = 3
const VERSIONS = 4
/** The memo holds at most this many copies (half in each generation), in the bytes Rust sets aside for it (`NativeCache.memoBytes`). */
const MEMO_MAX_ENTRIES = 4096
/** A copy serves this many reads less one, then the next read crosses (and keeps a fresh copy). */
const MEMO_RECROSS_EVERY = 64
/** The memo judges whether its copies are being read again over this many crossings. */
const MEMO_WINDOW = 4096
/** While they are not, it keeps one crossing in this many. */
const MEMO_SPARSE_KEEP = 16
/** What a copy costs besides its text, measured (a Map entry, its record, the key): about 211 bytes. */
const MEMO_COPY_BYTES = 224
/** An mget whose keys miss the memo crosses once per key up to this many misses (keeping copies), else once for all. */
const MEMO_MGET_CROSSINGS = 16

/**
 * Copies of recently hit L1 entries, served without crossing into Rust while
 * the board Rust writes says nothing changed: the key's version and the
 * store's epoch as they were before the lookup that made the copy, the lease
 * still running, the entry's deadline not reached. A crossing costs about
 * 390 ns (`benchmark/hitpath.mjs`), a `Map` lookup a few tens.
 */
class Memo {
  /**
   * Two generations instead of an LRU list: copies are kept in `#young`; when
   * it holds its half of the budget it becomes `#old` and the previous old one
   * is dropped whole; a copy read from `#old` moves back to `#young`. No Map is
   * ever iterated (dropping the oldest of one Map one at a time made V8 walk
   * its deleted slots: twice the hit time over 100,000 keys read in turn).
   */
  #young = new Map()
  #old = new Map()
  /** Text counted at two bytes a character (V8 keeps non-Latin-1 text so), plus MEMO_COPY_BYTES a copy. */
  #youngBytes = 0
  #half
  #handle
  #f64
  #u32
  /** Added to `performance.now()` gives the board's clock (both monotonic). */
  #offset
  /** Hits served here since the last `takeHits()`. */
  hits = 0
  /** Reads the copies answered, and crossings, in this window of MEMO_WINDOW crossings. */
  #windowHits = 0
  #crossings = 0
  /** The last window's copies answered fewer reads than crossed: keep only one crossing in MEMO_SPARSE_KEEP. */
  #sparse = false

  /** A memo for the instance behind `handle`, or null where the runtime cannot share the board's memory. */
  static create(handle, maxBytes) {
    const board = localBoard(handle)
    return board === null ? null : new Memo(handle, board, maxBytes)
  }

  constructor(handle, board, maxBytes) {
    this.#handle = handle
    this.#f64 = new Float64Array(board, 0, 2)
    this.#u32 = new Uint32Array(board, 16)
    this.#half = Math.floor(maxBytes / 2)
    // Read before the board's clock, so the offset errs late: the memo stops serving early, never late.
    const before = performance.now()
    this.#offset = clockMs() - before
  }

  /**
   * L1's text for `k`, or null: from a copy while it is current, else across
   * to Rust (and kept) through `cross` (`localGet`, or `localGetOrQueue`, which
   * also queues the Redis read when it answers null).
   */
  get(k, cross = localGet) {
    const copy = this.peek(k)
    if (copy !== undefined) return copy
    const text = cross(this.#handle, k)
    if (text !== null && this.#admit() && cost(text) <= this.#half) {
      // What the board said before that lookup: a change since makes the copy stale.
      const u32 = this.#u32
      const slot = u32[SCRATCH_SLOT] + VERSIONS
      this.#add(k, { t: text, s: slot, v: u32[SCRATCH_VERSION], g: u32[SCRATCH_EPOCH], d: this.#f64[SCRATCH_DEADLINE], n: MEMO_RECROSS_EVERY })
    }
    return text
  }

  /**
   * Whether to keep a copy of what just crossed. When the keys read are too
   * many for the memo (100,000 read in turn, say), copies are dropped before
   * they are read again and keeping them only costs; the memo then keeps one
   * crossing in MEMO_SPARSE_KEEP until its copies answer as many reads as cross.
   */
  #admit() {
    const n = ++this.#crossings
    if (n >= MEMO_WINDOW) {
      this.#sparse = this.#windowHits < n
      this.#windowHits = 0
      this.#crossings = 0
    }
    return !this.#sparse || n % MEMO_SPARSE_KEEP === 0
  }

  #add(k, e) {
    this.#young.set(k, e)
    this.#youngBytes += cost(e.t)
    if (this.#young.size >= MEMO_MAX_ENTRIES / 2 || this.#youngBytes > this.#half) {
      this.#old = this.#young
      this.#young = new Map()
      this.#youngBytes = 0
    }
  }

  /** The current copy's text for `k`, or undefined: never crosses. */
  peek(k) {
    let e = this.#young.get(k)
    let young = true
    if (e === undefined) {
      e = this.#old.get(k)
      if (e === undefined) return undefined
      young = false
    }
    const u32 = this.#u32
    // Every MEMO_RECROSS_EVERY-th read of a copy crosses anyway, so the store still sees the key used (TinyLFU).
    if (e.v === u32[e.s] && e.g === u32[EPOCH] && --e.n > 0) {
      const now = performance.now() + this.#offset
      if (now < this.#f64[OPEN_UNTIL] && now < e.d) {
        this.hits++
        this.#windowHits++
        if (!young) {
          this.#old.delete(k)
          this.#add(k, e)
        }
        return e.t
      }
    }
    if (young) {
      this.#young.delete(k)
      this.#youngBytes -= cost(e.t)
    } else this.#old.delete(k)
    return undefined
  }

  takeHits() {
    const n = this.hits
    this.hits = 0
    return n
  }

  clear() {
    this.#young = new Map()
    this.#old = new Map()
    this.#youngBytes = 0
  }
}

const cost = (text) => 2 * text.length + MEMO_COPY_BYTES

function envString(env, name) {
  const v = env[name]
  return v === undefined || v === '' ? undefined : v
}

/** The URL from the environment: `REDIS_URL_FILE` (a Docker secret) when it names a file, else `REDIS_URL`. */
function envUrl(env) {
  const file = envString(env, 'REDIS_URL_FILE')
  if (file !== undefined) {
    let text
    try {
      text = readFileSync(file, 'utf8')
    } catch {
      text = undefined
    }
    if (text !== undefined && text.trim() !== '') return text.trim()
  }
  return envString(env, 'REDIS_URL')
}

/** PEM text from what Node's tls.connect takes: a string, a Buffer, or an array of them. */
function pem(value, name) {
  if (value === undefined || value === null) return undefined
  if (typeof value === 'string') {
    if (!value.includes('-----BEGIN ')) throw new TypeError(`${name} must be PEM text (-----BEGIN …), got ${describe(value)}`)
    return value
  }
  if (ArrayBuffer.isView(value)) return pem(Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('utf8'), name)
  if (Array.isArray(value)) return value.map((v, i) => pem(v, `${name}[${i}]`)).join('\n')
  throw new TypeError(`${name} must be PEM text, a Buffer or an array of them, got ${describe(value)}`)
}

/** `tls: true | { ca, cert, key, rejectUnauthorized, servername }` (or env REDIS_TLS) as the native options. */
function resolveTls(tls) {
  if (typeof tls === 'string') tls = ['true', '1', 'yes'].includes(tls.trim().toLowerCase())
  if (tls === undefined || tls === null || tls === false) return undefined
  if (tls === true) return {}
  if (typeof tls !== 'object' || Array.isArray(tls)) {
    throw new TypeError(`tls must be a boolean or { ca, cert, key, rejectUnauthorized, servername }, got ${describe(tls)}`)
  }
  const { rejectUnauthorized, servername } = tls
  if (rejectUnauthorized !== undefined && typeof rejectUnauthorized !== 'boolean') {
    throw new TypeError(`tls.rejectUnauthorized must be a boolean, got ${describe(rejectUnauthorized)}`)
  }
  const out = {
    ca: pem(tls.ca, 'tls.ca'),
    cert: pem(tls.cert, 'tls.cert'),
    key: pem(tls.key, 'tls.key'),
    rejectUnauthorized,
    servername: optionalString(servername, 'tls.servername'),
  }
  if ((out.cert === undefined) !== (out.key === undefined)) {
    throw new TypeError('tls.cert and tls.key must be given together')
  }
  return out
}

/** A logger that is not there: failures stay visible as rate-limited warnings on stderr. */
const stderrLogger = (() => {
  const EVERY_MS = 10_000
  let windowStart = 0
  let suppressed = 0
  const write = (message, meta) => {
    const now = Date.now()
    if (now - windowStart < EVERY_MS) {
      suppressed++
      return
    }
    const more = suppressed > 0 ? ` (${suppressed} more in the last ${EVERY_MS / 1000} s)` : ''
    windowStart = now
    suppressed = 0
    const code = meta && typeof meta === 'object' && typeof meta.code === 'string' ? ` [${meta.code}]` : ''
    process.stderr.write(`@medianest/native-cache: ${message}${code}${more}; pass a logger (or logger: false) to CacheService or call setLogger()\n`)
  }
  const quiet = () => {}
  return { error: write, warn: write, info: quiet, debug: quiet }
})()

function checkLogger(logger, name) {
  if (logger === undefined || logger === null || logger === false) return logger ?? null
  if (typeof logger !== 'object' && typeof logger !== 'function') {
    throw new TypeError(`${name} must be false or an object with error/warn/info/debug methods, got ${describe(logger)}`)
  }
  return logger
}

function positive(value, name) {
  if (typeof value !== 'number' || !(value > 0) || !Number.isFinite(value)) {
    throw new TypeError(`${name} must be a positive, finite number, got ${describe(value)}`)
  }
  return value
}

/** A positive number of at most `max` (beyond it, the native side's clock arithmetic would overflow). */
function positiveUpTo(value, name, max, unit) {
  positive(value, name)
  if (value > max) throw new TypeError(`${name} must be at most ${max} ${unit}, got ${describe(value)}`)
  return value
}

function integer(value, name, min, max) {
  const n = typeof value === 'string' && value.trim() !== '' ? Number(value) : value
  if (typeof n !== 'number' || !Number.isInteger(n) || n < min || n > max) {
    throw new TypeError(`${name} must be an integer from ${min} to ${max}, got ${describe(value)}`)
  }
  return n
}

function optionalString(value, name) {
  if (value === undefined || value === null) return undefined
  if (typeof value !== 'string') throw new TypeError(`${name} must be a string, got ${describe(value)}`)
  return value
}

/**
 * `sentinel: { sentinels, name, password }`, else env `REDIS_SENTINELS` (comma-separated) and
 * `REDIS_SENTINEL_NAME`, as the native options; undefined when Sentinel is not used.
 */
function resolveSentinel(sentinel, env) {
  if (sentinel === undefined || sentinel === null) {
    const list = envString(env, 'REDIS_SENTINELS')
    if (list === undefined) return undefined
    sentinel = { sentinels: list.split(',').map((s) => s.trim()).filter((s) => s !== ''), name: envString(env, 'REDIS_SENTINEL_NAME') }
  }
  if (typeof sentinel !== 'object' || Array.isArray(sentinel)) {
    throw new TypeError(`sentinel must be { sentinels, name, password }, got ${describe(sentinel)}`)
  }
  const { sentinels, name, password } = sentinel
  if (!Array.isArray(sentinels)) {
    throw new TypeError(`sentinel.sentinels must be an array of 'host:port' addresses, got ${describe(sentinels)}`)
  }
  sentinels.forEach((s, i) => {
    if (typeof s !== 'string') {
      throw new TypeError(`sentinel.sentinels[${i}] must be a 'host:port' string, got ${describe(s)}`)
    }
  })
  if (typeof name !== 'string') {
    throw new TypeError(`sentinel.name must name the master group (sentinel monitor <name>), got ${describe(name)}`)
  }
  return { sentinels: [...sentinels], name, password: optionalString(password, 'sentinel.password') }
}

/** `cluster: { nodes }` (or env REDIS_CLUSTER_NODES, comma-separated) as the seed node list. */
function resolveCluster(cluster) {
  if (cluster === undefined || cluster === null) return undefined
  if (typeof cluster !== 'object' || Array.isArray(cluster)) {
    throw new TypeError(`cluster must be { nodes: [...] }, got ${describe(cluster)}`)
  }
  const { nodes } = cluster
  if (!Array.isArray(nodes) || nodes.some((n) => typeof n !== 'string' || n === '')) {
    throw new TypeError(`cluster.nodes must be an array of URLs or host:port strings, got ${describe(nodes)}`)
  }
  if (nodes.length === 0) throw new TypeError('cluster.nodes must list at least one node')
  return nodes
}

/** Options plus environment fallbacks, checked; throws a TypeError naming the bad option. */
function resolveOptions(options, env) {
  if (options === undefined || options === null) options = {}
  else if (typeof options !== 'object' || Array.isArray(options)) {
    throw new TypeError(`options must be an object, got ${describe(options)}`)
  }
  const mode = options.mode ?? envString(env, 'CACHE_MODE') ?? 'redis'
  if (mode !== 'redis' && mode !== 'memory') {
    throw new TypeError(`mode must be 'redis' or 'memory', got ${describe(mode)}`)
  }
  // By presence: `cluster` and `sentinel` are two topologies, never one instance's.
  const given = (k) => options[k] !== undefined && options[k] !== null
  if (given('cluster') && given('sentinel')) {
    throw new TypeError('cluster and sentinel cannot be used together: give one of them')
  }
  // REDIS_SENTINELS applies only when no address is given explicitly.
  const explicitAddress = ['url', 'host', 'port'].some(given)
  const sentinel =
    given('cluster') || (!given('sentinel') && explicitAddress) ? undefined : resolveSentinel(options.sentinel, env)
  if (sentinel !== undefined && options.url !== undefined) {
    throw new TypeError('url cannot be used with sentinel: the sentinels name the master; give username, password, db and tls instead')
  }
  // Explicit connection options win over REDIS_URL; an explicit url wins over everything.
  const explicitParts = ['host', 'port', 'username', 'password', 'db', 'tls'].some((k) => options[k] !== undefined)
  const url = optionalString(options.url ?? (explicitParts || sentinel !== undefined ? undefined : envUrl(env)), 'url')
  const tls = resolveTls(options.tls ?? envString(env, 'REDIS_TLS'))
  const envNodes = explicitAddress || given('sentinel') ? undefined : envString(env, 'REDIS_CLUSTER_NODES')
  const clusterNodes = resolveCluster(options.cluster ?? (envNodes && { nodes: envNodes.split(',').map((n) => n.trim()).filter(Boolean) }))
  if (clusterNodes !== undefined && sentinel !== undefined) {
    throw new TypeError('REDIS_CLUSTER_NODES and REDIS_SENTINELS cannot be used together: set one of them')
  }
  let local = options.local
  if (local === undefined || local === true) local = {}
  if (local !== false && (typeof local !== 'object' || local === null || Array.isArray(local))) {
    throw new TypeError(`local must be false or { maxBytes, maxTtl }, got ${describe(local)}`)
  }
  let maxBytes = 0
  let maxTtl = DEFAULT_MAX_TTL
  if (local !== false) {
    maxBytes = local.maxBytes ?? DEFAULT_MAX_BYTES
    if (typeof maxBytes !== 'number' || !Number.isInteger(maxBytes) || maxBytes < 0) {
      throw new TypeError(`local.maxBytes must be a non-negative integer, got ${describe(maxBytes)}`)
    }
    maxTtl = positiveUpTo(local.maxTtl ?? DEFAULT_MAX_TTL, 'local.maxTtl', MAX_SETTING_SECONDS, 'seconds')
  }
  if (mode === 'memory' && maxBytes === 0) maxBytes = DEFAULT_MAX_BYTES
  const logger = checkLogger(options.logger, 'logger')
  return {
    native: {
      mode,
      url,
      host: optionalString(options.host ?? envString(env, 'REDIS_HOST'), 'host') ?? 'localhost',
      port: integer(options.port ?? envString(env, 'REDIS_PORT') ?? 6379, 'port', 1, 65535),
      username: optionalString(options.username ?? envString(env, 'REDIS_USERNAME'), 'username'),
      password: optionalString(options.password ?? envString(env, 'REDIS_PASSWORD'), 'password'),
      db: integer(options.db ?? envString(env, 'REDIS_DATABASE') ?? 0, 'db', 0, 2 ** 31 - 1),
      tls,
      sentinel,
      clusterNodes,
      localMaxBytes: maxBytes,
      localMaxTtlMs: maxTtl * 1000,
      commandTimeoutMs: positiveUpTo(options.commandTimeoutMs ?? DEFAULT_TIMEOUT_MS, 'commandTimeoutMs', MAX_TIMEOUT_MS, 'ms'),
    },
    defaultTtlMs: Math.round(positiveUpTo(options.defaultTtl ?? DEFAULT_TTL, 'defaultTtl', MAX_TTL_MS / 1000, 'seconds') * 1000),
    logger,
  }
}

// How each op's replies become the value its promise resolves to:
// (ok, num, texts, t) where texts[t] is the op's first text (Rust says where).
const asUndefined = () => undefined
const asValue = (ok, num, texts, t) => parse(texts[t])
const asBool = (ok, num) => ok && num === 1
const asTtl = (ok, num) => (ok ? num : -1)
const asInfo = (ok, num, texts, t) =>
  ok ? { keyCount: num, memoryUsage: texts[t] ?? 'unknown' } : { keyCount: 0, memoryUsage: 'unknown' }
const asText = (ok, num, texts, t) => texts[t] ?? null

// prom-client bridge. prom-client is an optional peer dependency: required
// only when registerMetrics() is called. Per registry, one prom-client metric
// per family collects from every instance registered in it, each instance's
// samples labelled cache="<name>".
const bridged = new WeakMap()

/** The prom-client a registry is used with; a clear error when it is not installed. */
function promClient() {
  try {
    return require('prom-client')
  } catch (e) {
    const err = new Error('registerMetrics needs prom-client: npm install prom-client')
    err.cause = e
    throw err
  }
}

/** `collect` of one family: each live instance's samples with its label (snapshots shared within one scrape). */
function collector(caches, family) {
  return function collect() {
    this.reset()
    for (const [name, families] of caches) {
      const snapshot = families()
      if (snapshot === null) {
        caches.delete(name)
        continue
      }
      const f = snapshot.get(family)
      if (f === undefined) continue
      for (const s of f.samples) {
        if (this.type === 'counter') this.inc({ cache: name, ...s.labels }, s.value)
        else this.set({ cache: name, ...s.labels }, s.value)
      }
    }
  }
}

/** A summary whose quantiles the addon computed: prom-client's Summary computes its own, so this is a metric object of the shape prom-client's Registry reads. */
function summary(registry, caches, family) {
  const metric = {
    name: family.name,
    help: family.help,
    type: 'summary',
    aggregator: 'sum',
    async get() {
      const values = []
      for (const [name, families] of caches) {
        const f = families()?.get(family.name)
        for (const s of f?.samples ?? []) {
          const labels = { cache: name, ...s.labels }
          if (labels.quantile !== undefined) labels.quantile = Number(labels.quantile)
          values.push(s.name === family.name ? { labels, value: s.value } : { metricName: s.name, labels, value: s.value })
        }
      }
      return { name: family.name, help: family.help, type: 'summary', values, aggregator: 'sum' }
    },
    reset() {},
  }
  registry.registerMetric(metric)
}

function registerMetrics(registry, name, families) {
  const prom = promClient()
  registry ??= prom.register
  if (
    registry === null ||
    typeof registry !== 'object' ||
    typeof registry.registerMetric !== 'function' ||
    typeof registry.getSingleMetric !== 'function'
  ) {
    throw new TypeError('registerMetrics: registry must be a prom-client Registry')
  }
  let caches = bridged.get(registry)
  if (caches === undefined) bridged.set(registry, (caches = new Map()))
  // Families the registry lacks: all the first time, again after registry.clear().
  for (const f of families()?.values() ?? []) {
    if (registry.getSingleMetric(f.name) !== undefined) continue
    const labelNames = ['cache', ...new Set(f.samples.flatMap((s) => Object.keys(s.labels)))]
    const config = { name: f.name, help: f.help, labelNames, registers: [registry], collect: collector(caches, f.name) }
    if (f.kind === 'counter') new prom.Counter(config)
    else if (f.kind === 'gauge') new prom.Gauge(config)
    else summary(registry, caches, f)
  }
  const other = caches.get(name)
  if (other !== undefined && other !== families && other() !== null) {
    throw new Error(`registerMetrics: another instance is registered as cache="${name}" in this registry; give each a distinct options.name`)
  }
  caches.set(name, families)
}

class CacheService {
  #native = null
  /** This instance's handle for the hit path (free functions are cheaper to call than methods). */
  #handle = -1
  /** Copies of hot L1 entries served without a native call; null with L1 off. */
  #memo = null
  #memory = false
  #defaultTtlMs = DEFAULT_TTL * 1000
  /** The user's logger; null: the stderr default; false: silent. */
  #logger = null
  #loggerSet = false
  #closed = false
  /** The batch this event-loop turn is filling, sent on process.nextTick. */
  #pending = null
  /**
   * Batches sent and not yet settled, oldest first. Native replies can arrive
   * out of order (each batch's promise is its own task), so a batch Redis
   * answered settles only after every earlier one: promises settle in call
   * order, as ioredis'. A batch failed by its own deadline settles at once.
   */
  #sent = []
  /** getOrSet runs in flight, by key: concurrent callers join instead of running the factory again. */
  #inflight = new Map()
  /**
   * Eager refreshes in flight, by key. Apart from #inflight: callers that can
   * still read the current value must not wait for a refresh; only a caller
   * that finds nothing joins it instead of running the factory again.
   */
  #refreshing = new Map()
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
    try {
      this.#native = new NativeCache(resolved.native)
      this.#handle = this.#native.handle
      if (resolved.native.localMaxBytes > 0) this.#memo = Memo.create(this.#handle, this.#native.memoBytes)
    } catch (err) {
      throw new TypeError(err && err.message ? err.message : String(err))
    }
    this.#memory = resolved.native.mode === 'memory'
    this.#defaultTtlMs = resolved.defaultTtlMs
    // The lazy singleton may have been given a logger before its first use.
    if (!this.#loggerSet) this.#logger = resolved.logger
  }

  /** The native half, created on first use for the lazy singleton. Throws when closed. */
  #cache() {
    if (this.#closed) throw new CacheClosedError()
    if (this.#native === null) this.#init(resolveOptions(undefined, process.env))
    return this.#native
  }

  #log(level, message, meta) {
    const logger = this.#logger === null ? stderrLogger : this.#logger
    if (logger === false) return
    const fn = logger[level] ?? logger.error
    if (typeof fn !== 'function') return
    try {
      if (meta === undefined) fn.call(logger, message)
      else fn.call(logger, message, meta)
    } catch {
      // A throwing logger must not turn a cache miss into a failure.
    }
  }

  #drainLogs() {
    for (const { level, message, code } of this.#native.drainLogs()) this.#log(level, message, { code })
  }

  /**
   * The promise of the call just queued natively (`native.queue*`): `settle`
   * maps its reply to the value. In 'memory' mode it runs at once; for Redis,
   * the calls of this event-loop turn go in one batch, sent on process.nextTick
   * (or at once when it reaches BATCH_SPLIT calls).
   */
  #call(settle) {
    if (this.#memory) {
      const r = this.#native.runSync()
      return Promise.resolve(settle(r.ok[0], r.nums[0], r.texts, r.starts[0]))
    }
    let waiters = this.#pending
    if (waiters === null) {
      waiters = this.#pending = []
      process.nextTick(this.#flush)
    }
    const promise = new Promise((resolve) => waiters.push({ settle, resolve }))
    // A turn with many calls goes as several batches: the first is out (and
    // Redis at work) while this thread is still making the rest.
    if (waiters.length >= BATCH_SPLIT) this.#flush()
    return promise
  }

  #flush = () => {
    const waiters = this.#pending
    if (waiters === null) return
    this.#pending = null
    const batch = { waiters, replies: null, done: false }
    this.#sent.push(batch)
    let replies
    try {
      replies = this.#native.flush()
    } catch (err) {
      this.#settled(batch, null, err)
      return
    }
    replies.then(
      (r) => this.#settled(batch, r, null),
      (err) => this.#settled(batch, null, err),
    )
  }

  /** Settles `batch` (at once if Redis had no part in it), then every answered batch at the head of the queue. */
  #settled(batch, replies, error) {
    const sent = this.#sent
    if (error !== null || replies.unanswered) {
      // Nothing from Redis in it: it waits for no earlier batch (a call keeps its own commandTimeoutMs).
      sent.splice(sent.indexOf(batch), 1)
      if (error === null) this.#dispatch(batch.waiters, replies)
      else this.#fail(batch.waiters, error)
    } else {
      batch.replies = replies
      batch.done = true
    }
    while (sent.length > 0 && sent[0].done) {
      const b = sent.shift()
      this.#dispatch(b.waiters, b.replies)
    }
  }

  #dispatch(waiters, r) {
    for (const e of r.errors) this.#log('error', e.message, { code: e.code })
    this.#drainLogs()
    const { ok, nums, texts, starts } = r
    for (let i = 0; i < waiters.length; i++) {
      const w = waiters[i]
      w.resolve(w.settle(ok[i], nums[i], texts, starts[i]))
    }
  }

  #fail(waiters, err) {
    this.#log('error', 'Cache error: native call failed', { error: err, code: 'ERR_CACHE_PROTOCOL' })
    for (const w of waiters) w.resolve(w.settle(false, 0, EMPTY, 0))
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
      this.#log('warn', 'Cache set skipped: the value cannot be serialized to JSON', { key, error })
      return NO_VALUE
    }
  }

  /** L1's JSON text for `k`, or null. */
  #local(k) {
    return this.#memo === null ? localGet(this.#handle, k) : this.#memo.get(k)
  }

  /** L1's texts for `list` (null where none): from the memo, then one crossing per missed key for a few, else one for them all. */
  #localMany(list) {
    const memo = this.#memo
    if (memo === null) return localMget(this.#handle, list)
    const out = new Array(list.length)
    const missed = []
    for (let i = 0; i < list.length; i++) {
      const copy = memo.peek(list[i])
      if (copy === undefined) missed.push(i)
      else out[i] = copy
    }
    if (missed.length > MEMO_MGET_CROSSINGS) {
      const texts = localMget(this.#handle, missed.length === list.length ? list : missed.map((i) => list[i]))
      for (let j = 0; j < missed.length; j++) out[missed[j]] = texts[j]
    } else {
      for (const i of missed) out[i] = memo.get(list[i])
    }
    return out
  }

  /** Hits the memo served, handed to the native counters before they are read. */
  #countMemoHits() {
    if (this.#memo !== null && this.#memo.hits > 0) this.#native.noteLocalHits(this.#memo.takeHits())
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

  /** JSON text for `k` from Redis, or null: getOrSet's read after an L1 miss. */
  #fetchText(native, k) {
    native.queueGet(k)
    return this.#call(asText)
  }

  #setJson(k, json, ttlMs) {
    if (json === NO_VALUE) return Promise.resolve(undefined)
    this.#inflight.delete(k)
    this.#refreshing.delete(k)
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
      for (const k of list) {
        this.#inflight.delete(k)
        this.#refreshing.delete(k)
      }
      native.queueDel(list)
      return this.#call(asUndefined)
    })
  }

  getOrSet(key, factory, ttl) {
    if (typeof ttl === 'object' && ttl !== null && !Array.isArray(ttl)) return this.#getOrSetWith(key, factory, ttl)
    return this.#guard((native) => {
      const k = toKey(key, 'key')
      const ttlMs = toTtlMs(ttl, this.#defaultTtlMs)
      if (typeof factory !== 'function') {
        throw new TypeError(`factory must be a function, got ${describe(factory)}`)
      }
      // The hit path: answered from L1 at once, like get.
      const text = this.#local(k)
      if (text !== null) {
        const value = parse(text)
        if (value !== null) return Promise.resolve(value)
      }
      const running = this.#inflight.get(k)
      if (running !== undefined) {
        native.noteCoalesced()
        // Each joiner gets its own copy: parsed from the stored text, or the value itself when JSON had none.
        // A fail-safe answer (a run with grace, Redis down) is not for a caller that did not ask for one.
        return running.then((r) =>
          r.stale ? this.#fill(native, k, factory, ttlMs).then((own) => own.value) : typeof r.json === 'string' ? parse(r.json) : r.value,
        )
      }
      const run = this.#fill(native, k, factory, ttlMs)
      this.#inflight.set(k, run)
      const done = () => {
        if (this.#inflight.get(k) === run) this.#inflight.delete(k)
      }
      run.then(done, done)
      // The caller that ran the factory gets its value itself, as with the original.
      return run.then((r) => r.value)
    })
  }

  async #fill(native, k, factory, ttlMs) {
    const cached = this.#memory ? null : await this.#fetchText(native, k)
    const hit = parse(cached)
    // A hit parsed once: this caller keeps that copy, joiners parse their own from json.
    if (hit !== null) return { json: cached, value: hit }
    native.noteFactoryRun()
    const value = await factory()
    const json = this.#serialize(value, k)
    if (!this.#closed) await this.#setJson(k, json, ttlMs)
    return { value, json }
  }

  /** getOrSet with an options object: `grace` (fail-safe), `timeout`, `eagerRefresh`. */
  #getOrSetWith(key, factory, options) {
    return this.#guard((native) => {
      const k = toKey(key, 'key')
      const o = getOrSetOptions(options, this.#defaultTtlMs)
      if (typeof factory !== 'function') {
        throw new TypeError(`factory must be a function, got ${describe(factory)}`)
      }
      const text = this.#local(k)
      if (text !== null) {
        const value = parse(text)
        if (value !== null) {
          if (o.track && native.onHit(k, o.keepMs, o.refreshLeftMs)) this.#refresh(native, k, factory, o)
          return Promise.resolve(value)
        }
      }
      let run = this.#inflight.get(k)
      let answer
      if (run !== undefined) {
        native.noteCoalesced()
        answer = run.then((r) => {
          if (!r.stale) return typeof r.json === 'string' ? parse(r.json) : r.value
          // Redis was down and the run answered from the copy: not for a caller without grace.
          if (o.graceMs === 0) return this.#fillWith(native, k, factory, o, IDLE_PHASE).then((own) => own.value)
          native.noteFailsafe()
          return parse(r.json)
        })
      } else {
        run = this.#start(k, (phase) => this.#fillWith(native, k, factory, o, phase))
        answer = run.then((r) => {
          if (r.stale) native.noteFailsafe()
          if (r.refresh) this.#refresh(native, k, factory, o)
          return r.value
        })
      }
      return this.#bounded(native, k, run, answer, o)
    })
  }

  /**
   * Registers a getOrSet run for `k` so concurrent callers join it. `body(phase)`
   * calls `phase.started()` as the factory starts and `phase.settled()` when it
   * settles: callers' timeouts count only while the factory runs.
   */
  #start(k, body) {
    const started = deferred()
    const settled = deferred()
    const run = body({ started: started.resolve, settled: settled.resolve })
    run.started = started.promise
    run.settled = settled.promise
    this.#inflight.set(k, run)
    const done = () => {
      if (this.#inflight.get(k) === run) this.#inflight.delete(k)
    }
    run.then(done, done)
    return run
  }

  /** The fail-safe copy of `k`, parsed, or NO_VALUE. */
  #graceValue(native, k, o) {
    if (o.graceMs === 0 || this.#closed) return NO_VALUE
    const copy = native.graceGet(k)
    const value = parse(copy)
    return value === null ? NO_VALUE : value
  }

  /** Answers from the fail-safe copy: counted, and said once per run through the logger. */
  #failsafe(native, k, run, value, reason, error) {
    native.noteFailsafe()
    if (!run.failsafeLogged) {
      run.failsafeLogged = true
      const meta = { code: 'ERR_CACHE_FAILSAFE', key: k, reason }
      if (error !== undefined) meta.error = error
      this.#log('warn', `Cache getOrSet answered ${JSON.stringify(k)} with its fail-safe copy (${reason})`, meta)
    }
    return value
  }

  async #fillWith(native, k, factory, o, phase) {
    if (!this.#memory) {
      native.queueGetTtl(k)
      const read = await this.#call((ok, num, texts, t) => ({ ok, text: texts[t] ?? null, pttl: num }))
      const hit = parse(read.text)
      if (hit !== null) {
        if (o.track && !this.#closed) native.graceKeep(k, read.text, read.pttl, o.keepMs)
        const refresh = o.refreshLeftMs >= 0 && read.pttl >= 0 && read.pttl <= o.refreshLeftMs
        return { json: read.text, value: hit, refresh }
      }
      // Redis could not be read: the copy rather than the factory, when there is one.
      if (!read.ok) {
        const copy = o.graceMs > 0 && !this.#closed ? native.graceGet(k) : null
        const value = parse(copy)
        if (value !== null) {
          this.#log('warn', `Cache getOrSet answered ${JSON.stringify(k)} with its fail-safe copy (redis-unavailable)`, {
            code: 'ERR_CACHE_FAILSAFE',
            key: k,
            reason: 'redis-unavailable',
          })
          return { json: copy, value, stale: true }
        }
      }
    }
    const refresh = this.#refreshing.get(k)
    if (refresh !== undefined) {
      native.noteCoalesced()
      phase.started()
      const joined = refresh.then((r) => ({ json: r.json, value: typeof r.json === 'string' ? parse(r.json) : r.value }))
      joined.then(phase.settled, phase.settled)
      return joined
    }
    if (o.distributed && !this.#memory) return this.#fillLocked(native, k, factory, o, phase)
    return this.#produce(native, k, factory, o, phase)
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
   */
  async #fillLocked(native, k, factory, o, phase) {
    const lk = lockKey(k)
    const token = randomUUID()
    const deadline = o.hard > 0 ? Date.now() + o.hard : Infinity
    let delay = LOCK_POLL_MIN_MS
    let waited = false
    for (;;) {
      const left = deadline - Date.now()
      const woken = native.waitChange([k, lk], Math.min(delay, Math.max(left, 0)))
      native.queueLockTake(lk, token, LOCK_LEASE_MS)
      const take = this.#call((ok, num) => ({ ok, taken: num === 1 }))
      native.queueGetTtl(k)
      const read = await this.#call((ok, num, texts, t) => ({ ok, text: texts[t] ?? null, pttl: num }))
      const { ok, taken } = await take
      const hit = parse(read.text)
      if (hit !== null) {
        if (taken) this.#releaseLock(native, lk, token)
        if (o.track && !this.#closed) native.graceKeep(k, read.text, read.pttl, o.keepMs)
        const refresh = o.refreshLeftMs >= 0 && read.pttl >= 0 && read.pttl <= o.refreshLeftMs
        return { json: read.text, value: hit, refresh }
      }
      if (taken) return this.#produceLocked(native, k, factory, o, phase, lk, token)
      if (!ok || !read.ok || this.#closed) {
        // Redis failed mid-lock: today's failure paths, never a wait on a lease that cannot be seen.
        const copy = this.#graceValue(native, k, o)
        if (copy !== NO_VALUE) return this.#staleAnswer(k, copy, 'redis-unavailable')
        return this.#produce(native, k, factory, o, phase)
      }
      if (!waited) {
        waited = true
        native.noteLockWait()
      }
      if (Date.now() >= deadline) {
        // timeout.hard spent waiting: the copy, else a run of this caller's own.
        const copy = this.#graceValue(native, k, o)
        if (copy !== NO_VALUE) return this.#staleAnswer(k, copy, 'lock-timeout')
        return this.#produce(native, k, factory, o, phase)
      }
      if (!(await woken)) delay = Math.min(delay * 2, LOCK_POLL_MAX_MS)
    }
  }

  /** A lock wait or lock failure answered from the fail-safe copy (counted by the caller's run). */
  #staleAnswer(k, value, reason) {
    this.#log('warn', `Cache getOrSet answered ${JSON.stringify(k)} with its fail-safe copy (${reason})`, {
      code: 'ERR_CACHE_FAILSAFE',
      key: k,
      reason,
    })
    return { json: JSON.stringify(value), value, stale: true }
  }

  /** The lease holder's run: renews the lease while the factory runs, releases it after the write. */
  async #produceLocked(native, k, factory, o, phase, lk, token) {
    const renew = setInterval(() => {
      if (this.#closed) return
      native.queueLockRenew(lk, token, LOCK_LEASE_MS)
      this.#call(asUndefined)
    }, LOCK_LEASE_MS / 3)
    // A factory that never settles keeps the process alive by itself, or not: the lease must not.
    renew.unref?.()
    const settled = () => {
      clearInterval(renew)
      phase.settled()
    }
    let released = false
    const release = () => {
      released = true
      this.#releaseLock(native, lk, token)
    }
    try {
      // Released right behind the write, before the callers are answered.
      return await this.#produce(native, k, factory, o, { started: phase.started, settled }, release)
    } finally {
      clearInterval(renew)
      if (!released) release()
    }
  }

  #releaseLock(native, lk, token) {
    if (this.#closed) return
    native.queueLockRelease(lk, token)
    this.#call(asUndefined)
  }

  /** Runs the factory, stores its value with the ttl and keeps it as the fail-safe copy. */
  async #produce(native, k, factory, o, phase, afterWrite) {
    phase.started()
    native.noteFactoryRun()
    let value
    try {
      value = await factory()
    } finally {
      phase.settled()
    }
    const json = this.#serialize(value, k)
    if (!this.#closed) {
      if (typeof json === 'string' && o.track) native.graceKeep(k, json, o.ttlMs, o.keepMs)
      const written = this.#setJson(k, json, o.ttlMs)
      // Queued in the same turn, so sent in the same pipeline, after the write.
      if (afterWrite !== undefined) afterWrite()
      await written
    }
    return { value, json }
  }

  /** One background refresh of `k` (eagerRefresh), unless one is in flight or a caller is already filling it. */
  #refresh(native, k, factory, o) {
    if (this.#closed || this.#refreshing.has(k) || this.#inflight.has(k)) return
    native.noteEagerRefresh()
    const run = this.#produce(native, k, factory, o, IDLE_PHASE)
    this.#refreshing.set(k, run)
    const done = () => {
      if (this.#refreshing.get(k) === run) this.#refreshing.delete(k)
    }
    run.then(done, (error) => {
      done()
      this.#log('warn', `Cache eager refresh of ${JSON.stringify(k)} failed; the current value stays`, { code: 'ERR_CACHE_FACTORY', key: k, error })
    })
  }

  /**
   * One caller's answer from a run: a factory failure answers the fail-safe copy
   * when there is one; past `timeout.soft` the copy answers while the factory
   * goes on; past `timeout.hard` the copy or a TimeoutError.
   */
  #bounded(native, k, run, answer, o) {
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
            this.#log('warn', `Cache getOrSet factory for ${JSON.stringify(k)} failed after its callers were answered`, { code: 'ERR_CACHE_FACTORY', key: k, error })
            return
          }
          const copy = this.#graceValue(native, k, o)
          if (copy === NO_VALUE) finish(reject, error)
          else finish(resolve, this.#failsafe(native, k, run, copy, 'factory-error', error))
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
              const copy = this.#graceValue(native, k, o)
              if (copy === NO_VALUE) return
              native.noteTimeout(false)
              finish(resolve, this.#failsafe(native, k, run, copy, 'soft-timeout'))
            }, o.soft),
          )
        }
        if (o.hard > 0) {
          timers.push(
            setTimeout(() => {
              native.noteTimeout(true)
              // Callers from now on start a run of their own rather than join this one.
              if (this.#inflight.get(k) === run) this.#inflight.delete(k)
              const copy = this.#graceValue(native, k, o)
              if (copy === NO_VALUE) finish(reject, new TimeoutError(k, o.hard))
              else finish(resolve, this.#failsafe(native, k, run, copy, 'hard-timeout'))
            }, o.hard),
          )
        }
      })
    })
  }

  invalidatePattern(pattern) {
    return this.#guard((native) => {
      const p = toKey(pattern, 'pattern')
      // Alone in its batch: its SCAN rounds may take far longer than
      // commandTimeoutMs, and calls made with it must keep their own deadline.
      this.#flush()
      native.queueDelPattern(p)
      // New getOrSet calls must not join a run that started before this write.
      this.#inflight.clear()
      this.#refreshing.clear()
      const done = this.#call(asUndefined)
      this.#flush()
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
        this.#inflight.delete(k)
        this.#refreshing.delete(k)
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
      this.#inflight.clear()
      this.#refreshing.clear()
      return this.#call(asUndefined)
    })
  }

  /**
   * Where swallowed failures go from now on: a winston-compatible logger,
   * `false` for nowhere, `null` for the default (rate-limited warnings on stderr).
   * Lets an application give the lazy `cacheService` its logger without touching callers.
   */
  setLogger(logger) {
    this.#logger = checkLogger(logger, 'logger')
    this.#loggerSet = true
  }

  /** Releases the connection and background work. Later calls reject with a CacheClosedError. */
  close() {
    if (!this.#closed) {
      this.#flush()
      this.#closed = true
      this.#memo?.clear()
      if (this.#native !== null) this.#native.close()
    }
    return Promise.resolve()
  }

  /** `stats()` in the Prometheus text exposition format (names `native_cache_…`); synchronous. */
  metrics() {
    if (this.#native === null && !this.#closed) this.#cache()
    if (this.#native === null) throw new CacheClosedError()
    this.#countMemoHits()
    return this.#native.metrics()
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
    if (this.#native === null && !this.#closed) this.#cache()
    if (this.#native === null) throw new CacheClosedError()
    this.#countMemoHits()
    return this.#native.stats()
  }
}

/** The lazily connected, environment-configured instance the backend imports. */
const cacheService = new CacheService(LAZY)

module.exports = { CacheService, cacheService, CacheClosedError, TimeoutError }
