// Cancellable factories: getOrSet's factory is called with `{ key, signal }`,
// getOrSetMany's with `(missing, { signal })`. The signal aborts at
// `timeout.hard`, on close(), and when the caller's own `signal` aborts — for
// a run shared by several callers only once every one of them has stopped
// waiting. A caller's abort rejects it with the signal's reason (an AbortError
// by default, as fetch does); an already-aborted signal rejects at once
// without running the factory; listeners on the caller's signal are removed
// when the call settles.
import { describe, it, expect, beforeAll, afterAll, afterEach } from 'vitest'
import { getEventListeners } from 'node:events'
import Redis from 'ioredis'
import { CacheService, CacheClosedError, TimeoutError } from '../index.js'
import { startRedis, stopRedis, eventually, sleep, type RedisProcess } from './helpers/redis'

let server: RedisProcess
beforeAll(async () => {
  server = await startRedis()
})
afterAll(async () => {
  await stopRedis(server)
})

const open: CacheService[] = []
afterEach(async () => {
  for (const c of open.splice(0)) await c.close()
})

const quiet = { error: () => {}, warn: () => {} }
async function instance(mode: 'redis' | 'memory') {
  const c = new CacheService({ mode, url: server.url, logger: quiet })
  open.push(c)
  if (mode === 'redis') {
    expect(await eventually(() => c.ping(), 5000, 20)).toBe(true)
    await c.clear()
  }
  return c
}

/** A factory that runs until released (then answers `value`) or until its signal aborts (then rejects with its reason). */
function controllable<T>(value: T) {
  const seen: { signal?: AbortSignal; key?: string; missing?: string[]; runs: number } = { runs: 0 }
  let release = () => {}
  const factory = (a: unknown, b?: unknown) => {
    seen.runs += 1
    const ctx = (b ?? a) as { key?: string; signal: AbortSignal }
    if (Array.isArray(a)) seen.missing = a
    else seen.key = ctx.key
    seen.signal = ctx.signal
    return new Promise<T>((resolve, reject) => {
      release = () => resolve(value)
      ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason), { once: true })
    })
  }
  return { seen, factory, release: () => release() }
}

const running = (seen: { runs: number }) => eventually(() => seen.runs > 0, 2000, 2)

describe.each(['redis', 'memory'] as const)('%s mode', (mode) => {
  it('getOrSet: the factory gets { key, signal }; getOrSetMany: (missing, { signal }) without key', async () => {
    const c = await instance(mode)
    let ctx: Record<string, unknown> = {}
    await c.getOrSet('k', (x) => ((ctx = { key: x.key, signal: x.signal }), 1))
    expect(ctx.key).toBe('k')
    expect(ctx.signal).toBeInstanceOf(AbortSignal)
    let many: Record<string, unknown> = {}
    await c.getOrSetMany(['m'], (missing, x) => ((many = { missing, signal: x.signal, hasKey: 'key' in x }), { m: 1 }))
    expect(many).toMatchObject({ missing: ['m'], hasKey: false })
    expect(many.signal).toBeInstanceOf(AbortSignal)
  })

  it('timeout.hard aborts the factory signal (reason: the TimeoutError)', async () => {
    const c = await instance(mode)
    const one = controllable('late')
    await expect(c.getOrSet('k', one.factory, { timeout: { hard: 80 } })).rejects.toBeInstanceOf(TimeoutError)
    expect(one.seen.signal?.aborted).toBe(true)
    expect(one.seen.signal?.reason).toBeInstanceOf(TimeoutError)
    const many = controllable({})
    const err = await c.getOrSetMany(['a', 'b'], many.factory, { timeout: { hard: 80 } }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(TimeoutError)
    expect((err as Error).message).toMatch(/^getOrSetMany factory for key "a"/)
    // Each key is timed on its own; the call rejects at the first, the factory is told once both have passed.
    expect(await eventually(() => many.seen.signal?.aborted === true, 500, 2)).toBe(true)
    expect(many.seen.signal?.reason).toBeInstanceOf(TimeoutError)
  })

  it("the caller's abort rejects it with an AbortError and, alone on the run, aborts the factory", async () => {
    const c = await instance(mode)
    for (const call of [
      (f: never, signal: AbortSignal) => c.getOrSet('k', f, { signal }),
      (f: never, signal: AbortSignal) => c.getOrSetMany(['x', 'y'], f, { signal }),
    ]) {
      const { seen, factory } = controllable('v')
      const ac = new AbortController()
      const p = call(factory as never, ac.signal)
      expect(await running(seen)).toBe(true)
      ac.abort()
      const err = await p.catch((e: unknown) => e)
      expect(err).toBeInstanceOf(DOMException)
      expect((err as DOMException).name).toBe('AbortError')
      expect(err).toBe(ac.signal.reason)
      expect(seen.signal?.aborted).toBe(true)
      expect(getEventListeners(ac.signal, 'abort')).toHaveLength(0)
    }
    // A reason of the caller's own is what the call rejects with.
    const ac = new AbortController()
    const p = c.getOrSet('r', controllable(1).factory, { signal: ac.signal })
    const why = new Error('user left')
    ac.abort(why)
    await expect(p).rejects.toBe(why)
  })

  it('one of two callers aborting does not cancel the other; the factory aborts only when both have', async () => {
    const c = await instance(mode)
    const { seen, factory, release } = controllable('shared')
    const a = new AbortController()
    const b = new AbortController()
    const pa = c.getOrSet('k', factory, { signal: a.signal })
    const pb = c.getOrSet('k', factory, { signal: b.signal })
    expect(await running(seen)).toBe(true)
    a.abort()
    await expect(pa).rejects.toMatchObject({ name: 'AbortError' })
    await sleep(20)
    expect(seen.signal?.aborted).toBe(false)
    release()
    expect(await pb).toBe('shared')
    expect(seen.runs).toBe(1)

    // Both abort: the factory is told.
    const two = controllable('x')
    const c1 = new AbortController()
    const c2 = new AbortController()
    const p1 = c.getOrSet('j', two.factory, { signal: c1.signal })
    const p2 = c.getOrSet('j', two.factory, { signal: c2.signal })
    expect(await running(two.seen)).toBe(true)
    c1.abort()
    c2.abort()
    await expect(Promise.all([p1, p2])).rejects.toMatchObject({ name: 'AbortError' })
    expect(two.seen.signal?.aborted).toBe(true)
  })

  it("getOrSetMany: its caller's abort leaves a key another caller waits for computed", async () => {
    const c = await instance(mode)
    const { seen, factory, release } = controllable({ a: 'A', b: 'B' })
    const ac = new AbortController()
    const many = c.getOrSetMany(['a', 'b'], factory as never, { signal: ac.signal })
    const single = c.getOrSet('a', () => 'own')
    expect(await running(seen)).toBe(true)
    ac.abort()
    await expect(many).rejects.toMatchObject({ name: 'AbortError' })
    await sleep(20)
    expect(seen.signal?.aborted).toBe(false)
    release()
    expect(await single).toBe('A')
  })

  it("getOrSet joining a getOrSetMany run that leaves its key out: its abort aborts its own factory's signal", async () => {
    const c = await instance(mode)
    const many = c.getOrSetMany(['k'], async () => (await sleep(30), {}), 60)
    const own = controllable('own')
    const ac = new AbortController()
    const joiner = c.getOrSet('k', own.factory, { signal: ac.signal })
    expect(await many).toEqual([null])
    expect(await running(own.seen)).toBe(true)
    ac.abort()
    await expect(joiner).rejects.toBe(ac.signal.reason)
    expect(own.seen.signal?.aborted).toBe(true)
  })

  it('getOrSetMany rejected early (a key joined from a failing getOrSet): the factory of its other keys is told no one waits', async () => {
    const c = await instance(mode)
    const boom = new Error('a failed')
    const single = c.getOrSet('a', async () => {
      await sleep(30)
      throw boom
    })
    const { seen, factory } = controllable({ b: 'B' })
    const ac = new AbortController()
    const many = c.getOrSetMany(['a', 'b'], factory as never, { signal: ac.signal })
    expect(await running(seen)).toBe(true)
    expect(seen.missing).toEqual(['b'])
    await expect(many).rejects.toBe(boom)
    await expect(single).rejects.toBe(boom)
    ac.abort()
    expect(await eventually(() => seen.signal?.aborted === true, 500, 2)).toBe(true)
  })

  it('a signal read after the factory settled is not held for close() (no controller kept per call)', async () => {
    const c = await instance(mode)
    const kept: Array<{ signal: AbortSignal }> = []
    await c.getOrSet('k', (ctx) => (kept.push(ctx), 1))
    await c.getOrSetMany(['m'], (_, ctx) => (kept.push(ctx), { m: 1 }))
    const late = kept.map((ctx) => ctx.signal)
    await c.close()
    for (const s of late) expect(s.aborted).toBe(false)
  })

  it('an already-aborted signal rejects at once without running the factory (or reading)', async () => {
    const c = await instance(mode)
    let ran = 0
    const signal = AbortSignal.abort()
    await expect(c.getOrSet('k', () => ((ran += 1), 1), { signal })).rejects.toBe(signal.reason)
    await expect(c.getOrSetMany(['k'], () => ((ran += 1), {}), { signal })).rejects.toBe(signal.reason)
    expect(ran).toBe(0)
  })

  it('close() aborts every factory in flight (reason: CacheClosedError), eager refreshes included', async () => {
    const c = await instance(mode)
    const one = controllable(1)
    const many = controllable({})
    const p1 = c.getOrSet('k', one.factory).catch((e: unknown) => e)
    const p2 = c.getOrSetMany(['a'], many.factory).catch((e: unknown) => e)
    await c.getOrSet('hot', () => 'v', { ttl: 1, eagerRefresh: 0.01 })
    await sleep(30)
    const refresh = controllable('new')
    expect(await c.getOrSet('hot', refresh.factory, { ttl: 1, eagerRefresh: 0.01 })).toBe('v')
    expect(await running(one.seen)).toBe(true)
    expect(await running(many.seen)).toBe(true)
    expect(await running(refresh.seen)).toBe(true)
    await c.close()
    for (const s of [one.seen, many.seen, refresh.seen]) {
      expect(s.signal?.aborted).toBe(true)
      expect(s.signal?.reason).toBeInstanceOf(CacheClosedError)
    }
    expect(await p1).toBeInstanceOf(CacheClosedError)
    expect(await p2).toBeInstanceOf(CacheClosedError)
  })

  it('a long-lived signal used for 10,000 calls keeps no listener once they settle', async () => {
    const c = await instance(mode)
    const ac = new AbortController()
    const { signal } = ac
    const calls: Promise<unknown>[] = []
    for (let i = 0; i < 5000; i++) {
      calls.push(c.getOrSet(`k${i % 500}`, async () => i, { signal }))
      calls.push(c.getOrSetMany([`m${i % 500}`, `n${i % 300}`], async (missing) => Object.fromEntries(missing.map((k) => [k, i])), { signal }))
    }
    // While they wait, they listen: once, however many calls.
    expect(getEventListeners(signal, 'abort')).toHaveLength(1)
    await Promise.all(calls)
    expect(getEventListeners(signal, 'abort')).toHaveLength(0)
    // Hits attach nothing at all.
    await c.getOrSet('k1', async () => 0, { signal })
    expect(getEventListeners(signal, 'abort')).toHaveLength(0)
  })
})

it("lock: 'distributed': a waiter whose caller aborted stops asking for the lease", async () => {
  const raw = new Redis(server.port, '127.0.0.1')
  try {
    const c = await instance('redis')
    await raw.set('held:__lock', 'another process', 'PX', 300)
    const ac = new AbortController()
    let ran = 0
    const call = c.getOrSet('held', () => ((ran += 1), 'mine'), { lock: 'distributed', signal: ac.signal })
    await sleep(80)
    ac.abort()
    await expect(call).rejects.toBe(ac.signal.reason)
    // From now on (past the lease's expiry too), nothing of this call's reaches Redis.
    const seen: string[] = []
    const monitor = await raw.duplicate().monitor()
    monitor.on('monitor', (_: unknown, args: string[]) => seen.push(args.join(' ')))
    await sleep(1000)
    monitor.disconnect()
    expect(seen.filter((cmd) => cmd.includes('held'))).toEqual([])
    expect(ran).toBe(0)
    expect(await raw.exists('held:__lock')).toBe(0)
  } finally {
    raw.disconnect()
  }
})
