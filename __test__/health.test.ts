// Issue 19: health() for a readiness probe, from state the instance holds
// (answered synchronously, no command sent): 'down' without a connection,
// 'degraded' while L1 is configured and not serving or a Cluster primary is
// unreachable, else 'ok'.
import { describe, it, expect, afterEach } from 'vitest'
import { CacheService } from '../index.js'
import { ownRedis } from './helpers/own-redis'
import { ownCluster } from './helpers/cluster'
import { ownSentinelGroup } from './helpers/sentinel'
import { eventually, sleep } from './helpers/redis'

const redis = ownRedis()
const quiet = { error: () => {}, warn: () => {}, info: () => {}, debug: () => {} }
const open: CacheService[] = []
afterEach(async () => {
  for (const c of open.splice(0)) await c.close()
})
function instance(options: object = {}) {
  const c = new CacheService({ host: '127.0.0.1', port: redis.server.port, logger: quiet, ...options })
  open.push(c)
  return c
}

/** Commands the server has run (INFO stats' total_commands_processed, less the INFO itself). */
async function commands(): Promise<number> {
  const info = (await redis.raw.info('stats')) as string
  return Number(/total_commands_processed:(\d+)/.exec(info)![1])
}

describe('health(): one server', () => {
  it("'ok' with L1 serving; sends no command to Redis", async () => {
    const c = instance()
    await c.ping()
    expect(await eventually(() => c.health().status === 'ok', 3000)).toBe(true)
    expect(c.health()).toEqual({ status: 'ok', redis: { connected: true, topology: 'single' }, local: { serving: true } })
    const before = await commands()
    for (let i = 0; i < 1000; i++) c.health()
    // The only command in between is this INFO itself (and the heartbeat's, at most a few).
    expect((await commands()) - before).toBeLessThan(30)
  })

  it("'ok' with L1 turned off by configuration (reason 'disabled')", async () => {
    const c = instance({ local: false })
    await c.ping()
    expect(c.health()).toEqual({ status: 'ok', redis: { connected: true, topology: 'single' }, local: { serving: false, reason: 'disabled' } })
  })

  it("'degraded' while the server refuses tracking (reason 'tracking-refused')", async () => {
    await redis.raw.call('ACL', 'SETUSER', 'notrack-h', 'on', '>pw', '~*', '&*', '+@all', '-client|tracking')
    const c = instance({ username: 'notrack-h', password: 'pw' })
    await c.ping()
    expect(await eventually(() => c.health().redis.connected, 3000)).toBe(true)
    expect(c.health()).toEqual({
      status: 'degraded',
      redis: { connected: true, topology: 'single' },
      local: { serving: false, reason: 'tracking-refused' },
    })
  })

  it("'degraded' once the liveness lease lapses with the server silent, 'down' once the link is given up, 'ok' again after", async () => {
    const c = instance({ commandTimeoutMs: 4000 })
    await c.ping()
    expect(await eventually(() => c.health().status === 'ok', 3000)).toBe(true)
    redis.server.signal('SIGSTOP')
    try {
      // Answered at once though Redis answers nothing.
      const t0 = performance.now()
      const lapsed = await eventually(() => c.health().local.reason === 'lease-lapsed', 3500, 20)
      const h = c.health()
      expect(performance.now() - t0).toBeLessThan(3600)
      expect(lapsed).toBe(true)
      expect(h).toMatchObject({ status: 'degraded', redis: { connected: true }, local: { serving: false, reason: 'lease-lapsed' } })
      expect(await eventually(() => c.health().status === 'down', 8000, 50)).toBe(true)
      expect(c.health().redis.connected).toBe(false)
    } finally {
      redis.server.signal('SIGCONT')
    }
    expect(await eventually(() => c.health().status === 'ok', 8000, 50)).toBe(true)
  })

  it("'down' while Redis is stopped", async () => {
    const c = instance({ commandTimeoutMs: 300 })
    await c.ping()
    expect(await eventually(() => c.health().status === 'ok', 3000)).toBe(true)
    await redis.server.stop()
    try {
      expect(await eventually(() => c.health().status === 'down', 5000, 20)).toBe(true)
    } finally {
      await redis.server.start()
    }
    expect(await eventually(() => c.health().status === 'ok', 8000, 50)).toBe(true)
  })

  it("'memory' mode is 'ok'; a closed instance 'down' in either mode", async () => {
    const c = new CacheService({ mode: 'memory' })
    expect(c.health()).toEqual({ status: 'ok', redis: { connected: false, topology: 'memory' }, local: { serving: true } })
    await c.close()
    expect(c.health()).toMatchObject({ status: 'down', local: { serving: false, reason: 'closed' } })
    const r = instance()
    await r.ping()
    await r.close()
    expect(r.health()).toMatchObject({ status: 'down', redis: { connected: false }, local: { serving: false, reason: 'closed' } })
  })

  it("the lazy singleton closed before its first use is 'down', not a throw", async () => {
    const { cacheService } = await import('../index.js')
    await cacheService.close()
    expect(cacheService.health()).toEqual({ status: 'down', redis: { connected: false, topology: 'single' }, local: { serving: false, reason: 'closed' } })
  })
})

describe('health(): Redis Cluster', () => {
  // A long node timeout: a paused primary stays primary (no failover) while it is away.
  const cluster = ownCluster({ nodeTimeoutMs: 20_000 })

  it("every primary listed; 'degraded' with the paused one unreachable, 'ok' again after", async () => {
    const c = new CacheService({ cluster: { nodes: cluster.seeds }, logger: quiet, commandTimeoutMs: 300 })
    open.push(c)
    await c.ping()
    expect(await eventually(() => c.health().status === 'ok', 5000, 50)).toBe(true)
    const h = c.health()
    const primaries = (await cluster.primaries()).map((p) => p.port).sort()
    expect(h.redis.topology).toBe('cluster')
    expect(h.redis.primaries!.map((p) => Number(p.address.split(':').pop())).sort()).toEqual(primaries)
    expect(h.redis.primaries!.every((p) => p.reachable)).toBe(true)
    const paused = primaries[1]
    cluster.pause(paused)
    try {
      const seen = await eventually(() => {
        const now = c.health()
        return now.status === 'degraded' && now.redis.primaries?.find((p) => p.address.endsWith(`:${paused}`))?.reachable === false
      }, 8000, 50)
      expect(seen, JSON.stringify(c.health())).toBe(true)
      expect(c.health().redis.connected).toBe(true)
    } finally {
      await cluster.resume(paused)
    }
    expect(await eventually(() => c.health().status === 'ok', 15000, 100), JSON.stringify(c.health())).toBe(true)
    await sleep(0)
  }, 60_000)
})

describe('health(): Sentinel', () => {
  const group = ownSentinelGroup()

  it('names the master the connection was confirmed on', async () => {
    const c = new CacheService({ sentinel: { sentinels: group.sentinels, name: group.name }, logger: quiet })
    open.push(c)
    expect(await eventually(() => c.ping(), 10_000, 50)).toBe(true)
    expect(await eventually(() => c.health().status === 'ok', 5000, 50)).toBe(true)
    const port = await group.masterPort()
    const h = c.health()
    expect(h.redis).toMatchObject({ connected: true, topology: 'sentinel' })
    expect(h.redis.master).toMatch(new RegExp(`:${port}$`))
    expect(h.redis.primaries).toBeUndefined()
  }, 30_000)
})
