// Issue 10: staleness measured, not assumed. About once a second each Redis-mode
// instance tracks an internal key (STRLEN on its tracked connection), writes it
// on a connection of its own (MULTI SET DEL EXEC) and times the invalidation
// push arriving; stats().redis.invalidationLatency
// and metrics() report p50 and p99. A TCP proxy delays what the server sends
// to the instance to show the numbers follow the real path.
import { describe, it, expect, afterEach } from 'vitest'
import { CacheService } from '../index.js'
import { ownRedis } from './helpers/own-redis'
import { eventually, sleep } from './helpers/redis'
import { startProxy, type TcpProxy } from './helpers/proxy'

const redis = ownRedis()

const quiet = { error: () => {}, warn: () => {}, info: () => {}, debug: () => {} }
const open: CacheService[] = []
let proxy: TcpProxy | undefined
afterEach(async () => {
  for (const c of open.splice(0)) await c.close()
  await proxy?.close()
  proxy = undefined
})

function lat(c: CacheService) {
  return c.stats().redis.invalidationLatency
}

/** Waits until `c` has taken `n` more samples than `from`. */
async function samples(c: CacheService, from: number, n: number) {
  const ok = await eventually(() => lat(c).samples >= from + n, 3000 + n * 1500, 50)
  expect(ok, `${n} more samples after ${from}: ${JSON.stringify(lat(c))}`).toBe(true)
  return lat(c)
}

describe('invalidation latency', () => {
  it('is null before the first sample, then p50 <= p99, in ms; memory mode and local: false report none', async () => {
    const c = new CacheService({ host: '127.0.0.1', port: redis.server.port, logger: quiet })
    open.push(c)
    expect(lat(c)).toEqual({ p50Ms: null, p99Ms: null, lastMs: null, samples: 0 })
    expect(await c.ping()).toBe(true)
    const l = await samples(c, 0, 3)
    expect(l.p50Ms).toBeGreaterThan(0)
    expect(l.p50Ms!).toBeLessThanOrEqual(l.p99Ms!)
    // Loopback on an idle server: well under the heartbeat period.
    expect(l.p99Ms!).toBeLessThan(250)

    const m = new CacheService({ mode: 'memory' })
    const noL1 = new CacheService({ host: '127.0.0.1', port: redis.server.port, local: false, logger: quiet })
    open.push(m, noL1)
    expect(await noL1.ping()).toBe(true)
    await sleep(1500)
    expect(lat(m).samples).toBe(0)
    expect(lat(noL1)).toEqual({ p50Ms: null, p99Ms: null, lastMs: null, samples: 0 })
  })

  it('follows a delay injected on the way back from the server, and bounds when a foreign write reaches L1', async () => {
    proxy = await startProxy(redis.server.port)
    const c = new CacheService({ host: '127.0.0.1', port: proxy.port, logger: quiet })
    open.push(c)
    expect(await eventually(() => c.ping(), 5000, 50)).toBe(true)
    const fast = await samples(c, 0, 3)
    expect(fast.p50Ms!).toBeLessThan(50)

    const D = 150
    // The proxy's timers have millisecond grain: a delayed push may land a millisecond or two early.
    const GRAIN = 5
    proxy.delayToClient(D)
    // More delayed samples than fast ones: the median moves past D.
    const slow = await samples(c, fast.samples, fast.samples + 1)
    expect(slow.lastMs!).toBeGreaterThanOrEqual(D - GRAIN)
    expect(slow.p50Ms!).toBeGreaterThanOrEqual(D - GRAIN)
    expect(slow.p50Ms!).toBeLessThan(D + 150)
    expect(slow.p99Ms!).toBeGreaterThanOrEqual(slow.p50Ms!)

    // The real path: another client's write reaches this instance's L1 about D later, within the measured p99.
    const k = 'lat:k'
    await redis.raw.set(k, JSON.stringify('old'))
    expect(await c.get(k)).toBe('old')
    expect(await c.get(k)).toBe('old') // L1 fills (and tracks the key) on its second read
    const inv = c.stats().local.invalidations
    const t0 = performance.now()
    await redis.raw.set(k, JSON.stringify('new'))
    while (c.stats().local.invalidations === inv && performance.now() - t0 < 3000) await sleep(1)
    const took = performance.now() - t0
    expect(c.stats().local.invalidations).toBe(inv + 1)
    expect(took).toBeGreaterThanOrEqual(D - GRAIN)
    expect(took).toBeLessThan(lat(c).p99Ms! + 50)
    expect(await c.get(k)).toBe('new')

    proxy.delayToClient(0)
    const healed = await samples(c, lat(c).samples, 1)
    expect(healed.lastMs!).toBeLessThan(50)
  })

  it('metrics() carries it as a Prometheus summary in seconds', async () => {
    const c = new CacheService({ host: '127.0.0.1', port: redis.server.port, logger: quiet })
    open.push(c)
    const empty = c.metrics()
    expect(empty).toContain('# TYPE native_cache_invalidation_latency_seconds summary\n')
    expect(empty).toContain('native_cache_invalidation_latency_seconds{quantile="0.5"} NaN\n')
    expect(empty).toContain('native_cache_invalidation_latency_seconds_count 0\n')
    await samples(c, 0, 2)
    const text = c.metrics()
    const l = lat(c)
    const value = (s: string) => Number(new RegExp(`^native_cache_invalidation_latency_seconds${s} (\\S+)$`, 'm').exec(text)![1])
    expect(value('\\{quantile="0.5"\\}')).toBeCloseTo(l.p50Ms! / 1000, 9)
    expect(value('\\{quantile="0.99"\\}')).toBeCloseTo(l.p99Ms! / 1000, 9)
    expect(value('_count')).toBe(l.samples)
    expect(value('_sum')).toBeGreaterThan(0)
  })

  it('the probe key is internal: never in the keyspace, not an L1 invalidation, about one probe a second', async () => {
    const c = new CacheService({ host: '127.0.0.1', port: redis.server.port, db: 3, logger: quiet })
    open.push(c)
    expect(await c.ping()).toBe(true)
    const monitor = await redis.raw.monitor()
    const probes: string[][] = []
    monitor.on('monitor', (_time: string, args: string[]) => {
      if (String(args[1] ?? '').startsWith('__native_cache:probe:')) probes.push(args)
    })
    const before = c.stats().local.invalidations
    await sleep(3200)
    monitor.disconnect()
    const sets = probes.filter((a) => a[0].toLowerCase() === 'set')
    expect(sets.length).toBeGreaterThanOrEqual(2)
    expect(sets.length).toBeLessThanOrEqual(5)
    // One key per instance, SET and DEL inside one transaction: no one else ever sees it.
    expect(new Set(probes.map((a) => a[1])).size).toBe(1)
    expect(probes.filter((a) => a[0].toLowerCase() === 'del').length).toBe(sets.length)
    expect((await c.getInfo()).keyCount).toBe(0)
    expect(c.stats().local.invalidations).toBe(before)
  })

  it('a long CLIENT PAUSE WRITE (as FAILOVER takes) costs neither L1 nor the connection', async () => {
    const c = new CacheService({ host: '127.0.0.1', port: redis.server.port, logger: quiet })
    open.push(c)
    await c.set('pause:k', 1)
    expect(await c.get('pause:k')).toBe(1)
    expect(await c.get('pause:k')).toBe(1) // L1 fills on a key's second read
    await samples(c, 0, 1)
    await redis.raw.call('CLIENT', 'PAUSE', '3000', 'WRITE')
    const t0 = Date.now()
    let fromL1 = 0
    let reads = 0
    while (Date.now() - t0 < 2700) {
      const hits = c.stats().local.hits
      expect(await c.get('pause:k')).toBe(1)
      reads += 1
      if (c.stats().local.hits === hits + 1) fromL1 += 1
      await sleep(100)
    }
    expect(fromL1, 'reads served from L1 during the pause').toBe(reads)
    expect(c.stats().redis.reconnects).toBe(0)
    // After the pause the probe measures again.
    const after = lat(c).samples
    await samples(c, after, 2)
    expect(c.stats().redis.reconnects).toBe(0)
  })

  it('the probe writes on one connection of its own, which close() releases', async () => {
    const c = new CacheService({ host: '127.0.0.1', port: redis.server.port, db: 5, logger: quiet })
    await samples(c, 0, 3)
    const clients = async () =>
      String(await redis.raw.client('LIST'))
        .split('\n')
        .filter((l) => / db=5 /.test(l))
    const mine = await clients()
    expect(mine).toHaveLength(2)
    expect(mine.filter((l) => / resp=3\b/.test(l) && /flags=\S*t/.test(l)), 'one tracked').toHaveLength(1)
    await c.close()
    expect(await eventually(async () => (await clients()).length === 0, 3000, 50), 'connections left after close()').toBe(true)
  })

  it('a server that refuses the probe (ACL) leaves L1 serving and says so once', async () => {
    await redis.raw.call('ACL', 'SETUSER', 'app', 'on', '>pw', '~app:*', '+@all')
    const infos: string[] = []
    const logger = { ...quiet, info: (m: string) => infos.push(m) }
    const c = new CacheService({ host: '127.0.0.1', port: redis.server.port, username: 'app', password: 'pw', logger })
    open.push(c)
    await c.set('app:k', 1)
    await sleep(2500)
    await c.get('app:k')
    await c.get('app:k') // L1 fills on a key's second read
    const hits = c.stats().local.hits
    expect(await c.get('app:k')).toBe(1)
    expect(c.stats().local.hits).toBe(hits + 1)
    expect(c.stats().local.enabled).toBe(true)
    expect(lat(c).samples).toBe(0)
    expect(infos.filter((m) => m.includes('invalidation latency not measured'))).toHaveLength(1)
    await c.del('app:k')
  })
})
