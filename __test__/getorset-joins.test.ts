// Issue 8, defect 5: getOrSet never joins a run that started before a write to
// its key. A factory that never settles must not block its key for the rest of
// the process: once `set(k, v)` or `del(k)` has resolved, a new getOrSet(k)
// answers (v after the set; its own factory's value after the del or clear).
import { describe, it, expect, beforeAll, afterAll, afterEach, inject } from 'vitest'
import Redis from 'ioredis'
import { CacheService } from '../index.js'
import { eventually, sleep } from './helpers/redis'

// Its own database: clear() below empties it (getorset-options uses 12).
const DB = 13
const BOUND_MS = 1500
const port = inject('redisPort')

let raw: Redis
beforeAll(async () => {
  raw = new Redis({ port, host: '127.0.0.1', db: DB })
  await raw.flushdb()
})
afterAll(async () => {
  await raw.flushdb()
  raw.disconnect()
})

let cache: CacheService | undefined
afterEach(async () => {
  await cache?.close()
  cache = undefined
})

const never = () => new Promise<never>(() => {})

/** `p`'s value, or a marker when it does not settle within `ms`. */
async function within<T>(p: Promise<T>, ms = BOUND_MS): Promise<T | 'still pending'> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<'still pending'>((r) => {
    timer = setTimeout(() => r('still pending'), ms)
  })
  try {
    return await Promise.race([p, late])
  } finally {
    clearTimeout(timer)
  }
}

type Extra = { local?: false }
describe.each<[string, Extra]>([
  ['with L1', {}],
  ['with local: false', { local: false }],
])('getOrSet after a write does not join a hung run (%s)', (_name, extra) => {
  async function fresh() {
    cache = new CacheService({ host: '127.0.0.1', port, db: DB, ...extra })
    expect(await eventually(() => cache!.ping(), 5000, 50)).toBe(true)
    return cache
  }

  /** Starts a getOrSet whose factory never settles, and waits until the factory is running. */
  async function hungRun(c: CacheService, key: string) {
    let running = false
    const hung = c.getOrSet(key, () => {
      running = true
      return never()
    })
    hung.catch(() => {})
    expect(await eventually(() => running, 2000, 2), 'the hung factory never started').toBe(true)
    // Wrapped: an async function returning the promise itself would wait for it.
    return { hung }
  }

  it('after set(k, v) resolves, getOrSet(k) answers v without running its factory', async () => {
    const c = await fresh()
    const k = `gj:set:${extra.local === false ? 'nol1' : 'l1'}`
    await raw.del(k)
    const { hung } = await hungRun(c, k)
    await c.set(k, { v: 'set while the factory hangs' })
    let ran = 0
    const started = performance.now()
    const result = await within(
      c.getOrSet(k, async () => {
        ran += 1
        return 'from f2'
      }),
    )
    const took = performance.now() - started
    expect(result).toEqual({ v: 'set while the factory hangs' })
    expect(took).toBeLessThan(BOUND_MS)
    expect(ran).toBe(0)
    expect(await raw.get(k)).toBe('{"v":"set while the factory hangs"}')
    // The hung run is still hung: it was not the one that answered.
    expect(await within(hung, 50)).toBe('still pending')
  })

  it.each([
    ['del(k)', 'del', (c: CacheService, k: string) => c.del(k)],
    ['clear()', 'clear', (c: CacheService) => c.clear()],
  ] as const)('after %s resolves, getOrSet(k) runs its own factory and stores its value', async (_name, tag, write) => {
    const c = await fresh()
    const k = `gj:${tag}:${extra.local === false ? 'nol1' : 'l1'}`
    await raw.del(k)
    const { hung } = await hungRun(c, k)
    await write(c, k)
    const result = await within(c.getOrSet(k, async () => ({ from: 'f2' }), 60))
    expect(result).toEqual({ from: 'f2' })
    expect(await raw.get(k)).toBe('{"from":"f2"}')
    expect(await within(hung, 50)).toBe('still pending')
  })

  it('after mset and invalidatePattern too; concurrent callers after the write still share one run', async () => {
    const c = await fresh()
    const base = `gj:more:${extra.local === false ? 'nol1' : 'l1'}`
    await raw.del(`${base}:a`, `${base}:b`)
    await hungRun(c, `${base}:a`)
    await c.mset({ [`${base}:a`]: 'from mset' })
    expect(await within(c.getOrSet(`${base}:a`, async () => 'f2'))).toBe('from mset')

    await hungRun(c, `${base}:b`)
    await c.invalidatePattern(`${base}:b*`)
    let runs = 0
    const f3 = async () => {
      runs += 1
      await sleep(50)
      return 'f3'
    }
    const results = await within(Promise.all([c.getOrSet(`${base}:b`, f3), c.getOrSet(`${base}:b`, f3)]))
    expect(results).toEqual(['f3', 'f3'])
    // Stampede protection still holds among calls made after the write.
    expect(runs).toBe(1)
  })
})

describe.each([
  ['memory', { mode: 'memory' as const }],
  ['redis', { host: '127.0.0.1', port, db: DB }],
])('one getOrSet path (%s)', (_name, options) => {
  it('a getOrSet with options joins a plain getOrSet of the same key in the same turn (3 rounds)', async () => {
    cache = new CacheService({ ...options, logger: false })
    for (let round = 0; round < 3; round++) {
      let runs = 0
      const f = async () => {
        runs++
        await sleep(20)
        return { round }
      }
      const k = `one-path:${round}`
      const [plain, withOptions, plainAgain] = await Promise.all([
        cache.getOrSet(k, f, 60),
        cache.getOrSet(k, f, { ttl: 60, timeout: { hard: 1000 } }),
        cache.getOrSet(k, f),
      ])
      expect([plain, withOptions, plainAgain]).toEqual([{ round }, { round }, { round }])
      expect(runs).toBe(1)
    }
  })
})
