// Kept apart from redis.ts, which the global setup imports outside any test file.
import { beforeAll, afterAll } from 'vitest'
import Redis from 'ioredis'
import { startRedis, stopRedis, type RedisProcess } from './redis'

/**
 * A redis-server of the calling test file's own (started with `args` before
 * its tests, stopped after them) and a raw ioredis client on it.
 */
export function ownRedis(args: string[] = []): { readonly server: RedisProcess; readonly raw: Redis } {
  let server: RedisProcess | undefined
  let raw: Redis | undefined
  beforeAll(async () => {
    server = await startRedis(args)
    raw = new Redis(server.port, '127.0.0.1').on('error', () => {})
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
  }
}
