/**
 * `@medianest/native-cache/testing`: for an application's vitest suite once the cache is swapped in.
 * Needs vitest (an optional peer dependency of this entry); `describeCacheContract` with `redisUrl`
 * also needs ioredis.
 */
import type { CacheService, CacheServiceOptions } from '../index'

/** `CacheServiceOptions` of a test instance: always `'memory'` mode. */
export type TestCacheOptions = Omit<CacheServiceOptions, 'mode'> & { mode?: 'memory' }

/**
 * A new `'memory'`-mode instance: no Redis, no socket, nothing shared with any other instance;
 * its `clear()` empties only itself. Ignores `REDIS_URL` and the other connection variables.
 * Close it when done (`afterEach(() => cache.close())`).
 */
export declare function createTestCache(options?: TestCacheOptions): CacheService

/**
 * A stand-in for the `cacheService` singleton: every test (with its beforeEach/afterEach hooks)
 * that calls it gets its own `createTestCache(options)` instance, closed when that test finishes,
 * so nothing leaks between tests even with `isolate: false`. Calls made outside a test reject
 * with an error saying so (`setLogger` excepted: it applies to every test's instance).
 * Not for `it.concurrent` tests (they share one "current test"): give those `createTestCache()`.
 */
export declare function testCacheService(options?: TestCacheOptions): CacheService

/**
 * The module `cache.service` becomes for a test file, for `vi.mock`:
 * `{ CacheService` (its instances are `'memory'` mode, whatever their options say), `cacheService`
 * (a `testCacheService`) `}`.
 *
 * ```ts
 * vi.mock('@/services/cache.service', async () =>
 *   (await import('@medianest/native-cache/testing')).testCacheModule())
 * ```
 */
export declare function testCacheModule(options?: TestCacheOptions): {
  CacheService: typeof CacheService
  cacheService: CacheService
}

export interface CacheContractOptions {
  /**
   * Run against this Redis (`redis://` or `rediss://`, with its db) instead of `'memory'` mode.
   * The database must be empty: the contract refuses to start otherwise, and re-checks that it
   * holds only the contract's own keys right before it calls `clear()`. Needs ioredis, to read
   * the bytes and expiries the service stored.
   */
  redisUrl?: string
  /**
   * Run on a database that holds other keys: every check except `clear()` runs, touching only
   * keys under the contract's own random prefix. Default `false`.
   */
  allowNonEmptyDatabase?: boolean
  /** Options given to every instance the contract creates (for example `tls`, `password`). */
  options?: CacheServiceOptions
  /** The `describe` block's title. */
  name?: string
}

/** What the contract needs of a service class: the twelve methods, constructed from options. */
export type ContractSubject = new (options?: CacheServiceOptions) => Pick<
  CacheService,
  'get' | 'set' | 'del' | 'getOrSet' | 'invalidatePattern' | 'exists' | 'ttl' | 'ping' | 'mget' | 'mset' | 'getInfo' | 'clear'
> & { close?(): Promise<void> }

/**
 * Registers (with vitest's `describe`/`it`) the original `CacheService`'s behaviour, one test per
 * guarantee: results, failure results (against a server that never answers), TTLs and their
 * defaults, argument errors, JSON round trips and, against Redis, the bytes and expiries stored.
 * A fresh instance of `Service` per test, closed after it. Default: `'memory'` mode, no Redis.
 *
 * ```ts
 * import { CacheService } from '@/services/cache.service'
 * describeCacheContract(CacheService)
 * if (process.env.CONTRACT_REDIS_URL) describeCacheContract(CacheService, { redisUrl: process.env.CONTRACT_REDIS_URL })
 * ```
 */
export declare function describeCacheContract(Service: ContractSubject, options?: CacheContractOptions): void
