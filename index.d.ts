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
import type { CacheStats, LocalStats, RedisStats, ErrorCounts } from './binding'
export type { CacheStats, ErrorCounts }
export type LocalTierStats = LocalStats
export type RedisTierStats = RedisStats

/** The code every failure handed to the logger carries as `meta.code`. */
export type CacheErrorCode =
  | 'ERR_CACHE_TIMEOUT'
  | 'ERR_CACHE_UNAVAILABLE'
  | 'ERR_CACHE_SERVER'
  | 'ERR_CACHE_PROTOCOL'
  | 'ERR_CACHE_CLOSED'

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
  /**
   * Where swallowed failures go from now on: a logger, `false` for nowhere, `null` for the
   * default (rate-limited warnings on stderr). Gives the lazy `cacheService` the application's
   * logger without touching callers.
   */
  setLogger(logger: CacheLogger | false | null): void
}

/** The lazily connected singleton, configured from the environment on first use. */
export declare const cacheService: CacheService
