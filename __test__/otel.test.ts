// Issue 19: registerOpenTelemetry(meter, { name }). The families of metrics()
// reach a real OpenTelemetry SDK (MeterProvider, in-memory exporter) as
// instruments whose points carry cache.name, with the values of stats();
// @opentelemetry/api is required only when the global meter is asked for.
import { describe, it, expect, afterEach } from 'vitest'
import { execFileSync } from 'node:child_process'
import { join } from 'node:path'
import { metrics } from '@opentelemetry/api'
import {
  AggregationTemporality,
  DataPointType,
  InMemoryMetricExporter,
  MeterProvider,
  PeriodicExportingMetricReader,
} from '@opentelemetry/sdk-metrics'
import { CacheService } from '../index.js'
import { ownRedis } from './helpers/own-redis'
import { eventually } from './helpers/redis'

const redis = ownRedis()
const quiet = { error: () => {}, warn: () => {}, info: () => {}, debug: () => {} }
const open: Array<{ close(): Promise<unknown> }> = []
afterEach(async () => {
  for (const c of open.splice(0).reverse()) await c.close()
})

function sdk() {
  const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE)
  const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 3_600_000 })
  const provider = new MeterProvider({ readers: [reader] })
  open.push({ close: () => provider.shutdown() })
  /** Every point exported now: `name{attributes}` -> value, and each instrument's point type. */
  const collect = async () => {
    exporter.reset()
    await reader.forceFlush()
    const points = new Map<string, number>()
    const histograms = new Map<string, { count: number; sum: number; max: number }>()
    const types = new Map<string, DataPointType>()
    for (const rm of exporter.getMetrics()) {
      for (const sm of rm.scopeMetrics) {
        for (const m of sm.metrics) {
          types.set(m.descriptor.name, m.dataPointType)
          for (const p of m.dataPoints) {
            const attrs = Object.entries(p.attributes)
              .sort(([a], [b]) => a.localeCompare(b))
              .map(([k, v]) => `${k}=${String(v)}`)
              .join(',')
            const id = `${m.descriptor.name}{${attrs}}`
            if (m.dataPointType === DataPointType.HISTOGRAM) {
              const h = p.value as { count: number; sum: number; max: number }
              histograms.set(id, { count: h.count, sum: h.sum, max: h.max })
              points.set(id, h.count)
            } else points.set(id, p.value as number)
          }
        }
      }
    }
    return { points, types, histograms }
  }
  return { meter: provider.getMeter('test'), collect }
}

function instance() {
  const c = new CacheService({ host: '127.0.0.1', port: redis.server.port, logger: quiet })
  open.push(c)
  return c
}

describe('registerOpenTelemetry', () => {
  it("every family of metrics() as an instrument, node-redis' csc names for L1, values equal to stats()", async () => {
    const c = instance()
    await c.ping()
    await eventually(() => c.health().local.serving, 3000)
    await c.set('k', { v: 1 })
    for (let i = 0; i < 4; i++) await c.get('k')
    await c.get('nope')
    await eventually(() => c.stats().redis.invalidationLatency.samples > 0, 3000, 50)
    const { meter, collect } = sdk()
    c.registerOpenTelemetry(meter, { name: 'sessions' })
    const { points, types, histograms } = await collect()
    const s = c.stats()
    const at = (name: string, attrs = '') => points.get(`${name}{cache.name=sessions${attrs}}`)
    expect(at('redis.client.csc.requests', ',redis.client.csc.result=hit')).toBe(s.local.hits)
    expect(at('redis.client.csc.requests', ',redis.client.csc.result=miss')).toBe(s.local.misses)
    expect(at('redis.client.csc.evictions', ',redis.client.csc.reason=full')).toBe(s.local.evictions)
    expect(at('redis.client.csc.evictions', ',redis.client.csc.reason=invalidation')).toBe(s.local.invalidations)
    expect(at('redis.client.csc.items')).toBe(s.local.entries)
    expect(at('native_cache.l1_bytes')).toBe(s.local.bytes)
    expect(at('native_cache.l1_enabled')).toBe(1)
    expect(at('native_cache.redis_connected')).toBe(1)
    expect(at('native_cache.redis_calls')).toBe(s.redis.calls)
    expect(at('native_cache.redis_hits')).toBe(s.redis.hits)
    expect(at('native_cache.redis_errors', ',code=ERR_CACHE_TIMEOUT')).toBe(0)
    expect(at('native_cache.getorset_timeouts', ',kind=hard')).toBe(0)
    expect(at('native_cache.invalidation_latency.count')).toBe(s.redis.invalidationLatency.samples)
    expect(at('native_cache.invalidation_latency', ',quantile=0.5')).toBeCloseTo((s.redis.invalidationLatency.p50Ms as number) / 1000, 9)
    expect(s.local.hits).toBeGreaterThan(0)
    // Counters are sums (monotonic), gauges gauges.
    expect(types.get('redis.client.csc.requests')).toBe(DataPointType.SUM)
    expect(types.get('native_cache.l1_bytes')).toBe(DataPointType.GAUGE)
    // Every sample of metrics() is somewhere (its count of points per family), and the histogram.
    const families = c.metrics().split('\n').filter((l) => /^native_cache_\S+ /.test(l)).length
    expect(points.size).toBe(families + 1)
    // The histogram: each probe one recording, as many as stats() counts.
    expect(types.get('native_cache.invalidation.duration')).toBe(DataPointType.HISTOGRAM)
    const histogram = histograms.get('native_cache.invalidation.duration{cache.name=sessions}')!
    expect(histogram.count).toBe(s.redis.invalidationLatency.samples)
    expect(histogram.sum).toBeCloseTo(at('native_cache.invalidation_latency.sum')!, 6)
    const more = s.redis.invalidationLatency.samples + 1
    expect(await eventually(() => c.stats().redis.invalidationLatency.samples >= more, 4000, 50)).toBe(true)
    const again = await collect()
    const count = c.stats().redis.invalidationLatency.samples
    expect(again.histograms.get('native_cache.invalidation.duration{cache.name=sessions}')!.count).toBe(count)
  })

  it('two instances under their names in one meter; the returned function stops one', async () => {
    const a = instance()
    const b = new CacheService({ mode: 'memory', logger: quiet })
    open.push(b)
    await b.set('x', 1)
    await b.get('x')
    const { meter, collect } = sdk()
    a.registerOpenTelemetry(meter, { name: 'a' })
    const stop = b.registerOpenTelemetry(meter, { name: 'b' })
    let { points } = await collect()
    expect(points.get('native_cache.redis_connected{cache.name=b}')).toBe(0)
    expect(points.get('redis.client.csc.requests{cache.name=b,redis.client.csc.result=hit}')).toBe(b.stats().local.hits)
    expect(points.has('native_cache.redis_calls{cache.name=a}')).toBe(true)
    stop()
    const reported = b.stats().local.hits
    await b.get('x')
    expect(b.stats().local.hits).toBe(reported + 1)
    ;({ points } = await collect())
    // No longer observed: a cumulative exporter keeps the last value it had.
    expect(points.get('redis.client.csc.requests{cache.name=b,redis.client.csc.result=hit}')).toBe(reported)
    expect(points.has('native_cache.redis_calls{cache.name=a}')).toBe(true)
  })

  it("without a meter: the global MeterProvider's (@opentelemetry/api)", async () => {
    const { meter, collect } = sdk()
    const provider = { getMeter: () => meter }
    metrics.setGlobalMeterProvider(provider as never)
    open.push({ close: async () => metrics.disable() })
    const c = new CacheService({ mode: 'memory', logger: quiet })
    open.push(c)
    c.registerOpenTelemetry()
    const { points } = await collect()
    expect(points.get('native_cache.l1_enabled{cache.name=default}')).toBe(1)
  })

  it('a closed instance reports nothing; bad arguments are TypeErrors', async () => {
    const { meter, collect } = sdk()
    // close() takes its callback off the meter, so the meter does not keep the closed instance.
    const remove = meter.removeBatchObservableCallback.bind(meter)
    let removed = 0
    meter.removeBatchObservableCallback = (...args: Parameters<typeof remove>) => (removed++, remove(...args))
    const c = new CacheService({ mode: 'memory', logger: quiet })
    c.registerOpenTelemetry(meter, { name: 'gone' })
    await c.close()
    expect(removed).toBe(1)
    // Removed by the application first: close() does not remove it again.
    const e = new CacheService({ mode: 'memory', logger: quiet })
    e.registerOpenTelemetry(meter, { name: 'off first' })()
    await e.close()
    expect(removed).toBe(2)
    expect((await collect()).points.size).toBe(0)
    const d = new CacheService({ mode: 'memory', logger: quiet })
    open.push(d)
    expect(() => d.registerOpenTelemetry({} as never)).toThrow(TypeError)
    expect(() => d.registerOpenTelemetry(meter, { name: '' })).toThrow(TypeError)
  })

  it('@opentelemetry/api is not loaded by importing the package', () => {
    const index = join(__dirname, '..', 'index.js')
    const out = execFileSync(
      process.execPath,
      ['-e', `require(${JSON.stringify(index)}); console.log(Object.keys(require.cache).filter((k) => k.includes('@opentelemetry')).length)`],
      { encoding: 'utf8' },
    )
    expect(out.trim()).toBe('0')
  })
})
