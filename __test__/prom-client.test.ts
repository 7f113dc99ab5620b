// Issue 10: the prom-client bridge. registerMetrics(registry, { name }) puts an
// instance's metrics() families into a real prom-client Registry as counters,
// gauges and a summary, each sample labelled cache="<name>"; prom-client is an
// optional peer dependency, never required at import time.
import { describe, it, expect, afterEach } from 'vitest'
import { execFileSync } from 'node:child_process'
import { join } from 'node:path'
import { Registry, register as globalRegister } from 'prom-client'
import { CacheService, CacheClosedError } from '../index.js'
import { ownRedis } from './helpers/own-redis'
import { eventually } from './helpers/redis'

const redis = ownRedis()
const quiet = { error: () => {}, warn: () => {}, info: () => {}, debug: () => {} }
const open: CacheService[] = []
afterEach(async () => {
  for (const c of open.splice(0)) await c.close()
})

function instance(mode: 'redis' | 'memory' = 'redis') {
  const c = new CacheService({ mode, host: '127.0.0.1', port: redis.server.port, logger: quiet })
  open.push(c)
  return c
}

/** Sample lines of the exposition as `name{labels}` -> value, and the TYPE of each family. */
function parse(text: string) {
  const types = new Map<string, string>()
  const samples = new Map<string, number>()
  for (const line of text.split('\n')) {
    let m
    if ((m = /^# TYPE (\S+) (\S+)$/.exec(line))) types.set(m[1], m[2])
    else if ((m = /^(native_cache_\S+) (\S+)$/.exec(line))) samples.set(m[1], Number(m[2]))
  }
  return { types, samples }
}

describe('registerMetrics with a prom-client Registry', () => {
  it('every family of metrics() with its type, values equal to stats(), labelled with the instance name', async () => {
    const c = instance()
    await c.set('k', 1)
    await c.get('k')
    await c.get('k')
    await c.get('nope')
    await eventually(() => c.stats().redis.invalidationLatency.samples > 0, 3000, 50)
    const registry = new Registry()
    c.registerMetrics(registry, { name: 'sessions' })
    const { types, samples } = parse(await registry.metrics())
    const own = parse(c.metrics())
    expect([...types].sort()).toEqual([...own.types].sort())
    expect(types.get('native_cache_l1_hits_total')).toBe('counter')
    expect(types.get('native_cache_l1_bytes')).toBe('gauge')
    expect(types.get('native_cache_invalidation_latency_seconds')).toBe('summary')
    const s = c.stats()
    expect(samples.get('native_cache_l1_hits_total{cache="sessions"}')).toBe(s.local.hits)
    expect(samples.get('native_cache_l1_misses_total{cache="sessions"}')).toBe(s.local.misses)
    expect(samples.get('native_cache_l1_bytes{cache="sessions"}')).toBe(s.local.bytes)
    expect(samples.get('native_cache_redis_connected{cache="sessions"}')).toBe(1)
    expect(samples.get('native_cache_redis_errors_total{cache="sessions",code="ERR_CACHE_TIMEOUT"}')).toBe(0)
    expect(samples.get('native_cache_getorset_timeouts_total{cache="sessions",kind="hard"}')).toBe(0)
    expect(samples.get('native_cache_invalidation_latency_seconds{cache="sessions",quantile="0.5"}')).toBeGreaterThan(0)
    expect(samples.get('native_cache_invalidation_latency_seconds_count{cache="sessions"}')).toBeGreaterThan(0)
    // Every sample of metrics() is there, with the label added.
    expect(samples.size).toBe(own.samples.size)

    // Values follow the instance at each scrape.
    await c.get('k')
    const again = parse(await registry.metrics()).samples
    expect(again.get('native_cache_l1_hits_total{cache="sessions"}')).toBe(s.local.hits + 1)
    const json = await registry.getMetricsAsJSON()
    expect(json.find((m) => m.name === 'native_cache_l1_hits_total')?.type).toBe('counter')
  })

  it('two instances in one registry keep apart by name; a name taken by a live instance is refused; a closed one drops out', async () => {
    const a = instance()
    const b = instance('memory')
    await b.set('x', 1)
    await b.get('x')
    const registry = new Registry()
    a.registerMetrics(registry, { name: 'a' })
    b.registerMetrics(registry, { name: 'b' })
    a.registerMetrics(registry, { name: 'a' }) // the same instance again: nothing changes
    const c = instance('memory')
    expect(() => c.registerMetrics(registry, { name: 'a' })).toThrow(/cache="a"/)
    let { samples } = parse(await registry.metrics())
    expect(samples.get('native_cache_l1_hits_total{cache="b"}')).toBe(b.stats().local.hits)
    expect(samples.get('native_cache_l1_hits_total{cache="a"}')).toBe(a.stats().local.hits)
    expect(samples.get('native_cache_l1_hits_total{cache="b"}')).toBeGreaterThan(0)

    await a.close()
    samples = parse(await registry.metrics()).samples
    expect(samples.has('native_cache_l1_hits_total{cache="a"}')).toBe(false)
    expect(samples.has('native_cache_l1_hits_total{cache="b"}')).toBe(true)
    c.registerMetrics(registry, { name: 'a' })
    samples = parse(await registry.metrics()).samples
    expect(samples.get('native_cache_l1_hits_total{cache="a"}')).toBe(0)
  })

  it('defaults: the global register and cache="default"; re-registers after registry.clear()', async () => {
    const c = instance('memory')
    await c.get('k')
    try {
      c.registerMetrics()
      expect(parse(await globalRegister.metrics()).samples.get('native_cache_l1_misses_total{cache="default"}')).toBe(1)
      globalRegister.clear()
      c.registerMetrics()
      expect(parse(await globalRegister.metrics()).samples.get('native_cache_l1_misses_total{cache="default"}')).toBe(1)
    } finally {
      globalRegister.clear()
    }
  })

  it('OpenMetrics registries get counters named as OpenMetrics wants', async () => {
    const c = instance('memory')
    // prom-client 15 types the constructor without its content-type argument.
    const registry = new (Registry as unknown as new (type: string) => Registry)(Registry.OPENMETRICS_CONTENT_TYPE)
    c.registerMetrics(registry, { name: 'om' })
    const text = await registry.metrics()
    expect(text).toContain('# TYPE native_cache_l1_hits counter\n')
    expect(text).toContain('native_cache_l1_hits_total{cache="om"} 0\n')
    expect(text.endsWith('# EOF\n')).toBe(true)
  })

  it('bad arguments throw a TypeError naming them and leave the instance usable', async () => {
    const c = instance('memory')
    expect(() => c.registerMetrics({} as never)).toThrow(TypeError)
    expect(() => c.registerMetrics({} as never)).toThrow(/registry/)
    expect(() => c.registerMetrics(new Registry(), { name: '' })).toThrow(/options\.name/)
    expect(() => c.registerMetrics(new Registry(), 'x' as never)).toThrow(/options/)
    await c.set('k', 1)
    expect(await c.get('k')).toBe(1)
    await c.close()
    expect(() => c.registerMetrics(new Registry())).toThrow(CacheClosedError)
  })
})

describe('without prom-client installed', () => {
  it('the module loads and works; only registerMetrics says what is missing', () => {
    // A child process in which resolving prom-client fails, as when it is not installed.
    const script = `
      const Module = require('node:module')
      const resolve = Module._resolveFilename
      Module._resolveFilename = function (request, ...rest) {
        if (request === 'prom-client') { const e = new Error("Cannot find module 'prom-client'"); e.code = 'MODULE_NOT_FOUND'; throw e }
        return resolve.call(this, request, ...rest)
      }
      const { CacheService } = require(${JSON.stringify(join(__dirname, '..', 'index.js'))})
      const c = new CacheService({ mode: 'memory' })
      c.set('k', 1).then(() => c.get('k')).then((v) => {
        let message = 'no error'
        try { c.registerMetrics() } catch (e) { message = e.message }
        console.log(JSON.stringify({ v, message, loaded: Object.keys(require.cache).some((f) => f.includes('prom-client')) }))
      })
    `
    const out = JSON.parse(execFileSync(process.execPath, ['-e', script], { encoding: 'utf8' }))
    expect(out).toEqual({ v: 1, message: 'registerMetrics needs prom-client: npm install prom-client', loaded: false })
  })
})
