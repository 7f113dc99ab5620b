// Several instances in one process under a mixed load, with a Redis restart in
// the middle. Afterwards: nothing rejected or went unhandled, every write made
// after the restart is readable from every instance, and the counters add up.
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import Redis from 'ioredis'
import { CacheService } from '../index.js'
import { startRedis, stopRedis, eventually, sleep, type RedisProcess } from './helpers/redis'

const INSTANCES = 4
const KEYS = Array.from({ length: 64 }, (_, i) => `mix:${i}`)

interface Tally {
  gets: number
  mgetKeys: number
  getOrSets: number
  rejections: unknown[]
}

let server: RedisProcess
beforeAll(async () => {
  server = await startRedis()
})
afterAll(async () => {
  await stopRedis(server)
})

describe('mixed load on several instances with a restart in the middle', () => {
  it('holds together', async () => {
    const unhandled: unknown[] = []
    const onUnhandled = (r: unknown) => unhandled.push(r)
    process.on('unhandledRejection', onUnhandled)
    // A deadline that CPU starvation alone (the suite runs the soak and the
    // benchmark alongside) does not reach: a write that times out may still
    // land later, after later writes, so only writes that succeeded can be checked.
    const caches = Array.from({ length: INSTANCES }, () => new CacheService({ url: server.url, commandTimeoutMs: 2000, logger: false }))
    const tallies: Tally[] = caches.map(() => ({ gets: 0, mgetKeys: 0, getOrSets: 0, rejections: [] }))
    let phase: 'before' | 'after' = 'before'
    let running = true
    /** The last value each instance wrote to its own post-restart keys. */
    const written = caches.map(() => new Map<string, number>())

    const worker = async (n: number, w: number) => {
      const c = caches[n]
      const t = tallies[n]
      let i = w * 1000
      while (running) {
        i += 1
        const key = KEYS[i % KEYS.length]
        try {
          switch (i % 8) {
            case 0:
              await c.set(key, { n, i }, 30)
              break
            case 1:
              await c.del(key)
              break
            case 2:
              t.getOrSets += 1
              await c.getOrSet(key, async () => ({ made: i }), 30)
              break
            case 3:
              t.mgetKeys += 3
              await c.mget([key, KEYS[(i + 1) % KEYS.length], KEYS[(i + 2) % KEYS.length]])
              break
            case 4:
              if (i % 400 === 4) await c.invalidatePattern('mix:1*')
              else await c.exists(key)
              break
            case 5:
              if (phase === 'after') {
                const own = `post:${n}:${(i >> 3) % 16}`
                await c.set(own, i, 60)
                written[n].set(own, i)
              }
              break
            default:
              t.gets += 1
              await c.get(key)
          }
        } catch (err) {
          t.rejections.push(err)
        }
        if (i % 64 === 0) await sleep(1)
      }
    }
    const loops = caches.flatMap((_, n) => Array.from({ length: 6 }, (_, w) => worker(n, w)))

    await sleep(700)
    server.signal('SIGKILL')
    await sleep(300)
    await server.start()
    for (const c of caches) expect(await eventually(() => c.ping(), 5000, 25)).toBe(true)
    const errorsAtRecovery = caches.map((c) => c.stats().redis.errors)
    phase = 'after'
    await sleep(800)
    running = false
    await Promise.all(loops)
    expect(caches.map((c) => c.stats().redis.errors), 'no call failed after recovery').toEqual(errorsAtRecovery)
    process.off('unhandledRejection', onUnhandled)

    expect(unhandled).toEqual([])
    for (const t of tallies) expect(t.rejections).toEqual([])

    // Every write made after the restart is what every instance reads.
    const raw = new Redis(server.port, '127.0.0.1')
    let checked = 0
    for (const [n, own] of written.entries()) {
      for (const [key, value] of own) {
        expect(JSON.parse((await raw.get(key))!), `${key} in Redis`).toBe(value)
        for (const c of caches) expect(await c.get(key), `${key} read by an instance (writer ${n})`).toBe(value)
        checked += 1
      }
    }
    expect(checked).toBeGreaterThan(INSTANCES * 8)
    raw.disconnect()

    // The counters add up: every L1 lookup is a hit or a miss, and every Redis
    // read answered follows an L1 miss.
    for (const [n, c] of caches.entries()) {
      const s = c.stats()
      const t = tallies[n]
      // Every get, mget key and getOrSet consults L1 exactly once.
      const lookupsBeforeCheck = t.gets + t.mgetKeys + t.getOrSets
      const checkReads = written.reduce((sum, own) => sum + own.size, 0)
      expect(s.local.hits + s.local.misses, `instance ${n}`).toBe(lookupsBeforeCheck + checkReads)
      expect(s.redis.hits + s.redis.misses).toBeLessThanOrEqual(s.local.misses)
      expect(s.redis.errors).toBeGreaterThan(0)
      expect(s.redis.reconnects).toBeGreaterThanOrEqual(1)
      expect(s.local.bytes).toBeLessThanOrEqual(s.local.maxBytes)
    }
    await Promise.all(caches.map((c) => c.close()))
  }, 60_000)
})
