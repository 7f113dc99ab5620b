// getOrSet's `timeout: { soft, hard }`: past soft the fail-safe copy answers
// while the factory goes on and refreshes the cache; past hard the caller stops
// waiting (the copy, else a TimeoutError), even for a factory that never settles.
import { describe, it, expect, inject, afterEach } from 'vitest'
import { CacheService, TimeoutError } from '../index.js'
import { sleep, eventually } from './helpers/redis'

const port = inject('redisPort')
const DB = 9
// Scheduling slack on a shared 2-core machine.
const MARGIN = 250

const open: CacheService[] = []
function instance(mode: 'redis' | 'memory', extra: object = {}) {
  const warns: Array<{ meta: { code?: string; reason?: string } }> = []
  const logger = { error: () => {}, warn: (_m: string, meta: { code?: string }) => warns.push({ meta }) }
  const c = new CacheService({ mode, port, host: '127.0.0.1', db: DB, logger, ...extra })
  open.push(c)
  return { c, warns }
}
afterEach(async () => {
  for (const c of open.splice(0)) {
    await c.clear()
    await c.close()
  }
})

const never = () => new Promise<never>(() => {})
const slow = <T>(ms: number, value: T) => () => new Promise<T>((r) => setTimeout(() => r(value), ms))

describe.each(['redis', 'memory'] as const)('%s mode', (mode) => {
  it('hard, no copy: a factory that never settles rejects with TimeoutError (stable code) at the bound', async () => {
    const { c } = instance(mode)
    const started = performance.now()
    const err = await c.getOrSet('k', never, { timeout: { hard: 150 } }).catch((e: unknown) => e)
    const took = performance.now() - started
    expect(err).toBeInstanceOf(TimeoutError)
    expect(err).toBeInstanceOf(Error)
    expect((err as TimeoutError).name).toBe('TimeoutError')
    expect((err as TimeoutError).code).toBe('ERR_CACHE_FACTORY_TIMEOUT')
    expect(took).toBeGreaterThanOrEqual(140)
    expect(took).toBeLessThan(150 + MARGIN)
    expect(c.stats().timeouts.hard).toBe(1)
  })

  it('hard, with a copy: a factory that never settles answers the copy at the bound', async () => {
    const { c, warns } = instance(mode)
    await c.getOrSet('k', () => 'last', { ttl: 0.1, grace: 60 })
    await sleep(150)
    const started = performance.now()
    expect(await c.getOrSet('k', never, { ttl: 0.1, grace: 60, timeout: { hard: 150 } })).toBe('last')
    expect(performance.now() - started).toBeLessThan(150 + MARGIN)
    expect(warns.at(-1)?.meta).toMatchObject({ code: 'ERR_CACHE_FAILSAFE', reason: 'hard-timeout' })
    expect(c.stats().failsafe).toBe(1)
  })

  it('after a hard timeout the next caller runs its own factory instead of joining the stuck one', async () => {
    const { c } = instance(mode)
    await expect(c.getOrSet('k', never, { timeout: { hard: 100 } })).rejects.toBeInstanceOf(TimeoutError)
    expect(await c.getOrSet('k', () => 'fresh', { timeout: { hard: 100 } })).toBe('fresh')
  })

  it('concurrent callers of a stuck factory all time out, and it ran once', async () => {
    const { c } = instance(mode)
    let runs = 0
    const factory = () => ((runs += 1), never())
    const results = await Promise.allSettled(Array.from({ length: 20 }, () => c.getOrSet('k', factory, { timeout: { hard: 150 } })))
    expect(results.every((r) => r.status === 'rejected' && r.reason instanceof TimeoutError)).toBe(true)
    expect(runs).toBe(1)
  })

  it('soft, with a copy: the copy answers at soft; the factory finishes in the background and refreshes the cache', async () => {
    // Command timeouts are not what this tests: a longer one keeps a loaded machine's stall from breaking the link.
    const { c, warns } = instance(mode, { commandTimeoutMs: 5000 })
    await c.getOrSet('k', () => 'old', { ttl: 0.1, grace: 60 })
    await sleep(150)
    const started = performance.now()
    expect(await c.getOrSet('k', slow(400, 'new'), { ttl: 60, grace: 60, timeout: { soft: 50, hard: 2000 } })).toBe('old')
    expect(performance.now() - started).toBeLessThan(50 + MARGIN)
    expect(warns.at(-1)?.meta).toMatchObject({ code: 'ERR_CACHE_FAILSAFE', reason: 'soft-timeout' })
    expect(c.stats().timeouts.soft).toBe(1)
    // A reconnect meanwhile (a heartbeat stalled past commandTimeoutMs on a loaded machine) rightly spoils the write-back: say so if it happens.
    expect(await eventually(async () => (await c.get('k')) === 'new', 2000), `stored nothing; stats: ${JSON.stringify(c.stats().redis)}`).toBe(true)
  })

  it('a factory that rejects after its callers were answered is logged with ERR_CACHE_FACTORY', async () => {
    const { c, warns } = instance(mode)
    const late = () => new Promise<never>((_, reject) => setTimeout(() => reject(new Error('late')), 200))
    await expect(c.getOrSet('k', late, { timeout: { hard: 50 } })).rejects.toBeInstanceOf(TimeoutError)
    expect(await eventually(() => warns.some((w) => w.meta.code === 'ERR_CACHE_FACTORY'), 1000)).toBe(true)
  })

  it('soft, no copy: the caller keeps waiting for the factory', async () => {
    const { c } = instance(mode)
    expect(await c.getOrSet('k', slow(200, 'made'), { timeout: { soft: 20 } })).toBe('made')
    expect(c.stats().timeouts.soft).toBe(0)
  })

  it('timeouts count from the factory start, and a fast factory is untouched by them', async () => {
    const { c } = instance(mode)
    expect(await c.getOrSet('k', () => 'v', { timeout: { soft: 1, hard: 2 } })).toBe('v')
    expect(c.stats().timeouts).toEqual({ soft: 0, hard: 0 })
  })
})
