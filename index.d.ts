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

/** The in-process tier in front of Redis. */
export interface LocalTierOptions {
  /** Bound on keys plus JSON text held in this process, in bytes. Default 64 MiB; 0 turns L1 off. */
  maxBytes?: number
  /** Longest an entry is served from this process, in seconds. Default 60. */
  maxTtl?: number
}

export interface CacheServiceOptions {
  /** `redis://` or `rediss://` (TLS) URL with user, password and db. Default: env `REDIS_URL`. */
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
  /** Connect with TLS. Default: env `REDIS_TLS` (`'true'`/`'1'`). */
  tls?: boolean
  /** `'memory'`: the in-process tier alone, no Redis, one process. Default: env `CACHE_MODE`, else `'redis'`. */
  mode?: 'redis' | 'memory'
  /** Seconds used when a call's ttl is falsy. Default 300. */
  defaultTtl?: number
  /** `false` for no L1. Default `{ maxBytes: 64 MiB, maxTtl: 60 }`. */
  local?: false | LocalTierOptions
  /** Bound on one Redis command; past it the call takes its failure result. Default 1000. */
  commandTimeoutMs?: number
  /** Receives every swallowed error. Default: quiet. */
  logger?: CacheLogger
}

export interface CacheInfo {
  /** `DBSIZE` (in `'memory'` mode: entries). */
  keyCount: number
  /** `INFO memory`'s `used_memory_human`, e.g. `"1.05M"`; `'unknown'` on failure. */
  memoryUsage: string
}

export interface LocalTierStats {
  /** Whether L1 is serving (configured, and the server tracks keys for it). */
  enabled: boolean
  hits: number
  misses: number
  /** Entries dropped to stay within `maxBytes`. */
  evictions: number
  /** Keys invalidated by Redis tracking pushes. */
  invalidations: number
  /** Whole-L1 flushes caused by `FLUSHDB`/`FLUSHALL` elsewhere. */
  flushes: number
  entries: number
  /** Keys plus JSON text, in bytes. */
  bytes: number
  maxBytes: number
}

export interface RedisTierStats {
  connected: boolean
  hits: number
  misses: number
  /** Calls that took their failure result (down, timeout, error reply). */
  errors: number
  reconnects: number
}

export interface CacheStats {
  mode: 'redis' | 'memory'
  local: LocalTierStats
  redis: RedisTierStats
  /** `getOrSet` calls that joined a factory run already in flight instead of running their own. */
  coalesced: number
}

/** Rejection of any call made after `close()`. */
export declare class CacheClosedError extends Error {
  readonly code: 'ERR_CACHE_CLOSED'
}

export declare class CacheService {
  /** Connects in the background; throws a `TypeError` only for a malformed option. */
  constructor(options?: CacheServiceOptions)
  /** The stored JSON parsed; `null` when missing, empty or not valid JSON (or Redis failed). */
  get<T = unknown>(key: string | number): Promise<T | null>
  /** Stores `JSON.stringify(value)` with an expiry of `ttl` seconds (falsy: `defaultTtl`). */
  set<T = unknown>(key: string | number, value: T, ttl?: number | string): Promise<void>
  /** Deletes one key or several; an empty array does nothing. */
  del(keys: string | number | Array<string | number>): Promise<void>
  /**
   * The cached value if there is one (a cached `0`, `false`, `''`, `[]` is a hit); otherwise
   * awaits `factory()`, stores its result and returns it. Concurrent calls for one key in this
   * process run the factory once. A factory rejection rejects the call with the same value.
   */
  getOrSet<T>(key: string | number, factory: () => T | Promise<T>, ttl?: number | string): Promise<T>
  /** Deletes every key matching the Redis glob (`*`, `?`, `[a-c]`, `[^a]`, `\` escapes), with SCAN. */
  invalidatePattern(pattern: string): Promise<void>
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
}

/** The lazily connected singleton, configured from the environment on first use. */
export declare const cacheService: CacheService
