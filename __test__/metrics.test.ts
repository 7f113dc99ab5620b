// metrics(): stats() as Prometheus text exposition, with conventional names.
import { describe, it, expect, inject, afterEach } from 'vitest'
import { CacheService } from '../index.js'

const port = inject('redisPort')
const DB = 11

const open: CacheService[] = []
afterEach(async () => {
  for (const c of open.splice(0)) {
    await c.clear()
    await c.close()
  }
})

/** Parses the exposition strictly: every sample belongs to a family announced by HELP and TYPE. */
function parse(text: string) {
  const types = new Map<string, string>()
  const helps = new Set<string>()
  const samples = new Map<string, number>()
  expect(text.endsWith('\n')).toBe(true)
  for (const line of text.trimEnd().split('\n')) {
    let m
    if ((m = /^# HELP (native_cache_[a-z0-9_]+) \S.*$/.exec(line))) helps.add(m[1])
    else if ((m = /^# TYPE (native_cache_[a-z0-9_]+) (counter|gauge|summary)$/.exec(line))) types.set(m[1], m[2])
    else if ((m = /^(native_cache_[a-z0-9_]+)(\{[a-z_]+="[A-Za-z0-9_.]+"\})? (-?[0-9.e+]+|NaN)$/.exec(line))) {
      // A summary's _sum and _count belong to its family.
      const family = types.has(m[1]) ? m[1] : m[1].replace(/_(sum|count)$/, '')
      expect(types.get(family) === 'summary' || family === m[1], `${m[1]} announced`).toBe(true)
      expect(types.has(family) && helps.has(family), `${m[1]} announced`).toBe(true)
      if (types.get(m[1]) === 'counter') expect(m[1].endsWith('_total'), `${m[1]} is a counter`).toBe(true)
      samples.set(m[1] + (m[2] ?? ''), Number(m[3]))
    } else throw new Error(`not exposition format: ${line}`)
  }
  return samples
}

describe.each(['redis', 'memory'] as const)('%s mode', (mode) => {
  it('every family is announced, counters end in _total, and values are the stats() counters', async () => {
    const c = new CacheService({ mode, port, host: '127.0.0.1', db: DB, logger: false })
    open.push(c)
    await c.set('a', 1)
    await c.get('a')
    await c.get('a')
    await c.get('missing')
    await Promise.all(Array.from({ length: 5 }, () => c.getOrSet('b', async () => 2, { ttl: 60, grace: 60 })))
    await c.getOrSet('b', () => 3, { ttl: 60, grace: 60 })
    const s = c.stats()
    const m = parse(c.metrics())
    expect(m.get('native_cache_l1_hits_total')).toBe(s.local.hits)
    expect(m.get('native_cache_l1_misses_total')).toBe(s.local.misses)
    expect(m.get('native_cache_l1_evictions_total')).toBe(s.local.evictions)
    expect(m.get('native_cache_l1_entries')).toBe(s.local.entries)
    expect(m.get('native_cache_l1_bytes')).toBe(s.local.bytes)
    expect(m.get('native_cache_redis_calls_total')).toBe(s.redis.calls)
    expect(m.get('native_cache_redis_errors_total{code="ERR_CACHE_TIMEOUT"}')).toBe(s.redis.errorsByCode.timeout)
    expect(m.get('native_cache_redis_errors_total{code="ERR_CACHE_UNAVAILABLE"}')).toBe(s.redis.errorsByCode.unavailable)
    expect(m.get('native_cache_invalidations_total')).toBe(s.local.invalidations)
    expect(m.get('native_cache_flushes_total')).toBe(s.local.flushes)
    expect(m.get('native_cache_redis_reconnects_total')).toBe(s.redis.reconnects)
    expect(m.get('native_cache_getorset_factory_runs_total')).toBe(1)
    expect(s.factoryRuns).toBe(1)
    expect(m.get('native_cache_getorset_coalesced_total')).toBe(4)
    expect(m.get('native_cache_getorset_failsafe_total')).toBe(0)
    expect(m.get('native_cache_getorset_timeouts_total{kind="soft"}')).toBe(0)
    expect(m.get('native_cache_getorset_timeouts_total{kind="hard"}')).toBe(0)
    expect(m.get('native_cache_getorset_eager_refreshes_total')).toBe(0)
    expect(m.get('native_cache_grace_entries')).toBe(1)
    expect(m.get('native_cache_invalidation_latency_seconds_count')).toBe(s.redis.invalidationLatency.samples)
    if (mode === 'redis') {
      expect(s.redis.calls).toBeGreaterThanOrEqual(4)
      expect(m.get('native_cache_redis_connected')).toBe(1)
    } else {
      expect(s.redis.calls).toBe(0)
    }
  })
})
