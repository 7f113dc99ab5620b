// Faults under load, on real redis-server processes these tests break
// themselves. For each: every call settles within commandTimeoutMs plus a
// margin (to its failure result when Redis is the problem), nothing rejects,
// L1 never serves what Redis no longer holds, and the instance recovers.
import { describe, it, expect, beforeAll, afterAll, afterEach } from 'vitest'
import Redis from 'ioredis'
import { CacheService } from '../index.js'
import { startRedis, stopRedis, eventually, sleep, freePort, type RedisProcess } from './helpers/redis'

const TIMEOUT = 250
const MARGIN = 400
const KEYS = Array.from({ length: 50 }, (_, i) => `load:${i}`)

interface LoadReport {
  calls: number
  slowest: number
  rejections: unknown[]
}

/** Mixed calls from `workers` concurrent loops until `stop()`; measures each call. */
function load(cache: CacheService, workers = 16) {
  let running = true
  const report: LoadReport = { calls: 0, slowest: 0, rejections: [] }
  const loop = async (w: number) => {
    let i = w
    while (running) {
      const key = KEYS[i++ % KEYS.length]
      const started = performance.now()
      try {
        switch (i % 6) {
          case 0:
            await cache.set(key, { w, i, pad: 'x'.repeat(200) }, 60)
            break
          case 1:
            await cache.del(key)
            break
          case 2:
            await cache.getOrSet(key, async () => ({ w, i }), 60)
            break
          case 3:
            await cache.mget([key, KEYS[(i * 7) % KEYS.length]])
            break
          default:
            await cache.get(key)
        }
      } catch (err) {
        report.rejections.push(err)
      }
      report.calls += 1
      report.slowest = Math.max(report.slowest, performance.now() - started)
      if (i % 50 === 0) await sleep(1)
    }
  }
  const done = Promise.all(Array.from({ length: workers }, (_, w) => loop(w)))
  return {
    report,
    stop: async () => {
      running = false
      await done
      return report
    },
  }
}

/** After the dust settles, what this instance serves is what Redis holds. */
async function agreesWithRedis(cache: CacheService, raw: Redis) {
  await sleep(150)
  const mine = await cache.mget(KEYS)
  const theirs = (await raw.mget(...KEYS)).map((v) => (v === null ? null : JSON.parse(v)))
  expect(mine).toEqual(theirs)
  for (const k of KEYS.slice(0, 10)) {
    expect(await cache.get(k), k).toEqual(theirs[KEYS.indexOf(k)])
  }
}

const unhandled: unknown[] = []
const onUnhandled = (reason: unknown) => unhandled.push(reason)
beforeAll(() => {
  process.on('unhandledRejection', onUnhandled)
})
afterAll(() => {
  process.off('unhandledRejection', onUnhandled)
  expect(unhandled).toEqual([])
})

describe('faults under load', () => {
  let server: RedisProcess
  let raw: Redis
  let cache: CacheService
  beforeAll(async () => {
    server = await startRedis(['--enable-debug-command', 'local'])
    raw = new Redis(server.port, '127.0.0.1').on('error', () => {})
  })
  afterAll(async () => {
    raw.disconnect()
    await stopRedis(server)
  })
  afterEach(async () => {
    await cache?.close()
    server.signal('SIGCONT')
    await server.start()
    await raw.config('SET', 'maxmemory', '0').catch(() => {})
  })

  function fresh() {
    cache = new CacheService({ url: server.url, commandTimeoutMs: TIMEOUT, local: { maxTtl: 3600 }, logger: false })
    return cache
  }

  /** What every fault must leave behind: no rejection, no call past the bound, recovery, coherence. */
  async function held(r: LoadReport, c: CacheService) {
    expect(r.rejections).toEqual([])
    expect(r.slowest).toBeLessThan(TIMEOUT + MARGIN)
    await recovers(c)
    await agreesWithRedis(c, raw)
  }

  async function recovers(c: CacheService) {
    expect(await eventually(() => c.ping(), 5000, 25)).toBe(true)
    await c.set('after', 'fine')
    expect(await c.get('after')).toBe('fine')
  }

  /** A fresh instance under load: 200 ms in, `fault()`; `settleMs` after it, the load stops and must have held. */
  async function faultUnderLoad(fault: () => Promise<unknown>, settleMs: number) {
    const c = fresh()
    const l = load(c)
    await sleep(200)
    await fault()
    await sleep(settleMs)
    const r = await l.stop()
    await held(r, c)
    return r
  }

  it('SIGKILL and restart mid-load', async () => {
    const r = await faultUnderLoad(async () => {
      server.signal('SIGKILL')
      await sleep(300)
      await server.start()
    }, 300)
    expect(r.calls).toBeGreaterThan(100)
  })

  it('SIGSTOP mid-load, then SIGCONT', async () => {
    // Hangs last well past TIMEOUT + MARGIN, so a call that waits them out fails the test.
    await faultUnderLoad(async () => {
      server.signal('SIGSTOP')
      await sleep(1500)
      server.signal('SIGCONT')
    }, 300)
  })

  it('CLIENT PAUSE ALL longer than the bound', async () => {
    await faultUnderLoad(() => raw.call('CLIENT', 'PAUSE', '1500', 'ALL'), 1800)
  })

  it('DEBUG SLEEP mid-load', async () => {
    const c = fresh()
    const admin = new Redis(server.port, '127.0.0.1')
    const l = load(c)
    await sleep(200)
    await admin.call('DEBUG', 'SLEEP', '1.5')
    await sleep(200)
    const r = await l.stop()
    admin.disconnect()
    await held(r, c)
  })

  it('CLIENT KILL TYPE normal from another connection, repeatedly', async () => {
    const c = fresh()
    const l = load(c)
    for (let i = 0; i < 5; i++) {
      await sleep(100)
      await raw.client('KILL', 'TYPE', 'normal', 'SKIPME', 'yes')
    }
    await sleep(200)
    const r = await l.stop()
    await held(r, c)
  })

  it('maxmemory with allkeys-lru evicting under load: L1 drops what Redis evicts', async () => {
    const c = fresh()
    await raw.flushall()
    await raw.config('SET', 'maxmemory-policy', 'allkeys-lru')
    await raw.config('SET', 'maxmemory', '3mb')
    // Cache a set of keys in L1, then push them out of Redis with a flood of other writes.
    const watched = Array.from({ length: 200 }, (_, i) => `watched:${i}`)
    await c.mset(Object.fromEntries(watched.map((k) => [k, { k, pad: 'w'.repeat(500) }])), 3600)
    await c.mget(watched)
    const writer = new Redis(server.port, '127.0.0.1')
    for (let i = 0; i < 40; i++) {
      const pipe = writer.pipeline()
      for (let j = 0; j < 100; j++) pipe.set(`flood:${i}:${j}`, 'f'.repeat(1000))
      await pipe.exec()
    }
    writer.disconnect()
    const evicted = (await raw.info('stats')).match(/evicted_keys:(\d+)/)![1]
    expect(Number(evicted)).toBeGreaterThan(0)
    await sleep(150)
    const inRedis = await raw.mget(...watched)
    const mine = await c.mget(watched)
    watched.forEach((k, i) => {
      if (inRedis[i] === null) expect(mine[i], `${k} was evicted from Redis`).toBeNull()
    })
    expect(inRedis.some((v) => v === null)).toBe(true)
  })
})

describe('misconfiguration', () => {
  it('a wrong password: failure results, a logged reason, and recovery once the password matches', async () => {
    const server = await startRedis(['--requirepass', 'right'])
    const errors: string[] = []
    const c = new CacheService({
      url: `redis://:wrong@127.0.0.1:${server.port}`,
      commandTimeoutMs: TIMEOUT,
      logger: { error: (m: string) => errors.push(m), warn: () => {}, info: () => {}, debug: () => {} },
    })
    try {
      const started = performance.now()
      expect(await c.get('k')).toBeNull()
      expect(await c.set('k', 1)).toBeUndefined()
      expect(await c.ping()).toBe(false)
      expect(performance.now() - started).toBeLessThan(3 * (TIMEOUT + MARGIN))
      expect(errors.join('\n')).toMatch(/WRONGPASS|invalid username-password|auth/i)
      const admin = new Redis({ port: server.port, host: '127.0.0.1', password: 'right' })
      await admin.config('SET', 'requirepass', 'wrong')
      admin.disconnect()
      expect(await eventually(() => c.ping(), 5000, 50)).toBe(true)
    } finally {
      await c.close()
      await stopRedis(server)
    }
  })

  it('a rediss:// URL against a plain server: failure results within the bound, no hang', async () => {
    const server = await startRedis()
    const c = new CacheService({ url: `rediss://127.0.0.1:${server.port}`, commandTimeoutMs: TIMEOUT, logger: false })
    try {
      for (const call of [() => c.get('k'), () => c.set('k', 1), () => c.ping(), () => c.mget(['a'])]) {
        const started = performance.now()
        await call()
        expect(performance.now() - started).toBeLessThan(TIMEOUT + MARGIN)
      }
      expect(await c.ping()).toBe(false)
    } finally {
      await c.close()
      await stopRedis(server)
    }
  })

  it('a port where a non-Redis server accepts and never answers', async () => {
    const { createServer } = await import('node:net')
    const sockets: import('node:net').Socket[] = []
    const silent = createServer((s) => sockets.push(s))
    const port = await freePort()
    await new Promise<void>((r) => silent.listen(port, '127.0.0.1', () => r()))
    const c = new CacheService({ url: `redis://127.0.0.1:${port}`, commandTimeoutMs: TIMEOUT, logger: false })
    try {
      const started = performance.now()
      expect(await c.get('k')).toBeNull()
      expect(performance.now() - started).toBeLessThan(TIMEOUT + MARGIN)
    } finally {
      await c.close()
      sockets.forEach((s) => s.destroy())
      silent.close()
    }
  })
})
