// getOrSet never writes back a stale result: a write or delete of the key by
// anyone (this instance, another, a raw client) after the miss was read (or
// the eager refresh started) and before the factory's result is stored wins.
// The result still answers the callers waiting; it is counted as superseded.
// On one server, a Cluster and a Sentinel-managed master.
import { describe, it, expect, afterAll, beforeAll } from 'vitest'
import Redis, { type Cluster } from 'ioredis'
import { CacheService } from '../index.js'
import { ownRedis } from './helpers/own-redis'
import { ownCluster } from './helpers/cluster'
import { ownSentinelGroup } from './helpers/sentinel'
import { sleep } from './helpers/redis'

const quiet = { error: () => {}, warn: () => {}, info: () => {}, debug: () => {} }
const redis = ownRedis()
const cluster = ownCluster()
const group = ownSentinelGroup()
let masterPort = 0
beforeAll(async () => {
  masterPort = await group.settled()
}, 60_000)

type Raw = Redis | Cluster
interface Topology {
  name: string
  cache(local?: false): CacheService
  raw(): Raw
}

const open: CacheService[] = []
afterAll(async () => {
  for (const c of open.splice(0)) await c.close()
})
const track = (c: CacheService) => (open.push(c), c)

const topologies: Topology[] = [
  {
    name: 'one server',
    cache: (local) => track(new CacheService({ url: redis.server.url, logger: quiet, ...(local === false ? { local } : {}) })),
    raw: () => redis.raw,
  },
  {
    name: 'cluster',
    cache: (local) => track(new CacheService({ cluster: { nodes: cluster.seeds }, logger: quiet, ...(local === false ? { local } : {}) })),
    raw: () => cluster.raw,
  },
  {
    name: 'sentinel',
    cache: (local) =>
      track(new CacheService({ sentinel: { sentinels: group.sentinels, name: group.name }, logger: quiet, ...(local === false ? { local } : {}) })),
    raw: () => group.raw(masterPort),
  },
]

/** A factory that takes `ms` and counts its runs. */
function slow(ms: number, prefix = 'factory') {
  let runs = 0
  const f = async () => {
    runs++
    await sleep(ms)
    return `${prefix}#${runs}`
  }
  return Object.assign(f, { runs: () => runs })
}

let n = 0
const fresh = (what: string) => `stale:${what}:${++n}`

describe.each(topologies)('$name', (t) => {
  for (const local of [undefined, false] as const) {
    const l1 = local === false ? 'L1 off' : 'L1 on'

    it(`eager refresh: the application's own set (and its TTL) wins over the refresh (${l1})`, async () => {
      const c = t.cache(local)
      const k = fresh('refresh-set')
      const f = slow(200)
      const opts = { ttl: 2, eagerRefresh: 0.1 }
      expect(await c.getOrSet(k, f, opts)).toBe('factory#1')
      await sleep(300)
      // A hit past the fraction: the refresh starts and runs 200 ms.
      expect(await c.getOrSet(k, f, opts)).toBe('factory#1')
      await sleep(20)
      expect(f.runs()).toBe(2)
      const before = c.stats().superseded
      await c.set(k, 'user-write', 60)
      expect(await c.get(k)).toBe('user-write')
      await sleep(400)
      expect(await t.raw().get(k)).toBe('"user-write"')
      expect(await t.raw().pttl(k)).toBeGreaterThan(55_000)
      expect(c.stats().superseded).toBe(before + 1)
    })

    it(`eager refresh: a del and an invalidatePattern win over the refresh (${l1})`, async () => {
      const c = t.cache(local)
      for (const how of ['del', 'pattern'] as const) {
        const k = fresh(`refresh-${how}`)
        const f = slow(200)
        const opts = { ttl: 2, eagerRefresh: 0.1 }
        await c.getOrSet(k, f, opts)
        await sleep(300)
        await c.getOrSet(k, f, opts)
        await sleep(20)
        expect(f.runs()).toBe(2)
        if (how === 'del') await c.del(k)
        else await c.invalidatePattern(`${k}*`)
        await sleep(400)
        expect(await t.raw().exists(k), how).toBe(0)
      }
    })

    it(`timeout.soft: a raw client's fix made after the caller got the fail-safe copy wins over the late factory (${l1})`, async () => {
      const c = t.cache(local)
      const k = fresh('soft')
      expect(await c.getOrSet(k, () => 'v1', { ttl: 0.2, grace: 60 })).toBe('v1')
      await sleep(300)
      const f = slow(300)
      const started = performance.now()
      expect(await c.getOrSet(k, f, { ttl: 60, grace: 60, timeout: { soft: 50 } })).toBe('v1')
      expect(performance.now() - started).toBeLessThan(250)
      await t.raw().set(k, '"admin-fix"', 'EX', 60)
      await sleep(450)
      expect(await t.raw().get(k)).toBe('"admin-fix"')
    })

    it(`a key of another type (a hash) is left as it is; the caller still gets the factory's value (${l1})`, async () => {
      const c = t.cache(local)
      const k = fresh('hash')
      await t.raw().hset(k, 'field', 'kept')
      expect(await c.getOrSet(k, () => 'computed', 60)).toBe('computed')
      expect(await t.raw().type(k)).toBe('hash')
      expect(await t.raw().hget(k, 'field')).toBe('kept')
    })

    it(`a factory answering undefined on a miss deletes nothing: a raw SET during it survives (${l1})`, async () => {
      const c = t.cache(local)
      const k = fresh('undefined')
      const answer = await c.getOrSet(
        k,
        async () => {
          await t.raw().set(k, '"foreign"', 'EX', 30)
          await sleep(20)
          return undefined
        },
        60,
      )
      expect(answer).toBeUndefined()
      expect(await t.raw().get(k)).toBe('"foreign"')
    })

    it(`plain getOrSet: a raw SET, or SET then DEL, during the factory wins; the callers still get the result (${l1})`, async () => {
      const c = t.cache(local)
      const before = c.stats().superseded
      const k = fresh('plain-set')
      const running = c.getOrSet(k, slow(200), 60)
      await sleep(50)
      await t.raw().set(k, '"foreign"', 'EX', 30)
      expect(await running).toBe('factory#1')
      expect(await t.raw().get(k)).toBe('"foreign"')
      expect(await t.raw().pttl(k)).toBeLessThanOrEqual(30_000)
      if (local !== false) {
        // A SET then DEL leaves the key absent: only the invalidation the read subscribed to tells.
        const gone = fresh('plain-set-del')
        const again = c.getOrSet(gone, slow(200), 60)
        await sleep(50)
        await t.raw().set(gone, '"foreign"')
        await t.raw().del(gone)
        expect(await again).toBe('factory#1')
        expect(await t.raw().exists(gone)).toBe(0)
      }
      expect(c.stats().superseded).toBe(before + (local === false ? 1 : 2))
      expect(c.metrics()).toMatch(/native_cache_getorset_superseded_total \d+/)
    })

    it(`a write by another instance of this process wins too; a getOrSet nobody wrote over still stores (${l1})`, async () => {
      const a = t.cache(local)
      const b = t.cache(local)
      const k = fresh('peer')
      const running = a.getOrSet(k, slow(200), 60)
      await sleep(50)
      await b.set(k, 'from-b', 60)
      expect(await running).toBe('factory#1')
      expect(await t.raw().get(k)).toBe('"from-b"')
      const untouched = fresh('untouched')
      expect(await a.getOrSet(untouched, slow(50), 60)).toBe('factory#1')
      expect(await t.raw().get(untouched)).toBe('"factory#1"')
    })
  }
})

describe('memory mode', () => {
  it("the instance's own set and del during the factory win", async () => {
    const c = track(new CacheService({ mode: 'memory', logger: quiet }))
    const running = c.getOrSet('k', slow(100), 60)
    await sleep(20)
    await c.set('k', 'mine', 60)
    expect(await running).toBe('factory#1')
    expect(await c.get('k')).toBe('mine')
    const gone = c.getOrSet('g', slow(100), 60)
    await sleep(20)
    await c.set('g', 'x', 60)
    await c.del('g')
    expect(await gone).toBe('factory#1')
    expect(await c.get('g')).toBe(null)
    expect(c.stats().superseded).toBe(2)
  })
})
