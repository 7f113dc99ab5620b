// Kept apart from redis.ts, which the global setup imports outside any test file.
import { beforeAll, afterAll, afterEach } from 'vitest'
import Redis from 'ioredis'
import { startRedis, stopRedis, type RedisProcess } from './redis'
import type { CacheService } from '../../index.js'

/**
 * A redis-server of the calling test file's own (started with `args` before
 * its tests, stopped after them) and a raw ioredis client on it.
 */
export function ownRedis(args: string[] = []): { readonly server: RedisProcess; readonly raw: Redis; renewRaw(): void } {
  let server: RedisProcess | undefined
  let raw: Redis | undefined
  // Restarts may be part of the tests: the raw client's reconnect errors are expected.
  const connect = () => new Redis(server!.port, '127.0.0.1').on('error', () => {})
  beforeAll(async () => {
    server = await startRedis(args)
    raw = connect()
  })
  afterAll(async () => {
    raw?.disconnect()
    await stopRedis(server)
  })
  const started = <T>(v: T | undefined): T => {
    if (v === undefined) throw new Error('ownRedis: used outside the tests of its file')
    return v
  }
  return {
    get server() {
      return started(server)
    },
    get raw() {
      return started(raw)
    },
    /** Replaces the raw client with a new connection (after a restart). */
    renewRaw() {
      started(raw).disconnect()
      raw = connect()
    },
  }
}

/** Wraps `make` so that every instance it makes is closed after the test that made it. */
export function closedAfterEach<A extends unknown[], T extends CacheService | { c: CacheService }>(
  make: (...args: A) => T,
): (...args: A) => T {
  const open: CacheService[] = []
  afterEach(async () => {
    await Promise.all(open.splice(0).map((c) => c.close()))
  })
  return (...args) => {
    const made = make(...args)
    open.push('c' in made ? made.c : made)
    return made
  }
}
