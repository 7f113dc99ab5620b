// getOrSetMany(keys, factory(missing, ctx), ttlOrOptions): values in key order;
// hits from L1/Redis in one round; one factory call with every missing key
// (deduplicated, first-seen order); what it returns stored in one round; keys it
// leaves out null and not stored; keys another call is computing awaited, not
// recomputed (in process, and across processes with lock: 'distributed');
// grace and rejection per key, as getOrSet.
import { describe, it, expect, beforeAll, afterAll, afterEach } from 'vitest'
import { tracingChannel } from 'node:diagnostics_channel'
import Redis from 'ioredis'
import { CacheService, TimeoutError } from '../index.js'
import { NativeCache } from '../native.js'
import { startRedis, stopRedis, sleep, eventually, type RedisProcess } from './helpers/redis'
import { ownCluster } from './helpers/cluster'

let server: RedisProcess
let raw: Redis
beforeAll(async () => {
  server = await startRedis()
  raw = new Redis(server.port, '127.0.0.1')
})
afterAll(async () => {
  raw?.disconnect()
  await stopRedis(server)
})

const open: CacheService[] = []
afterEach(async () => {
  for (const c of open.splice(0)) await c.close()
  await raw.flushall()
})

const quiet = { error: () => {}, warn: () => {} }
type Mode = 'redis' | 'memory'
async function instance(mode: Mode, extra: object = {}) {
  const c = new CacheService({ mode, url: server.url, logger: quiet, ...extra })
  open.push(c)
  if (mode === 'redis') expect(await eventually(() => c.ping(), 5000, 20)).toBe(true)
  return c
}

/** A factory that records each call's `missing` and answers `v:<key>` for each (after `ms`). */
function recording(ms = 0, leave: string[] = []) {
  const calls: string[][] = []
  const factory = async (missing: string[]) => {
    calls.push([...missing])
    if (ms > 0) await sleep(ms)
    return Object.fromEntries(missing.filter((k) => !leave.includes(k)).map((k) => [k, { v: k }]))
  }
  return { calls, factory }
}

describe.each(['redis', 'memory'] as const)('%s mode', (mode) => {
  it('answers in key order; one factory call with the missing keys, deduplicated, first seen first; stored', async () => {
    const c = await instance(mode)
    await c.set('b', { v: 'cached b' }, 60)
    const { calls, factory } = recording()
    const got = await c.getOrSetMany(['d', 'b', 'a', 'd', 'c', 'a'], factory, 60)
    expect(calls).toEqual([['d', 'a', 'c']])
    expect(got).toEqual([{ v: 'd' }, { v: 'cached b' }, { v: 'a' }, { v: 'd' }, { v: 'c' }, { v: 'a' }])
    expect(await c.mget(['a', 'c', 'd'])).toEqual([{ v: 'a' }, { v: 'c' }, { v: 'd' }])
    if (mode === 'redis') expect(await raw.pttl('a')).toBeGreaterThan(59_000)
    // All present now: no factory call.
    expect(await c.getOrSetMany(['a', 'b'], factory, 60)).toEqual([{ v: 'a' }, { v: 'cached b' }])
    expect(calls).toHaveLength(1)
  })

  it('keys the factory leaves out (or gives undefined) are null and not stored; keys not asked are ignored', async () => {
    const c = await instance(mode)
    const got = await c.getOrSetMany(['a', 'b', 'c'], async () => ({ a: 1, b: undefined, z: 'not asked' }), 60)
    expect(got).toEqual([1, null, null])
    expect(await c.exists('b')).toBe(false)
    expect(await c.exists('c')).toBe(false)
    expect(await c.exists('z')).toBe(false)
    // A Map works the same.
    expect(await c.getOrSetMany(['b', 'c'], async () => new Map([['c', 3]]), 60)).toEqual([null, 3])
    expect(await c.get('c')).toBe(3)
  })

  it('a factory result that is neither a plain object nor a Map: TypeError naming it, nothing stored', async () => {
    const c = await instance(mode)
    for (const bad of [[1, 2], 'x', null, 7, new (class Values {})()]) {
      const err = await c.getOrSetMany(['a', 'b'], async () => bad as never, 60).catch((e: unknown) => e)
      expect(err).toBeInstanceOf(TypeError)
      expect((err as Error).message).toMatch(/getOrSetMany factory must resolve to a plain object or a Map/)
    }
    expect(await c.exists('a')).toBe(false)
    expect(await c.getOrSetMany(['a'], async () => ({ a: 'usable' }), 60)).toEqual(['usable'])
  })

  it('a concurrent getOrSet of a key getOrSetMany is computing joins it, and the other way round', async () => {
    const c = await instance(mode)
    const { calls, factory } = recording(50)
    let single = 0
    const many = c.getOrSetMany(['k', 'm'], factory, 60)
    const joiner = c.getOrSet('k', async () => ((single += 1), 'own'), 60)
    expect(await many).toEqual([{ v: 'k' }, { v: 'm' }])
    expect(await joiner).toEqual({ v: 'k' })
    expect(single).toBe(0)

    // getOrSet first: getOrSetMany awaits its run instead of asking its factory for that key.
    const first = c.getOrSet('x', () => sleep(50).then(() => ({ v: 'from getOrSet' })), 60)
    const both = c.getOrSetMany(['x', 'y'], factory, 60)
    expect(await both).toEqual([{ v: 'from getOrSet' }, { v: 'y' }])
    expect(await first).toEqual({ v: 'from getOrSet' })
    expect(calls).toEqual([['k', 'm'], ['y']])
    // Two getOrSetMany calls that overlap: the shared key is computed once.
    const a = c.getOrSetMany(['p', 'q'], factory, 60)
    const b = c.getOrSetMany(['q', 'r'], factory, 60)
    expect(await Promise.all([a, b])).toEqual([
      [{ v: 'p' }, { v: 'q' }],
      [{ v: 'q' }, { v: 'r' }],
    ])
    expect(calls.slice(2)).toEqual([['p', 'q'], ['r']])
  })

  it("the caller that ran the factory gets its values themselves; a joiner a parsed copy", async () => {
    const c = await instance(mode)
    const made = { a: { deep: [1] }, b: { deep: [2] } }
    const many = c.getOrSetMany(['a', 'b'], async () => (await sleep(20), made), 60)
    const joiner = c.getOrSet('a', async () => ({ deep: [0] }), 60)
    const [a, b] = await many
    expect(a).toBe(made.a)
    expect(b).toBe(made.b)
    const copy = await joiner
    expect(copy).toEqual(made.a)
    expect(copy).not.toBe(made.a)
  })

  it('a key getOrSetMany left out: a joining getOrSet runs its own factory', async () => {
    const c = await instance(mode)
    const { factory } = recording(30, ['k'])
    const many = c.getOrSetMany(['k'], factory, 60)
    const joiner = c.getOrSet('k', async () => 'own', 60)
    expect(await many).toEqual([null])
    expect(await joiner).toBe('own')
  })

  it('a factory result that throws as it is read (getter, Proxy, Map subclass) rejects the call with that error; the keys stay usable', async () => {
    const c = await instance(mode)
    const boom = new Error('read')
    const results = [
      () => ({
        get a() {
          throw boom
        },
        b: 1,
      }),
      () => new Proxy({ a: 1, b: 2 }, { get: () => { throw boom } }),
      () => new (class Throwing extends Map<string, number> { get(_key: string): never { throw boom } })([['a', 1]]),
    ]
    for (const result of results) {
      const call = c.getOrSetMany(['a', 'b'], async () => result(), 60)
      expect(await Promise.race([call.catch((e: unknown) => e), sleep(1000).then(() => 'still pending')])).toBe(boom)
      // Its runs are over: a later getOrSet of those keys runs its own factory.
      expect(await Promise.race([c.getOrSet('a', async () => 'later', 60), sleep(1000).then(() => 'still pending')])).toBe('later')
      await c.del(['a', 'b'])
    }
    // With a fail-safe copy the key answers it, as for a factory rejection.
    await c.getOrSetMany(['g'], async () => ({ g: 'old g' }), { ttl: 0.05, grace: 60 })
    await sleep(80)
    const throwing = {
      get g(): string {
        throw boom
      },
    }
    expect(await c.getOrSetMany(['g'], async () => throwing, { ttl: 0.05, grace: 60 })).toEqual(['old g'])
  })

  it('a repeated key gets a value of its own at each position (mget does too), for a miss and for a hit', async () => {
    const c = await instance(mode)
    const miss = await c.getOrSetMany<{ n: number[] }>(['a', 'a'], async () => ({ a: { n: [1] } }), 60)
    expect(miss[1]).toEqual(miss[0])
    expect(miss[1]).not.toBe(miss[0])
    miss[0]!.n.push(2)
    expect(miss[1]).toEqual({ n: [1] })
    const hit = await c.getOrSetMany<{ n: number[] }>(['a', 'b', 'a', 'a'], async () => ({ b: { n: [0] } }), 60)
    expect(hit[2]).toEqual({ n: [1] })
    expect(hit[2]).not.toBe(hit[0])
    expect(hit[3]).not.toBe(hit[2])
    hit[0]!.n.push(3)
    expect(hit[2]).toEqual({ n: [1] })
  })

  it('getOrSet joining a run that leaves its key out: timeout.hard bounds its own factory', async () => {
    const c = await instance(mode)
    const pending = (p: Promise<unknown>) => Promise.race([p.catch((e: unknown) => e), sleep(1500).then(() => 'still pending')])
    // timeout.hard bounds the joiner's own factory.
    const many = c.getOrSetMany(['k'], async () => (await sleep(50), {}), 60)
    const hung = c.getOrSet('k', () => new Promise(() => {}), { timeout: { hard: 100 } })
    expect(await many).toEqual([null])
    expect(await pending(hung)).toBeInstanceOf(TimeoutError)
  })

  it('getOrSet joiners of a run that leaves their key out: one factory run between them', async () => {
    const c = await instance(mode)
    let runs = 0
    const again = c.getOrSetMany(['j'], async () => (await sleep(30), {}), 60)
    const joiners = Array.from({ length: 5 }, () => c.getOrSet('j', async () => (await sleep(30), (runs += 1), 'own'), 60))
    await again
    expect(await Promise.all(joiners)).toEqual(Array(5).fill('own'))
    expect(runs).toBe(1)
  })

  it('getOrSet joining a run whose getOrSetMany factory resolved to a wrong shape runs its own factory', async () => {
    const c = await instance(mode)
    const many = c.getOrSetMany(['k'], async () => (await sleep(30), [1] as never), 60)
    const joiner = c.getOrSet('k', async () => 'own', 60)
    await expect(many).rejects.toThrow(/getOrSetMany factory must resolve/)
    expect(await joiner).toBe('own')
  })

  it('a rejecting factory: keys with a fail-safe copy answer it, a key without one rejects the call', async () => {
    const c = await instance(mode)
    await c.getOrSetMany(['a'], async () => ({ a: 'old a' }), { ttl: 0.1, grace: 60 })
    await sleep(150)
    const boom = new Error('source down')
    const failing = async () => {
      throw boom
    }
    expect(await c.getOrSetMany(['a'], failing, { ttl: 0.1, grace: 60 })).toEqual(['old a'])
    await expect(c.getOrSetMany(['a', 'b'], failing, { ttl: 0.1, grace: 60 })).rejects.toBe(boom)
    await expect(c.getOrSetMany(['a'], failing, { ttl: 0.1 })).rejects.toBe(boom)
    expect(c.stats().failsafe).toBeGreaterThanOrEqual(1)
  })

  it('arguments: keys via toKeys, factory a function, empty keys [] without a factory call, tags and signal checked', async () => {
    const c = await instance(mode)
    let ran = 0
    const f = async () => ((ran += 1), {})
    expect(await c.getOrSetMany([], f)).toEqual([])
    expect(ran).toBe(0)
    await expect(c.getOrSetMany('a' as never, f)).rejects.toThrow(TypeError)
    await expect(c.getOrSetMany([{}] as never, f)).rejects.toThrow(/keys\[0\]/)
    await expect(c.getOrSetMany(['a'], 'f' as never)).rejects.toThrow(/factory must be a function/)
    await expect(c.getOrSetMany(['a'], f, { nope: 1 } as never)).rejects.toThrow(/getOrSetMany options: unknown option "nope"/)
    for (const call of [
      (o: object) => c.getOrSet('a', f, o as never),
      (o: object) => c.getOrSetMany(['a'], f, o as never),
    ]) {
      await expect(call({ tags: 'x' })).rejects.toThrow(TypeError)
      await expect(call({ tags: [''] })).rejects.toThrow(/tags\[0\]/)
      await expect(call({ tags: Array.from({ length: 65 }, (_, i) => `t${i}`) })).rejects.toThrow(/at most 64 tags/)
      await expect(call({ signal: {} })).rejects.toThrow(/signal must be an AbortSignal/)
    }
    expect(ran).toBe(0)
    // Valid tags are accepted.
    expect(await c.getOrSetMany(['a'], async () => ({ a: 1 }), { tags: ['t'] })).toEqual([1])
    expect(await c.getOrSet('g', async () => 2, { tags: ['t'] })).toBe(2)
  })

  it('eager refresh: hits due for a refresh are refreshed by one background factory call', async () => {
    const c = await instance(mode)
    const o = { ttl: 1, eagerRefresh: 0.5 }
    await c.getOrSetMany(['a', 'b'], async () => ({ a: 'old a', b: 'old b' }), o)
    await sleep(600)
    const { calls, factory } = recording()
    expect(await c.getOrSetMany(['a', 'b'], factory, o)).toEqual(['old a', 'old b'])
    expect(await eventually(async () => (await c.get<{ v: string }>('b'))?.v === 'b', 1000)).toBe(true)
    expect(calls).toEqual([['a', 'b']])
  })

  it('traced as { method: "getOrSetMany", keys } with an outcome', async () => {
    const c = await instance(mode)
    const seen: Array<{ method: string; keys?: unknown; outcome?: string }> = []
    const sub = { asyncEnd: (m: unknown) => seen.push(m as never), end: () => {}, start: () => {}, asyncStart: () => {}, error: () => {} }
    const ch = tracingChannel('native-cache:operation')
    ch.subscribe(sub)
    try {
      await c.getOrSetMany(['a', 'b'], async () => ({ a: 1, b: 2 }))
    } finally {
      ch.unsubscribe(sub)
    }
    expect(seen.find((m) => m.method === 'getOrSetMany')).toMatchObject({ method: 'getOrSetMany', keys: ['a', 'b'], outcome: 'miss' })
  })
})

it('no stale write-back: a write during the factory (a raw client, another instance) wins; the caller still gets the factory value', async () => {
  const a = await instance('redis')
  const b = await instance('redis')
  const got = await a.getOrSetMany(['x', 'y', 'z'], async () => {
    await raw.set('x', JSON.stringify('raw x'), 'PX', 60_000)
    await b.set('y', 'other y', 60)
    return { x: 'made x', y: 'made y', z: 'made z' }
  }, 60)
  expect(got).toEqual(['made x', 'made y', 'made z'])
  expect(await raw.get('x')).toBe(JSON.stringify('raw x'))
  expect(await raw.get('y')).toBe(JSON.stringify('other y'))
  expect(await raw.get('z')).toBe(JSON.stringify('made z'))
  expect(await eventually(async () => (await a.get('x')) === 'raw x' && (await a.get('y')) === 'other y', 2000)).toBe(true)
})

it('the reads are one round (one native batch), and so are the stores', async () => {
  const c = await instance('redis', { local: false })
  const keys = Array.from({ length: 10 }, (_, i) => `r${i}`)
  for (const k of keys.slice(0, 7)) await raw.set(k, JSON.stringify(k), 'PX', 60_000)
  const events: string[] = []
  const flush = NativeCache.prototype.flush
  NativeCache.prototype.flush = function (this: NativeCache) {
    events.push('batch')
    return flush.call(this)
  }
  try {
    const got = await c.getOrSetMany(keys, async (missing) => {
      events.push(`factory ${missing.join(',')}`)
      return Object.fromEntries(missing.map((k) => [k, `made ${k}`]))
    })
    expect(got).toEqual([...keys.slice(0, 7), 'made r7', 'made r8', 'made r9'])
  } finally {
    NativeCache.prototype.flush = flush
  }
  expect(events).toEqual(['batch', 'factory r7,r8,r9', 'batch'])
  expect(await raw.get('r8')).toBe('"made r8"')
})

it('40 missing keys (their reads span several native batches): still one factory call', async () => {
  const c = await instance('redis')
  const keys = Array.from({ length: 40 }, (_, i) => `wide:${i}`)
  const { calls, factory } = recording()
  const got = await c.getOrSetMany(keys, factory, 60)
  expect(calls).toEqual([keys])
  expect(got).toEqual(keys.map((k) => ({ v: k })))
  expect(await raw.exists(...keys)).toBe(40)
})

it("lock: 'distributed': two instances asking overlapping keys compute each key once overall", async () => {
  const a = await instance('redis')
  const b = await instance('redis')
  const made = new Map<string, number>()
  const factory = async (missing: string[]) => {
    for (const k of missing) made.set(k, (made.get(k) ?? 0) + 1)
    await sleep(150)
    return Object.fromEntries(missing.map((k) => [k, `v ${k}`]))
  }
  const o = { ttl: 60, lock: 'distributed' as const }
  const [x, y] = await Promise.all([a.getOrSetMany(['k1', 'k2', 'k3'], factory, o), b.getOrSetMany(['k2', 'k3', 'k4'], factory, o)])
  expect(x).toEqual(['v k1', 'v k2', 'v k3'])
  expect(y).toEqual(['v k2', 'v k3', 'v k4'])
  expect(Object.fromEntries(made)).toEqual({ k1: 1, k2: 1, k3: 1, k4: 1 })
  // A waiter that took a lease just as the value arrived releases it without waiting for the reply.
  expect(await eventually(async () => (await raw.keys('*__lock')).length === 0, 1000)).toBe(true)
})

it("lock: 'distributed': a key whose lease another process holds is awaited; taken over when it lapses, in a second factory call", async () => {
  const c = await instance('redis')
  await raw.set('held:__lock', 'another process', 'PX', 300)
  const { calls, factory } = recording()
  const got = await c.getOrSetMany(['free', 'held'], factory, { ttl: 60, lock: 'distributed' })
  expect(got).toEqual([{ v: 'free' }, { v: 'held' }])
  expect(calls).toEqual([['free'], ['held']])
  expect(c.stats().lockWaits).toBe(1)
})

it('Redis down: each key answers its fail-safe copy where it has one; the others come from the factory', async () => {
  const c = await instance('redis')
  const o = { ttl: 60, grace: 3600 }
  await c.getOrSetMany(['a'], async () => ({ a: 'kept a' }), o)
  await server.stop()
  try {
    const { calls, factory } = recording()
    expect(await c.getOrSetMany(['a', 'b'], factory, o)).toEqual(['kept a', { v: 'b' }])
    expect(calls).toEqual([['b']])
  } finally {
    await server.start()
  }
})

describe('Cluster: keys over several slots', () => {
  const cluster = ownCluster()
  it('hits from every primary, one factory call for the missing keys, stored where they belong', async () => {
    const c = new CacheService({ cluster: { nodes: cluster.seeds }, logger: quiet })
    open.push(c)
    expect(await eventually(() => c.ping(), 5000, 20)).toBe(true)
    const keys = Array.from({ length: 12 }, (_, i) => `spread:${i}`)
    for (const k of keys.slice(0, 5)) await cluster.raw.set(k, JSON.stringify(`cached ${k}`), 'PX', 60_000)
    const { calls, factory } = recording()
    const got = await c.getOrSetMany(keys, factory, 60)
    expect(calls).toEqual([keys.slice(5)])
    expect(got).toEqual([...keys.slice(0, 5).map((k) => `cached ${k}`), ...keys.slice(5).map((k) => ({ v: k }))])
    for (const k of keys.slice(5)) expect(await cluster.raw.get(k)).toBe(JSON.stringify({ v: k }))
    expect(new Set(await Promise.all(keys.map((k) => cluster.primaryOf(k)))).size).toBeGreaterThan(1)
  })
})
