// Issue 9, Sentinel: the whole method table through `sentinel: { sentinels, name }`,
// the bytes and TTL it stores (the same as single-node mode's), coherence with a
// foreign writer on the master, the environment fallbacks, and bad configuration.
import { describe, it, expect, afterEach } from 'vitest'
import { CacheService } from '../index.js'
import { ownSentinelGroup } from './helpers/sentinel'
import { eventually, freePort } from './helpers/redis'
import { startProxy } from './helpers/proxy'

const group = ownSentinelGroup()

interface Logged {
  level: string
  message: string
  code?: string
}

function recorder() {
  const logs: Logged[] = []
  const at = (level: string) => (message: string, meta?: { code?: string }) => logs.push({ level, message, code: meta?.code })
  return { logs, logger: { error: at('error'), warn: at('warn'), info: at('info'), debug: at('debug') } }
}

const open: CacheService[] = []
afterEach(async () => {
  for (const c of open.splice(0)) await c.close()
})

function viaSentinel(extra: Record<string, unknown> = {}) {
  const c = new CacheService({ sentinel: { sentinels: group.sentinels, name: group.name }, logger: false, ...extra })
  open.push(c)
  return c
}

async function connected(c: CacheService) {
  expect(await eventually(() => c.ping(), 10_000, 50), 'never connected through the sentinels').toBe(true)
}

describe('the method table through Sentinel', () => {
  it('every method gives the results of single-node mode, against the master the sentinels name', async () => {
    const c = viaSentinel()
    await connected(c)
    const master = group.raw(await group.masterPort())
    await master.flushdb()

    await c.set('t:a', { n: 1, s: 'x' }, 60)
    expect(await master.get('t:a')).toBe('{"n":1,"s":"x"}')
    expect(await c.get('t:a')).toEqual({ n: 1, s: 'x' })
    expect(await c.get('t:missing')).toBeNull()
    expect(await c.exists('t:a')).toBe(true)
    expect(await c.exists('t:missing')).toBe(false)
    const ttl = await c.ttl('t:a')
    expect(ttl).toBeGreaterThan(55)
    expect(ttl).toBeLessThanOrEqual(60)
    expect(await c.ttl('t:missing')).toBe(-2)
    await master.set('t:forever', '1')
    expect(await c.ttl('t:forever')).toBe(-1)

    await c.mset({ 't:m1': 1, 't:m2': [2], 't:m3': 'three' }, 30)
    expect(await c.mget(['t:m1', 't:m2', 't:nope', 't:m3'])).toEqual([1, [2], null, 'three'])
    expect(await c.mget([])).toEqual([])
    expect(await master.pttl('t:m2')).toBeGreaterThan(25_000)

    await c.del('t:m1')
    await c.del(['t:m2', 't:m3'])
    expect(await master.exists('t:m1', 't:m2', 't:m3')).toBe(0)

    let runs = 0
    expect(await c.getOrSet('t:g', async () => (runs++, { made: true }), 20)).toEqual({ made: true })
    expect(await c.getOrSet('t:g', async () => (runs++, { made: false }), 20)).toEqual({ made: true })
    expect(runs).toBe(1)
    expect(await master.get('t:g')).toBe('{"made":true}')

    for (const k of ['p:1', 'p:2', 'q:1']) await c.set(k, k)
    await c.invalidatePattern('p:*')
    expect(await master.exists('p:1', 'p:2')).toBe(0)
    expect(await master.get('q:1')).toBe('"q:1"')

    expect(await c.ping()).toBe(true)
    const info = await c.getInfo()
    expect(info.keyCount).toBe(await master.dbsize())
    expect(info.memoryUsage).toMatch(/^\d+(\.\d+)?[BKMG]$/)

    await c.clear()
    expect(await master.dbsize()).toBe(0)
    expect(await c.get('t:a')).toBeNull()
  })

  it('stores the same bytes and TTL as single-node mode (db and password apply to the master)', async () => {
    const port = await group.masterPort()
    const master = group.raw(port)
    const s = viaSentinel({ db: 1 })
    const single = new CacheService({ host: '127.0.0.1', port, db: 2, logger: false })
    open.push(single)
    await connected(s)
    await connected(single)
    const values: [string, unknown][] = [
      ['b:obj', { z: 1, a: [1.5, 'é', '\u2028'], n: null }],
      ['b:str', 'text'],
      ['b:num', -0.000001],
      ['b:arr', []],
    ]
    for (const [k, v] of values) {
      await s.set(k, v, 42)
      await single.set(k, v, 42)
    }
    await s.mset({ 'b:m': { x: 1 } }, 7)
    await single.mset({ 'b:m': { x: 1 } }, 7)
    for (const k of [...values.map(([k]) => k), 'b:m']) {
      await master.select(1)
      const [viaS, ttlS] = [await master.getBuffer(k), await master.pttl(k)]
      await master.select(2)
      const [viaSingle, ttlSingle] = [await master.getBuffer(k), await master.pttl(k)]
      expect(viaS, k).toEqual(viaSingle)
      expect(viaS, k).not.toBeNull()
      expect(Math.abs(ttlS - ttlSingle), k).toBeLessThan(1000)
    }
    await master.select(0)
  })

  it('a foreign write on the master is seen at once, also for a key held in L1', async () => {
    const c = viaSentinel()
    await connected(c)
    const master = group.raw(await group.masterPort())
    await master.set('coh:k', JSON.stringify('old'))
    // L1 fills on a key's second read (the doorkeeper).
    expect(await c.get('coh:k')).toBe('old')
    expect(await c.get('coh:k')).toBe('old')
    const hits = c.stats().local.hits
    expect(await c.get('coh:k')).toBe('old')
    expect(c.stats().local.hits, 'coh:k should be served from L1').toBe(hits + 1)
    await master.set('coh:k', JSON.stringify('new'))
    expect(await eventually(async () => (await c.get('coh:k')) === 'new', 100, 5)).toBe(true)
    await master.del('coh:k')
    expect(await eventually(async () => (await c.get('coh:k')) === null, 100, 5)).toBe(true)
  })

  it('sentinel addresses take the forms Cluster nodes take: redis:// URLs reach the master', async () => {
    const sentinels = group.sentinels.map((s) => `redis://${s}`)
    const c = new CacheService({ sentinel: { sentinels, name: group.name }, logger: false })
    open.push(c)
    await connected(c)
    await c.set('url:a', 'via url', 60)
    expect(await group.raw(await group.masterPort()).get('url:a')).toBe('"via url"')
  })

  it('REDIS_SENTINELS and REDIS_SENTINEL_NAME configure it when no option does', async () => {
    const saved = { s: process.env.REDIS_SENTINELS, n: process.env.REDIS_SENTINEL_NAME, u: process.env.REDIS_URL }
    const dead = await freePort()
    process.env.REDIS_SENTINELS = ` 127.0.0.1:${dead}, ${group.sentinels.join(',')} `
    process.env.REDIS_SENTINEL_NAME = group.name
    // Ignored with Sentinel: the sentinels name the master.
    process.env.REDIS_URL = `redis://127.0.0.1:${dead}`
    try {
      const c = new CacheService({ logger: false })
      open.push(c)
      await connected(c)
      await c.set('env:k', 'v')
      expect(await group.raw(await group.masterPort()).get('env:k')).toBe('"v"')
      // An explicit address wins over the environment's sentinels: nothing listens there.
      const direct = new CacheService({ host: '127.0.0.1', port: dead, commandTimeoutMs: 300, logger: false })
      open.push(direct)
      expect(await eventually(() => direct.ping(), 1000, 50)).toBe(false)
    } finally {
      for (const [k, v] of [
        ['REDIS_SENTINELS', saved.s],
        ['REDIS_SENTINEL_NAME', saved.n],
        ['REDIS_URL', saved.u],
      ] as const) {
        if (v === undefined) delete process.env[k]
        else process.env[k] = v
      }
    }
  })
})

describe('bad Sentinel configuration', () => {
  const sentinels = ['127.0.0.1:1'] // never dialled: each case throws at construction
  it.each([
    [{ cluster: { nodes: ['127.0.0.1:7000'] }, sentinel: { sentinels, name: 'm' } }, /cluster and sentinel/],
    [{ sentinel: { sentinels: [], name: 'm' } }, /sentinel\.sentinels must list at least one/],
    [{ sentinel: { sentinels } }, /sentinel\.name/],
    [{ sentinel: { sentinels, name: '' } }, /sentinel\.name/],
    [{ sentinel: { sentinels: '127.0.0.1:1', name: 'm' } }, /sentinel\.sentinels must be an array/],
    [{ sentinel: { sentinels: [7], name: 'm' } }, /sentinel\.sentinels\[0\]/],
    [{ sentinel: { sentinels: ['host:notaport'], name: 'm' } }, /sentinel\.sentinels: "host:notaport"/],
    [{ sentinel: { sentinels: ['h:0'], name: 'm' } }, /sentinel\.sentinels/],
    [{ sentinel: { sentinels: ['rediss://h:1'], name: 'm' } }, /sentinel\.sentinels: "rediss:\/\/h:1": sentinels are reached without TLS/],
    [{ sentinel: { sentinels, name: 'm', password: 5 } }, /sentinel\.password/],
    [{ sentinel: 'yes' }, /sentinel must be/],
    [{ sentinel: { sentinels, name: 'm' }, url: 'redis://127.0.0.1:1' }, /url cannot be used with sentinel/],
  ])('%j throws a TypeError naming the option', (options, message) => {
    expect(() => new CacheService(options as never)).toThrow(TypeError)
    expect(() => new CacheService(options as never)).toThrow(message)
  })

  it('an unknown master name: calls settle within the bound with their failure results, the reason is logged', async () => {
    const { logs, logger } = recorder()
    const c = new CacheService({ sentinel: { sentinels: group.sentinels, name: 'nosuchmaster' }, logger, commandTimeoutMs: 300 })
    open.push(c)
    const started = Date.now()
    expect(await c.get('k')).toBeNull()
    expect(await c.set('k', 1)).toBeUndefined()
    expect(await c.ping()).toBe(false)
    expect(Date.now() - started).toBeLessThan(3 * (300 + 500))
    expect(await eventually(() => logs.some((l) => /knows no master named "nosuchmaster"/.test(l.message)), 3000)).toBe(true)
    expect(c.stats().redis.connected).toBe(false)
  })

  it('a silent sentinel is passed over within the bound: the next one names the master', async () => {
    const [, port] = group.sentinels[0].split(':')
    const proxy = await startProxy(Number(port))
    open.push({ close: () => proxy.close() } as unknown as CacheService)
    proxy.silence()
    const c = viaSentinel({ sentinel: { sentinels: [`127.0.0.1:${proxy.port}`, group.sentinels[1]], name: group.name }, commandTimeoutMs: 300 })
    await connected(c)
    await c.set('silent:k', 1)
    expect(await group.raw(await group.masterPort()).get('silent:k')).toBe('1')
  })

  it('unreachable sentinels: calls settle within the bound, then it connects when given live ones', async () => {
    const dead = await freePort()
    const c = new CacheService({ sentinel: { sentinels: [`127.0.0.1:${dead}`], name: group.name }, logger: false, commandTimeoutMs: 300 })
    open.push(c)
    const started = Date.now()
    expect(await c.get('k')).toBeNull()
    expect(await c.ping()).toBe(false)
    expect(Date.now() - started).toBeLessThan(2 * (300 + 500))
    // The instance stays usable: a second one with live sentinels next to it works.
    const live = viaSentinel()
    await connected(live)
  })
})
