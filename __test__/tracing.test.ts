// Issue 19: the `native-cache:operation` tracing channel. A real subscriber
// sees every cache operation with its context and, by end (a hit) or asyncEnd,
// the tier that answered, the failure code of a failure result, and
// `cached: false` for a getOrSet value that was not stored.
import { describe, it, expect, afterEach } from 'vitest'
import { tracingChannel } from 'node:diagnostics_channel'
import { execFileSync } from 'node:child_process'
import { join } from 'node:path'
import { CacheService } from '../index.js'
import type { CacheOperationContext } from '../index.js'
import { ownRedis } from './helpers/own-redis'
import { eventually, freePort } from './helpers/redis'

const redis = ownRedis()
const quiet = { error: () => {}, warn: () => {}, info: () => {}, debug: () => {} }
const channel = tracingChannel<unknown, CacheOperationContext>('native-cache:operation')

/** Every event's context as it was when published, in order. */
function record() {
  const events: Array<[string, CacheOperationContext]> = []
  const at = (name: string) => (ctx: CacheOperationContext) => {
    const { result: _r, error: _e, ...rest } = ctx
    events.push([name, { ...rest }])
  }
  const handlers = { start: at('start'), end: at('end'), asyncStart: at('asyncStart'), asyncEnd: at('asyncEnd'), error: at('error') }
  channel.subscribe(handlers)
  return {
    events,
    /** The context each method's asyncEnd carried. */
    done: () => events.filter(([e]) => e === 'asyncEnd').map(([, c]) => c),
    stop: () => channel.unsubscribe(handlers),
  }
}

const open: CacheService[] = []
let sub: ReturnType<typeof record>
afterEach(async () => {
  sub?.stop()
  for (const c of open.splice(0)) await c.close()
})
function instance(options: object = {}) {
  const c = new CacheService({ host: '127.0.0.1', port: redis.server.port, logger: quiet, ...options })
  open.push(c)
  return c
}
/** An instance whose L1 serves (reads fill it from the first). */
async function serving() {
  const c = instance()
  await c.ping()
  expect(await eventually(() => c.health().local.serving, 3000)).toBe(true)
  return c
}

describe('tracing channel native-cache:operation', () => {
  it('reads: the tier that answered, as the counters saw it (a hit known by end), writes ok', async () => {
    const c = await serving()
    await redis.raw.set('t:remote', JSON.stringify({ from: 'redis' }))
    sub = record()
    await c.set('t:k', { v: 1 }, 60)
    // Each get's outcome against what stats() counted for it.
    const counted: string[] = []
    for (let i = 0; i < 4; i++) {
      const before = c.stats()
      expect(await c.get('t:remote')).toEqual({ from: 'redis' })
      const after = c.stats()
      counted.push(
        after.local.memoHits > before.local.memoHits ? 'memo' : after.local.hits > before.local.hits ? 'l1' : after.redis.hits > before.redis.hits ? 'redis' : '?',
      )
    }
    expect(await c.get('t:none')).toBeNull()
    expect(await c.mget(['t:remote', 't:k', 't:none'])).toEqual([{ from: 'redis' }, { v: 1 }, null])
    await c.del(['t:k'])
    expect(await c.exists('t:remote')).toBe(true)
    await c.invalidatePattern('t:*')
    const done = sub.done().map((x) => [x.method, x.outcome])
    expect(counted).toContain('redis')
    expect(counted).toContain('memo')
    expect(done).toEqual([
      ['set', 'ok'],
      ...counted.map((tier) => ['get', tier]),
      ['get', 'miss'],
      ['mget', 'redis'],
      ['del', 'ok'],
      ['exists', 'ok'],
      ['invalidatePattern', 'ok'],
    ])
    const ends = sub.events.filter(([e]) => e === 'end').map(([, x]) => x)
    // A hit's tier is known when the call returns; a Redis read's only at asyncEnd.
    expect(ends.filter((x) => x.method === 'get').map((x) => x.outcome)).toEqual([
      ...counted.map((tier) => (tier === 'redis' ? undefined : tier)),
      undefined,
    ])
    const starts = sub.events.filter(([e]) => e === 'start').map(([, x]) => x)
    expect(starts).toContainEqual({ method: 'mget', keys: ['t:remote', 't:k', 't:none'] })
    expect(starts).toContainEqual({ method: 'invalidatePattern', pattern: 't:*' })
    expect(starts).toContainEqual({ method: 'set', key: 't:k' })
    expect(starts).toContainEqual({ method: 'del', keys: ['t:k'] })
  })

  it('getOrSet: miss (factory), redis, l1, joined runs coalesced, cached: false when a write won', async () => {
    const c = await serving()
    await redis.raw.set('g:remote', '"there"')
    sub = record()
    expect(await c.getOrSet('g:new', () => 'made', 60)).toBe('made')
    expect(await c.getOrSet('g:remote', () => 'never', 60)).toBe('there')
    expect(await c.getOrSet('g:new', () => 'never', 60)).toBe('made') // read back from Redis (a write fills no L1)
    expect(await c.getOrSet('g:new', () => 'never', 60)).toBe('made')
    const [a, b] = await Promise.all([c.getOrSet('g:two', async () => 2, 60), c.getOrSet('g:two', async () => 3, 60)])
    expect([a, b]).toEqual([2, 2])
    // A write after the miss was read wins: the factory's value is returned, not stored.
    const won = await c.getOrSet(
      'g:raced',
      async () => {
        await redis.raw.set('g:raced', '"theirs"')
        return 'mine'
      },
      60,
    )
    expect(won).toBe('mine')
    expect(await redis.raw.get('g:raced')).toBe('"theirs"')
    const got = sub.done().map((x) => [x.key, x.outcome, x.cached, x.coalesced])
    expect(got).toEqual([
      ['g:new', 'miss', undefined, undefined],
      ['g:remote', 'redis', undefined, undefined],
      ['g:new', 'redis', undefined, undefined],
      ['g:new', 'l1', undefined, undefined],
      ['g:two', 'miss', undefined, undefined],
      ['g:two', 'miss', undefined, true],
      ['g:raced', 'miss', false, undefined],
    ])
  })

  it("failure results carry their code; a rejection is outcome 'error' with the error event", async () => {
    const down = new CacheService({ host: '127.0.0.1', port: await freePort(), logger: quiet, commandTimeoutMs: 200 })
    open.push(down)
    sub = record()
    expect(await down.get('x')).toBeNull()
    expect(await down.set('x', 1)).toBeUndefined()
    await expect(down.getOrSet('x', () => Promise.reject(new Error('boom')), 60)).rejects.toThrow('boom')
    await expect(down.get({} as unknown as string)).rejects.toThrow(TypeError)
    const done = sub.done()
    expect(done[0]).toMatchObject({ method: 'get', outcome: 'error' })
    expect(done[0].code).toMatch(/^ERR_CACHE_(UNAVAILABLE|TIMEOUT)$/)
    expect(done[1]).toMatchObject({ method: 'set', outcome: 'error' })
    expect(done[2]).toMatchObject({ method: 'getOrSet', outcome: 'error' })
    expect(done[3]).toMatchObject({ method: 'get', outcome: 'error' })
    expect(sub.events.filter(([e]) => e === 'error').map(([, x]) => x.method)).toEqual(['getOrSet', 'get'])
  })

  it('memory mode: hits from the memo or L1, misses, and the fail-safe copy as a failure result', async () => {
    const c = new CacheService({ mode: 'memory', logger: quiet })
    open.push(c)
    sub = record()
    await c.set('m', 1)
    await c.get('m')
    await c.get('m')
    await c.get('none')
    await c.getOrSet('f', () => 'v', { ttl: 60, grace: 60 })
    await c.clear()
    expect(await c.getOrSet('f', () => Promise.reject(new Error('down')), { ttl: 60, grace: 60 })).toBe('v')
    expect(sub.done().map((x) => [x.method, x.outcome, x.code])).toEqual([
      ['set', 'ok', undefined],
      ['get', 'l1', undefined],
      ['get', 'memo', undefined],
      ['get', 'miss', undefined],
      ['getOrSet', 'miss', undefined],
      ['clear', 'ok', undefined],
      ['getOrSet', 'error', 'ERR_CACHE_FAILSAFE'],
    ])
  })

  it('a subscriber that throws never reaches the call: results unchanged, Node reports it as uncaught', () => {
    const script = `
      const dc = require('node:diagnostics_channel')
      const { CacheService } = require(${JSON.stringify(join(__dirname, '..', 'index.js'))})
      const thrown = []
      process.on('uncaughtException', (e) => thrown.push(e.message))
      dc.tracingChannel('native-cache:operation').subscribe({
        start() { throw new Error('start subscriber') }, end() {}, asyncStart() {},
        asyncEnd() { throw new Error('asyncEnd subscriber') }, error() {},
      })
      const c = new CacheService({ mode: 'memory' })
      ;(async () => {
        await c.set('k', { a: 1 })
        const got = [await c.get('k'), await c.getOrSet('g', () => 7, 60), await c.mget(['k', 'x'])]
        await new Promise((r) => setTimeout(r, 20))
        console.log(JSON.stringify({ got, thrown: thrown.length }))
      })()`
    const out = JSON.parse(execFileSync(process.execPath, ['-e', script], { encoding: 'utf8' }))
    expect(out.got).toEqual([{ a: 1 }, 7, [{ a: 1 }, null]])
    expect(out.thrown).toBe(8) // start and asyncEnd of 4 calls, each reported, none thrown into a call
  })

  it('nothing is published while nobody subscribes', async () => {
    const c = instance({ mode: 'memory' })
    const seen: string[] = []
    const probe = { start: () => seen.push('start') }
    await c.set('k', 1)
    channel.subscribe(probe as never)
    channel.unsubscribe(probe as never)
    await c.get('k')
    await c.getOrSet('k', () => 2, 60)
    expect(seen).toEqual([])
    expect(channel.hasSubscribers).toBe(false)
  })

  it('examples/otel-spans.js: one OpenTelemetry span per call, a child of the request span, with its outcome', () => {
    const out = execFileSync(process.execPath, [join(__dirname, '..', 'examples', 'otel-spans.js')], { encoding: 'utf8' })
    expect(JSON.parse(out)).toEqual([
      { name: 'cache set', key: 'status:1', outcome: 'ok', child: true },
      { name: 'cache get', key: 'status:1', outcome: 'l1', child: true },
      { name: 'cache get', key: 'status:2', outcome: 'miss', child: true },
      { name: 'cache getOrSet', key: 'status:3', outcome: 'miss', child: true },
    ])
  })
})
