// The method table on a real Redis Cluster (3 primaries, 3 replicas): results,
// bytes and TTL as in single-node mode, keys on every primary, and L1 kept
// coherent with writers on every node.
import { describe, it, expect, beforeAll, afterAll, beforeEach } from 'vitest'
import { CacheService } from '../index.js'
import { ownCluster } from './helpers/cluster'
import { eventually, freePort } from './helpers/redis'

const cluster = ownCluster()

/** Keys that land on every primary: `count` per primary. */
async function keysOnEveryPrimary(prefix: string, count = 1): Promise<Map<number, string[]>> {
  const byPrimary = new Map<number, string[]>()
  for (let i = 0; [...byPrimary.values()].filter((k) => k.length >= count).length < 3; i++) {
    const key = `${prefix}:${i}`
    const p = await cluster.primaryOf(key)
    const list = byPrimary.get(p) ?? []
    if (list.length < count) list.push(key)
    byPrimary.set(p, list)
  }
  return byPrimary
}

async function hitFromL1(cache: CacheService, key: string): Promise<unknown> {
  const before = cache.stats().local.hits
  const v = await cache.get(key)
  expect(cache.stats().local.hits, `${key} should be an L1 hit`).toBe(before + 1)
  return v
}

describe('cluster mode: the original API', () => {
  let cache: CacheService

  beforeAll(() => {
    cache = new CacheService({ cluster: { nodes: cluster.seeds } })
  })
  afterAll(async () => {
    await cache.close()
  })
  beforeEach(async () => {
    await cache.clear()
  })

  it('get, set, exists, ttl, del on keys of every primary', async () => {
    const keys = [...(await keysOnEveryPrimary('table')).values()].flat()
    for (const [i, key] of keys.entries()) {
      await cache.set(key, { i, name: `n${i}` }, 60)
      expect(await cache.get(key)).toEqual({ i, name: `n${i}` })
      expect(await cache.exists(key)).toBe(true)
      const ttl = await cache.ttl(key)
      expect(ttl).toBeGreaterThan(55)
      expect(ttl).toBeLessThanOrEqual(60)
    }
    await cache.del(keys)
    for (const key of keys) {
      expect(await cache.get(key)).toBeNull()
      expect(await cache.exists(key)).toBe(false)
      expect(await cache.ttl(key)).toBe(-2)
    }
  })

  it('stores exactly JSON.stringify with the expiry, read back through Redis.Cluster', async () => {
    const value = { s: 'caf\u00e9 \u2028', n: 1e21, a: [1, null, true], o: { __proto__: 1 } }
    const keys = [...(await keysOnEveryPrimary('wire')).values()].flat()
    for (const key of keys) {
      await cache.set(key, value, 42.5)
      const stored = await cluster.raw.getBuffer(key)
      expect(stored?.equals(Buffer.from(JSON.stringify(value)))).toBe(true)
      const pttl = await cluster.raw.pttl(key)
      expect(pttl).toBeGreaterThan(42_000)
      expect(pttl).toBeLessThanOrEqual(42_500)
    }
    await cache.mset(Object.fromEntries(keys.map((k) => [k, 'v'])), 7)
    for (const key of keys) {
      expect(await cluster.raw.get(key)).toBe('"v"')
      expect(await cluster.raw.pttl(key)).toBeLessThanOrEqual(7000)
    }
  })

  it('mget, mset and del span slots and primaries, with and without hash tags', async () => {
    const plain = Array.from({ length: 50 }, (_, i) => `plain:${i}`)
    const tagged = Array.from({ length: 10 }, (_, i) => `{tag}:${i}`)
    const all = [...plain, ...tagged]
    const primaries = new Set(await Promise.all(plain.map((k) => cluster.primaryOf(k))))
    expect(primaries.size).toBe(3)
    await cache.mset(Object.fromEntries(all.map((k, i) => [k, { i }])), 30)
    const got = await cache.mget([...all, 'missing', all[3]])
    expect(got).toEqual([...all.map((_, i) => ({ i })), null, { i: 3 }])
    // One expiry for every entry.
    const pttls = await Promise.all(all.map((k) => cluster.raw.pttl(k)))
    expect(Math.min(...pttls)).toBeGreaterThan(29_000)
    expect(Math.max(...pttls)).toBeLessThanOrEqual(30_000)
    // Read back through L1 as well (a second mget), still in key order.
    expect(await cache.mget(all)).toEqual(all.map((_, i) => ({ i })))
    await cache.del([...plain.slice(0, 25), ...tagged.slice(0, 5)])
    const after = await cache.mget(all)
    expect(after).toEqual(all.map((k, i) => (plain.slice(0, 25).includes(k) || tagged.slice(0, 5).includes(k) ? null : { i })))
    expect(await cluster.raw.exists(...tagged)).toBe(5)
    expect(await cache.mget([])).toEqual([])
  })

  it('calls on one key keep call order across slots', async () => {
    const calls: Promise<unknown>[] = []
    const expected = new Map<string, string | null>()
    for (let i = 0; i < 200; i++) {
      calls.push(cache.set(`order:${i % 7}`, i))
      expected.set(`order:${i % 7}`, String(i))
      if (i % 3 === 0) {
        calls.push(cache.del(`order:${(i + 1) % 7}`))
        expected.set(`order:${(i + 1) % 7}`, null)
      }
    }
    await Promise.all(calls)
    for (const [key, value] of expected) expect(await cluster.raw.get(key)).toBe(value)
  })

  it('getOrSet runs the factory once per missing key and stores its result', async () => {
    let runs = 0
    const factory = async () => {
      runs++
      return { fresh: true }
    }
    const results = await Promise.all(Array.from({ length: 5 }, () => cache.getOrSet('gos:1', factory, 20)))
    expect(results).toEqual(Array(5).fill({ fresh: true }))
    expect(runs).toBe(1)
    expect(await cluster.raw.get('gos:1')).toBe('{"fresh":true}')
  })

  it('invalidatePattern deletes matching keys on every primary, and only those', async () => {
    const byPrimary = await keysOnEveryPrimary('pat:a', 3)
    const doomed = [...byPrimary.values()].flat()
    await cache.mset(Object.fromEntries(doomed.map((k) => [k, 1])), 60)
    await cache.set('keep:a:1', 1, 60)
    expect(await cache.mget(doomed)).toEqual(doomed.map(() => 1))
    await cache.invalidatePattern('pat:a:*')
    expect(await cache.mget(doomed)).toEqual(doomed.map(() => null))
    for (const k of doomed) expect(await cluster.raw.exists(k)).toBe(0)
    expect(await cache.get('keep:a:1')).toBe(1)
  })

  it('getInfo sums DBSIZE over primaries; clear empties every primary; ping', async () => {
    const keys = [...(await keysOnEveryPrimary('info', 2)).values()].flat()
    await cache.mset(Object.fromEntries(keys.map((k) => [k, 'x'.repeat(100)])), 60)
    const info = await cache.getInfo()
    expect(info.keyCount).toBe(keys.length)
    expect(info.memoryUsage).toMatch(/^\d+(\.\d+)?[BKMGTP]$/)
    let sum = 0
    for (const p of await cluster.primaries()) sum += (await cluster.node(p.port).dbsize()) as number
    expect(sum).toBe(keys.length)
    await cache.clear()
    for (const p of await cluster.primaries()) expect(await cluster.node(p.port).dbsize()).toBe(0)
    expect((await cache.getInfo()).keyCount).toBe(0)
    expect(await cache.ping()).toBe(true)
    // The latency probe does not run on a cluster yet (README).
    expect(cache.stats().redis.invalidationLatency.samples).toBe(0)
  })
})

describe('cluster mode: L1 coherence on every node', () => {
  let cache: CacheService

  beforeAll(() => {
    cache = new CacheService({ cluster: { nodes: [cluster.seeds[0]] } })
  })
  afterAll(async () => {
    await cache.close()
  })

  it('a foreign write on any primary stops L1 serving the old value', async () => {
    const keys = [...(await keysOnEveryPrimary('coh')).values()].flat()
    expect(keys.length).toBe(3)
    for (const key of keys) {
      await cluster.raw.set(key, '"old"', 'EX', 60)
      expect(await cache.get(key)).toBe('old')
      expect(await cache.get(key)).toBe('old') // L1 fills on a key's second read
      await eventually(() => cache.stats().local.enabled, 2000)
      expect(await hitFromL1(cache, key)).toBe('old')
    }
    for (const key of keys) await cluster.raw.set(key, '"new"', 'EX', 60)
    for (const key of keys) {
      const seen = await eventually(async () => (await cache.get(key)) === 'new', 100, 5)
      expect(seen, `${key} served stale after a foreign write`).toBe(true)
    }
    // The mget path too, across all three primaries at once.
    expect(await cache.mget(keys)).toEqual(keys.map(() => 'new'))
    expect(await cache.mget(keys)).toEqual(keys.map(() => 'new'))
    for (const key of keys) await cluster.raw.del(key)
    expect(
      await eventually(async () => (await cache.mget(keys)).every((v) => v === null), 100, 5),
      'deleted keys still served',
    ).toBe(true)
  })
  it('lock waiters on a cluster are woken by the tracking invalidation of the lock key, not by their next poll', async () => {
    // Another instance holds the lease for ~2 s, then its factory fails and it
    // releases the lease (DEL of the lock key; the main key never changes). A
    // waiter relying on its poll (50 ms doubling to 500 ms) would take over
    // hundreds of ms later; woken by the lock key's invalidation, at once.
    const holder = new CacheService({ cluster: { nodes: cluster.seeds }, logger: false })
    try {
      for (const key of [...(await keysOnEveryPrimary('lockwake')).values()].flat()) {
        let failedAt = 0
        const held = holder.getOrSet(
          key,
          async () => {
            await new Promise((r) => setTimeout(r, 2000))
            failedAt = Date.now()
            throw new Error('factory failed')
          },
          { ttl: 60, lock: 'distributed' },
        )
        const holderFailure = held.then(
          () => null,
          (e: Error) => e.message,
        )
        await new Promise((r) => setTimeout(r, 200))
        let startedAt = 0
        const waited = await cache.getOrSet(
          key,
          async () => {
            startedAt = Date.now()
            return 'from-waiter'
          },
          { ttl: 60, lock: 'distributed' },
        )
        expect(await holderFailure).toBe('factory failed')
        expect(waited).toBe('from-waiter')
        const lag = startedAt - failedAt
        expect(lag, `${key}: the waiter took over ${lag} ms after the lease was released`).toBeLessThan(100)
      }
    } finally {
      await holder.close()
    }
  }, 30_000)
})

describe('cluster options', () => {
  it('a malformed cluster option is a TypeError naming it', () => {
    expect(() => new CacheService({ cluster: { nodes: [] } })).toThrow(/cluster\.nodes/)
    expect(() => new CacheService({ cluster: { nodes: ['nohost'] } })).toThrow(/cluster\.nodes.*"nohost"/)
    expect(() => new CacheService({ cluster: { nodes: [1 as unknown as string] } })).toThrow(TypeError)
    expect(() => new CacheService({ cluster: { nodes: ['127.0.0.1:7000'] }, db: 2 })).toThrow(/db must be 0/)
    expect(() => new CacheService({ cluster: 'x' as unknown as { nodes: string[] } })).toThrow(TypeError)
  })

  it('REDIS_CLUSTER_NODES and REDIS_SENTINELS together are a TypeError; an explicit option picks one', () => {
    const saved = { ...process.env }
    try {
      process.env.REDIS_CLUSTER_NODES = '127.0.0.1:1'
      process.env.REDIS_SENTINELS = '127.0.0.1:2'
      process.env.REDIS_SENTINEL_NAME = 'mymaster'
      expect(() => new CacheService({ logger: false })).toThrow(/REDIS_CLUSTER_NODES and REDIS_SENTINELS/)
      const explicit = new CacheService({ sentinel: { sentinels: ['127.0.0.1:2'], name: 'm' }, logger: false })
      void explicit.close()
    } finally {
      process.env = saved
    }
  })

  it('an unreachable cluster: every method takes its failure result within the bound', async () => {
    const cache = new CacheService({ cluster: { nodes: [`127.0.0.1:${await freePort()}`] }, commandTimeoutMs: 300, logger: false })
    try {
      const t0 = Date.now()
      expect(await cache.get('k')).toBeNull()
      expect(await cache.set('k', 1)).toBeUndefined()
      expect(await cache.mget(['a', 'b'])).toEqual([])
      expect(await cache.exists('k')).toBe(false)
      expect(await cache.ttl('k')).toBe(-1)
      expect(await cache.ping()).toBe(false)
      expect(await cache.getInfo()).toEqual({ keyCount: 0, memoryUsage: 'unknown' })
      expect(Date.now() - t0).toBeLessThan(7 * 300 + 1000)
    } finally {
      await cache.close()
    }
  })

  it('REDIS_CLUSTER_NODES is the environment fallback, comma-separated', async () => {
    const before = process.env.REDIS_CLUSTER_NODES
    process.env.REDIS_CLUSTER_NODES = cluster.seeds.slice(0, 2).join(', ')
    const cache = new CacheService()
    try {
      await cache.set('env:1', 'via env', 30)
      expect(await cluster.raw.get('env:1')).toBe('"via env"')
    } finally {
      await cache.close()
      if (before === undefined) delete process.env.REDIS_CLUSTER_NODES
      else process.env.REDIS_CLUSTER_NODES = before
    }
  })
})

// A node may refuse CLIENT TRACKING (an ACL, a proxy in front of it): its
// keys are then read from Redis every time, while the other nodes keep L1.
describe('cluster mode: a node that refuses CLIENT TRACKING', () => {
  it('its keys run without L1 (said once through the logger), the other nodes keep L1', async () => {
    const [refusing, other] = await cluster.primaries()
    const node = cluster.node(refusing.port)
    await node.call('ACL', 'SETUSER', 'default', '-client|tracking')
    const lines: string[] = []
    const keep = (m: unknown) => void lines.push(String(m))
    const cache = new CacheService({ cluster: { nodes: cluster.seeds }, logger: { error: keep, warn: keep, info: keep, debug: keep } })
    try {
      const untracked = (await keysOnEveryPrimary('refuse')).get(refusing.port)![0]
      const tracked = (await keysOnEveryPrimary('refuse')).get(other.port)![0]
      await cache.set(untracked, 'u', 60)
      await cache.set(tracked, 't', 60)
      for (let i = 0; i < 3; i++) {
        expect(await cache.get(untracked)).toBe('u')
        expect(await cache.get(tracked)).toBe('t')
      }
      expect(await eventually(async () => {
        const before = cache.stats().local.hits
        return (await cache.get(tracked)) === 't' && cache.stats().local.hits === before + 1
      }, 2000), 'a key of a tracking node is served from L1').toBe(true)
      const before = cache.stats().local.hits
      expect(await cache.mget([untracked, tracked])).toEqual(['u', 't'])
      expect(await cache.get(untracked)).toBe('u')
      expect(cache.stats().local.hits - before, 'only the tracking node\'s key is an L1 hit').toBe(1)
      // Nothing of the refusing node is kept: a foreign write there is seen at once.
      await node.set(untracked, '"foreign"', 'EX', 60)
      expect(await cache.get(untracked)).toBe('foreign')
      expect(lines.filter((l) => /track/i.test(l)), 'said once').toHaveLength(1)
      expect(lines[0]).toContain(`${refusing.port}`)
    } finally {
      await node.call('ACL', 'SETUSER', 'default', '+client|tracking')
      await cache.close()
    }
  })
})
