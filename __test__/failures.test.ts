// Redis failures never reject: every call settles to its failure result within
// commandTimeoutMs plus a margin, the error reaches the logger, and the same
// instance recovers by itself when Redis is back.
import { describe, it, expect, beforeAll, afterAll, afterEach } from 'vitest'
import Redis from 'ioredis'
import { CacheService } from '../index.js'
import { startRedis, stopRedis, freePort, eventually, sleep, type RedisProcess } from './helpers/redis'
import { expectFailureResults as expectFailureResultsWithin } from './helpers/failure-results'

const TIMEOUT = 300
// Scheduling slack on a shared 2-core machine; the bound under test is TIMEOUT.
const MARGIN = 400

/** Every method resolves to its failure result within the bound. */
const expectFailureResults = (cache: CacheService) => expectFailureResultsWithin(cache, TIMEOUT + MARGIN)

function recordingLogger() {
  const errors: string[] = []
  return { errors, logger: { error: (m: string) => errors.push(m), warn: (m: string) => errors.push(m), info: () => {}, debug: () => {} } }
}

describe('nothing listening at the URL', () => {
  it('every method resolves to its failure result, and the logger hears why', async () => {
    const port = await freePort()
    const { errors, logger } = recordingLogger()
    const cache = new CacheService({ url: `redis://127.0.0.1:${port}`, commandTimeoutMs: TIMEOUT, logger })
    await expectFailureResults(cache)
    expect(errors.some((e) => /Cache get error/.test(e))).toBe(true)
    await cache.close()
  })

  it('Redis appearing later is picked up by the same instance', async () => {
    const port = await freePort()
    const cache = new CacheService({ url: `redis://127.0.0.1:${port}`, commandTimeoutMs: TIMEOUT, logger: false })
    expect(await cache.ping()).toBe(false)
    const server = await startRedis([], port)
    try {
      expect(await eventually(() => cache.ping(), 5000, 50)).toBe(true)
      await cache.set('late', 1)
      expect(await cache.get('late')).toBe(1)
    } finally {
      await cache.close()
      await stopRedis(server)
    }
  })
})

describe('Redis goes away and comes back', () => {
  let server: RedisProcess
  let cache: CacheService
  beforeAll(async () => {
    server = await startRedis(['--enable-debug-command', 'local'])
  })
  afterAll(async () => {
    await stopRedis(server)
  })
  afterEach(async () => {
    await cache?.close()
    server.signal('SIGCONT')
    await server.start().catch(() => {})
  })

  it('killed: failure results within the bound, then recovery without a new instance', async () => {
    cache = new CacheService({ url: server.url, commandTimeoutMs: TIMEOUT, logger: false })
    await cache.set('k', 'before')
    expect(await cache.get('k')).toBe('before')
    server.signal('SIGKILL')
    await sleep(50)
    await expectFailureResults(cache)
    await server.start()
    expect(await eventually(() => cache.ping(), 5000, 50)).toBe(true)
    // The restarted server lost everything: nothing from before may be served.
    expect(await cache.get('k')).toBeNull()
    await cache.set('k', 'after')
    expect(await cache.get('k')).toBe('after')
  })

  it('writes attempted during an outage are dropped, never replayed later', async () => {
    cache = new CacheService({ url: server.url, commandTimeoutMs: TIMEOUT, logger: false })
    expect(await cache.ping()).toBe(true)
    await server.stop()
    await cache.set('during', 'outage')
    await cache.mset({ during2: 'outage' })
    await server.start()
    expect(await eventually(() => cache.ping(), 5000, 50)).toBe(true)
    await sleep(200)
    const raw = new Redis(server.port, '127.0.0.1')
    expect(await raw.exists('during', 'during2')).toBe(0)
    raw.disconnect()
    expect(await cache.get('during')).toBeNull()
  })

  it('hung (SIGSTOP): calls settle within commandTimeoutMs plus a margin; recovery after SIGCONT', async () => {
    cache = new CacheService({ url: server.url, commandTimeoutMs: TIMEOUT, logger: false })
    await cache.set('h', 'v1')
    server.signal('SIGSTOP')
    try {
      await expectFailureResults(cache)
      // Concurrent calls while hung: all settle, none waits behind another's timeout.
      const started = performance.now()
      const all = await Promise.all(Array.from({ length: 50 }, (_, i) => cache.get(`h${i}`)))
      expect(all.every((v) => v === null)).toBe(true)
      expect(performance.now() - started).toBeLessThan(TIMEOUT + MARGIN)
    } finally {
      server.signal('SIGCONT')
    }
    expect(await eventually(() => cache.ping(), 5000, 50)).toBe(true)
    expect(await cache.get('h')).toBe('v1')
  })

  it('a command slower than the bound (DEBUG SLEEP) takes its failure result, then all is well', async () => {
    cache = new CacheService({ url: server.url, commandTimeoutMs: TIMEOUT, logger: false })
    await cache.set('s', 1)
    const admin = new Redis(server.port, '127.0.0.1')
    const sleeping = admin.call('DEBUG', 'SLEEP', '0.8')
    await sleep(20)
    const started = performance.now()
    expect(await cache.get('s-other')).toBeNull()
    expect(performance.now() - started).toBeLessThan(TIMEOUT + MARGIN)
    await sleeping
    admin.disconnect()
    expect(await eventually(async () => (await cache.get('s')) === 1, 5000, 50)).toBe(true)
  })
})
