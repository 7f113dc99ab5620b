/**
 * `@medianest/native-cache`: MediaNest's `CacheService`, native.
 *
 * Same methods, same results, same data in Redis as the TypeScript original;
 * an in-process L1 kept coherent with Redis by RESP3 client tracking.
 */

/** A winston-compatible logger; every swallowed error is reported to it. */
export interface CacheLogger {
  error(message: string, meta?: unknown): unknown
  warn(message: string, meta?: unknown): unknown
  info?(message: string, meta?: unknown): unknown
  debug?(message: string, meta?: unknown): unknown
}

type Pem = string | Buffer | Array<string | Buffer>

/** TLS settings, with Node's `tls.connect` names. */
export interface CacheTlsOptions {
  /** Trusted CA certificates (PEM). Default: the Mozilla roots. */
  ca?: Pem
  /** Client certificate chain (PEM), for servers that require client certificates; with `key`. */
  cert?: Pem
  /** Client private key (PEM); with `cert`. */
  key?: Pem
  /** `false`: accept any server certificate. Default `true`. */
  rejectUnauthorized?: boolean
  /** The name the server certificate must carry (and SNI), when it is not the host. */
  servername?: string
}

/** The in-process tier in front of Redis. */
export interface LocalTierOptions {
  /** Bound on the real memory of the entries held in this process (keys, JSON text, bookkeeping), in bytes. Default 64 MiB; 0 turns L1 off. */
  maxBytes?: number
  /** Longest an entry is served from this process, in seconds. Default 60. */
  maxTtl?: number
}

export interface CacheSentinelOptions {
  /** `host:port` of each sentinel (`[v6]:port`; port 26379 when left out). At least one. */
  sentinels: string[]
  /** The master group's name, as in `sentinel monitor <name> …`. */
  name: string
  /** The sentinels' own password (their `requirepass`); the master's is the top-level `password`. */
  password?: string
}

export interface CacheServiceOptions {
  /**
   * `redis://` or `rediss://` (TLS) URL with user, password and db. Default: the trimmed content
   * of the file named by env `REDIS_URL_FILE` (a Docker secret) when it exists, else env `REDIS_URL`.
   */
  url?: string
  /** Used when there is no URL. Default: env `REDIS_HOST`, else `'localhost'`. */
  host?: string
  /** Default: env `REDIS_PORT`, else 6379. */
  port?: number
  /** Default: env `REDIS_USERNAME`. */
  username?: string
  /** Default: env `REDIS_PASSWORD`. */
  password?: string
  /** Database number. Default: env `REDIS_DATABASE`, else 0. */
  db?: number
  /** Connect with TLS (also for a `redis://` URL). Default: env `REDIS_TLS` (`'true'`/`'1'`). */
  tls?: boolean | CacheTlsOptions
  /**
   * Redis Sentinel: the master of `name` is asked of these sentinels on every (re)connect and
   * followed through failovers; `url`, `host` and `port` are then not used, while `username`,
   * `password`, `db` and `tls` apply to the master. Default: env `REDIS_SENTINELS`
   * (comma-separated `host:port`) with `REDIS_SENTINEL_NAME`, when no `url`, `host` or `port` is given.
   */
  sentinel?: CacheSentinelOptions
  /**
   * Redis Cluster seed nodes, as URLs or `host:port`; `username`, `password` and `tls` apply to
   * every node, `db` must be 0. Default: env `REDIS_CLUSTER_NODES` (comma-separated), unless
   * `url`, `host` or `port` is given.
   */
  cluster?: { nodes: string[] }
  /** `'memory'`: the in-process tier alone, no Redis, one process. Default: env `CACHE_MODE`, else `'redis'`. */
  mode?: 'redis' | 'memory'
  /** Seconds used when a call's ttl is falsy. Default 300. */
  defaultTtl?: number
  /** `false` for no L1. Default `{ maxBytes: 64 MiB, maxTtl: 60 }`. */
  local?: false | LocalTierOptions
  /** Bound on one Redis command; past it the call takes its failure result. Default 1000. */
  commandTimeoutMs?: number
  /**
   * Receives every swallowed failure as `(message, { code })`; `false` silences.
   * Default: rate-limited warnings on stderr.
   */
  logger?: CacheLogger | false
}

export interface CacheInfo {
  /** `DBSIZE` (in `'memory'` mode: entries). */
  keyCount: number
  /** `INFO memory`'s `used_memory_human`, e.g. `"1.05M"`; `'unknown'` on failure. */
  memoryUsage: string
}

// The counters' types are generated from Rust (src/lib.rs), documented there.
import type {
  CacheStats,
  LocalStats,
  RedisStats,
  ErrorCounts,
  TimeoutCounts,
  GraceStats,
  InvalidationLatency,
  CacheHealth,
  RedisHealth,
  LocalHealth,
  PrimaryHealth,
} from './binding'
export type { CacheStats, ErrorCounts, TimeoutCounts, GraceStats, InvalidationLatency, CacheHealth, RedisHealth, LocalHealth, PrimaryHealth }
export type LocalTierStats = LocalStats
export type RedisTierStats = RedisStats

/** The code every failure handed to the logger carries as `meta.code`. */
export type CacheErrorCode =
  | 'ERR_CACHE_TIMEOUT'
  | 'ERR_CACHE_UNAVAILABLE'
  | 'ERR_CACHE_SERVER'
  | 'ERR_CACHE_PROTOCOL'
  | 'ERR_CACHE_CLOSED'
  /** A `getOrSet` answered with its fail-safe copy (`meta.reason`: why). */
  | 'ERR_CACHE_FAILSAFE'
  /** A background factory run (eager refresh, or one that finished after its callers were answered) failed. */
  | 'ERR_CACHE_FACTORY'
  /** A value `JSON.stringify` could not serialize: nothing was stored (a warning). */
  | 'ERR_CACHE_SERIALIZE'

/** `getOrSet`'s options object (its third argument may also be a ttl in seconds, as before). */
export interface GetOrSetOptions {
  /** Seconds the value is stored for, as the number form. Default: `defaultTtl`. */
  ttl?: number | string
  /**
   * Seconds past `ttl` that the last value read or written through `getOrSet` is kept in this
   * process as a fail-safe copy, answered (with a logger warning, code `ERR_CACHE_FAILSAFE`)
   * when the factory rejects or times out, or Redis cannot be read. Default 0: no fail-safe.
   */
  grace?: number
  /** Factory timeouts in milliseconds, counted from when the factory starts. Default: none. */
  timeout?: {
    /** Past it, the fail-safe copy answers (if there is one) while the factory goes on and refreshes the cache. */
    soft?: number
    /** Past it, the fail-safe copy answers, else the call rejects with a `TimeoutError`. */
    hard?: number
  }
  /**
   * Fraction of `ttl` (above 0, below 1) after which a hit starts one background refresh
   * (shared by concurrent callers). Default: none.
   */
  eagerRefresh?: number
  /**
   * `'distributed'`: one factory run across processes. A miss takes a lease on `${key}:__lock`
   * in Redis (`SET NX PX`, `DEFAULT_LOCK_LEASE_MS`, renewed while the factory runs, released by
   * its owner only); other instances wait for the value, woken by the key's tracking
   * invalidation or a bounded poll, and take over when the lease ends. `timeout.hard` bounds
   * the wait (then the fail-safe copy, else a factory run of the caller's own). In `'memory'`
   * mode: the in-process single flight every `getOrSet` has. Default: none.
   */
  lock?: 'distributed'
  /** Tags attached to the key when the value is stored (see `SetOptions.tags`). Default: none. */
  tags?: string[]
  /**
   * The caller's own signal: its abort rejects the call with `signal.reason` (an `AbortError`
   * `DOMException` by default), at once when already aborted (the factory does not run). The
   * factory's own signal aborts only when every caller waiting on its run has aborted (or passed
   * `timeout.hard`). Listeners are removed when the call settles.
   */
  signal?: AbortSignal
}

/** What getOrSet's factory is called with. */
export interface FactoryContext {
  key: string
  /**
   * Aborts at `timeout.hard`, when every caller waiting on this run has aborted its own `signal`,
   * or on `close()` (reason: `CacheClosedError`). A factory that ignores it works as before.
   */
  signal: AbortSignal
}

/**
 * getOrSet's factory: called with a `FactoryContext`; one that takes no argument (the original's)
 * is one too, and a subclass may still declare its override's factory as `() => T`.
 */
export type GetOrSetFactory<T> = (() => T | Promise<T>) | ((ctx: FactoryContext) => T | Promise<T>)

/** What getOrSetMany's factory is called with, after the missing keys. */
export interface ManyFactoryContext {
  /** As `FactoryContext.signal`, for every key of the call. */
  signal: AbortSignal
}

/** `set`'s options. */
export interface SetOptions {
  /**
   * Non-empty strings (at most 64) attached to the key until this write's ttl passes (or the
   * tag is invalidated); `invalidateTags` deletes every key carrying one. docs/tags.md.
   */
  tags?: string[]
}

/** Rejection of a `getOrSet` whose factory ran past `timeout.hard` with no fail-safe copy. */
export declare class TimeoutError extends Error {
  readonly name: 'TimeoutError'
  readonly code: 'ERR_CACHE_FACTORY_TIMEOUT'
}

/** Rejection of any call made after `close()`. */
export declare class CacheClosedError extends Error {
  readonly code: 'ERR_CACHE_CLOSED'
}

/** The cache operations published on the `native-cache:operation` tracing channel. */
export type CacheOperation =
  | 'get'
  | 'set'
  | 'del'
  | 'getOrSet'
  | 'getOrSetMany'
  | 'invalidatePattern'
  | 'invalidateTags'
  | 'exists'
  | 'ttl'
  | 'ping'
  | 'mget'
  | 'mset'
  | 'getInfo'
  | 'clear'
  | 'close'

/**
 * The context of `diagnostics_channel.tracingChannel('native-cache:operation')`'s events
 * (start, end, asyncStart, asyncEnd, error). `outcome` is set by `end` when known at once
 * (a hit), else by `asyncEnd`.
 */
export interface CacheOperationContext {
  method: CacheOperation
  /** The key argument, as given (`get`, `set`, `del` of one key, `getOrSet`, `exists`, `ttl`). */
  key?: string | number
  /** `mget`, `mset` (the record's keys), `del` of an array, `getOrSetMany`. */
  keys?: Array<string | number>
  /** `invalidatePattern`. */
  pattern?: string
  /** `invalidateTags`, as given. */
  tags?: unknown
  /**
   * Reads (`get`, `mget`, `getOrSet`, `getOrSetMany`: its key answered from furthest away): the tier that answered: `'memo'` (a copy in JavaScript),
   * `'l1'` (this process's tier), `'redis'`, `'miss'` (nothing cached: `null`, or the factory's
   * value); other calls `'ok'`. `'error'`: the call took its failure result (`code` says which,
   * `ERR_CACHE_FAILSAFE` for a getOrSet answered with its fail-safe copy) or rejected (`error`).
   */
  outcome?: 'memo' | 'l1' | 'redis' | 'miss' | 'ok' | 'error'
  code?: CacheErrorCode | 'ERR_CACHE_FACTORY_TIMEOUT'
  /** getOrSet: `false` when the factory's value was returned but not stored (a write won, see `superseded`). */
  cached?: false
  /** getOrSet: the caller joined a run already in flight. */
  coalesced?: true
  /** Set by the channel: the resolved value, or the rejection. */
  result?: unknown
  error?: unknown
}

/** What `registerOpenTelemetry` needs of an OpenTelemetry `Meter` (typed here so `@opentelemetry/api` stays optional). */
export interface OtelMeter {
  createObservableCounter(name: string, options?: { description?: string; unit?: string }): unknown
  createObservableGauge(name: string, options?: { description?: string; unit?: string }): unknown
  createHistogram(name: string, options?: { description?: string; unit?: string; advice?: { explicitBucketBoundaries?: number[] } }): {
    record(value: number, attributes?: Record<string, string>): void
  }
  addBatchObservableCallback(callback: (result: any) => void, observables: any[]): void
  removeBatchObservableCallback(callback: (result: any) => void, observables: any[]): void
}

/** What `registerMetrics` needs of a prom-client `Registry` (typed here so prom-client stays optional). */
export interface PromRegistry {
  registerMetric(metric: unknown): void
  getSingleMetric(name: string): unknown
}

export declare class CacheService {
  /** Connects in the background; throws a `TypeError` only for a malformed option. */
  constructor(options?: CacheServiceOptions)
  /** The stored JSON parsed; `null` when missing, empty or not valid JSON (or Redis failed). */
  get<T = unknown>(key: string | number): Promise<T | null>
  /** Stores `JSON.stringify(value)` with an expiry of `ttl` seconds (falsy: `defaultTtl`). */
  set<T = unknown>(key: string | number, value: T, ttl?: number | string, options?: SetOptions): Promise<void>
  /** Deletes one key or several; an empty array does nothing. */
  del(keys: string | number | Array<string | number>): Promise<void>
  /**
   * The cached value if there is one (a cached `0`, `false`, `''`, `[]` is a hit); otherwise
   * awaits `factory()`, stores its result and returns it. Concurrent calls for one key in this
   * process run the factory once. A factory rejection rejects the call with the same value.
   * A write or delete of the key by anyone after the miss was read wins: the result is
   * returned but not stored (counted in `stats().superseded`).
   */
  getOrSet<T>(key: string | number, factory: GetOrSetFactory<T>, ttl?: number | string): Promise<T>
  /**
   * `getOrSet` with options: `ttl`, `grace` (fail-safe), `timeout: { soft, hard }`, `eagerRefresh`,
   * `lock: 'distributed'`.
   * Bad options reject with a `TypeError`/`RangeError` naming the option.
   */
  getOrSet<T>(key: string | number, factory: GetOrSetFactory<T>, options: GetOrSetOptions): Promise<T>
  /**
   * One value per key, in the order of `keys` (hits from L1 and Redis in one round). The factory
   * is called once with every missing key (deduplicated, first seen first); what it returns (a
   * plain object or a `Map` by key) is stored in one round; keys it leaves out (or gives
   * `undefined`) are `null` and not stored. A key another `getOrSet`/`getOrSetMany` is computing
   * is awaited, not asked again (across processes with `lock: 'distributed'`). The options apply
   * per key; a factory rejection answers each key's fail-safe copy, else rejects the call.
   */
  getOrSetMany<T>(
    keys: Array<string | number>,
    factory: (
      missing: string[],
      ctx: ManyFactoryContext,
    ) => Partial<Record<string, T>> | Map<string, T | undefined> | Promise<Partial<Record<string, T>> | Map<string, T | undefined>>,
    ttlOrOptions?: number | string | GetOrSetOptions,
  ): Promise<Array<T | null>>
  /** Deletes every key matching the Redis glob (`*`, `?`, `[a-c]`, `[^a]`, `\` escapes), with SCAN. */
  invalidatePattern(pattern: string): Promise<void>
  /**
   * Deletes, in Redis, every key written with any of `tags` (by a write that resolved before this
   * call started); every instance's L1 drops them as it drops any deleted key. Resolves with how
   * many keys were deleted; `0` when Redis failed (never rejects for that). docs/tags.md.
   */
  invalidateTags(tags: string[]): Promise<number>
  exists(key: string | number): Promise<boolean>
  /** Seconds left; `-2` missing; `-1` no expiry (or Redis failed). */
  ttl(key: string | number): Promise<number>
  /** `true` when Redis answers `PONG`. */
  ping(): Promise<boolean>
  /** One entry per key, `null` for missing or invalid; `[]` when Redis failed. */
  mget<T = unknown>(keys: Array<string | number>): Promise<Array<T | null>>
  /** Stores every entry with the same expiry. */
  mset<T = unknown>(record: Record<string, T>, ttl?: number | string): Promise<void>
  getInfo(): Promise<CacheInfo>
  /** Empties the selected database (`FLUSHDB`). */
  clear(): Promise<void>
  /** Releases the connection and background work; later calls reject with `CacheClosedError`. */
  close(): Promise<void>
  /** Counters of both tiers and the L1 size. */
  stats(): CacheStats
  /** `stats()` as Prometheus text exposition (`native_cache_…` names), for a `/metrics` route. */
  metrics(): string
  /**
   * Adds this instance's metrics (the families of `metrics()`, as prom-client counters, gauges
   * and a summary) to a prom-client registry, default prom-client's global `register`. Every
   * sample carries the label `cache` = `options.name` (default `'default'`); two live instances
   * need distinct names in one registry. Needs the optional peer dependency `prom-client`.
   */
  registerMetrics(registry?: PromRegistry, options?: { name?: string }): void
  /**
   * Reports this instance's metrics (the families of `metrics()`) through an OpenTelemetry
   * `Meter` (default: the global MeterProvider's, which needs the optional peer dependency
   * `@opentelemetry/api`): counters as observable counters, gauges as observable gauges; L1's
   * under node-redis' `redis.client.csc.*` names, the rest `native_cache.*`, and each invalidation-latency
   * sample in the histogram `native_cache.invalidation.duration` (seconds); every point carries
   * `cache.name` = `options.name` (default `'default'`). Returns a function that stops it.
   */
  registerOpenTelemetry(meter?: OtelMeter | null, options?: { name?: string }): () => void
  /**
   * For a readiness probe, from state the instance holds (no Redis round trip): `'down'`
   * without a Redis connection; `'degraded'` while L1 is configured but not serving
   * (`local.reason`: tracking refused, the liveness lease lapsed) or a Cluster primary is
   * unreachable; else `'ok'` (always in `'memory'` mode). Once closed: `'down'` (`local.reason` `'closed'`).
   */
  health(): CacheHealth
  /**
   * Where swallowed failures go from now on: a logger, `false` for nowhere, `null` for the
   * default (rate-limited warnings on stderr). Gives the lazy `cacheService` the application's
   * logger without touching callers.
   */
  setLogger(logger: CacheLogger | false | null): void
}

/** The lazily connected singleton, configured from the environment on first use. */
export declare const cacheService: CacheService
