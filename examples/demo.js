'use strict'
// npm run demo: the cache on the embedded 'memory' mode (or Redis, when
// REDIS_URL / CACHE_MODE=redis say so), doing what MediaNest's controllers do.
const { CacheService } = require('..')

const mode = process.env.CACHE_MODE ?? (process.env.REDIS_URL ? 'redis' : 'memory')
const cache = new CacheService({
  mode,
  logger: { error: (m) => console.error('  [cache error]', m), warn: (m) => console.warn('  [cache warn]', m), info: () => {}, debug: () => {} },
})

function serviceStatus(id) {
  return {
    id,
    name: `media-service-${id}`,
    status: 'up',
    uptime: 99.97,
    lastCheckAt: new Date().toISOString(),
    checks: Array.from({ length: 10 }, (_, i) => ({ name: `probe-${i}`, ok: true, latencyMs: 3 + i })),
  }
}

async function timeIt(label, n, fn) {
  const started = process.hrtime.bigint()
  for (let i = 0; i < n; i++) await fn(i)
  const ns = Number(process.hrtime.bigint() - started) / n
  console.log(`  ${label.padEnd(44)} ${(ns / 1000).toFixed(2).padStart(8)} µs/op`)
}

async function main() {
  console.log(`@medianest/native-cache demo — mode: ${mode}\n`)

  let loads = 0
  const load = async (id) => {
    loads += 1
    await new Promise((r) => setTimeout(r, 20)) // a slow upstream call
    return serviceStatus(id)
  }

  console.log('getOrSet: 100 concurrent requests for one cold key')
  const results = await Promise.all(Array.from({ length: 100 }, () => cache.getOrSet('status:plex', () => load('plex'), 60)))
  console.log(`  loader ran ${loads} time(s); ${results.length} callers got '${results[0].name}'`)
  results[0].name = 'mutated by one caller'
  console.log(`  a caller mutating its copy leaves the cache alone: '${(await cache.get('status:plex')).name}'\n`)

  console.log('The original API, name for name')
  await cache.set('user:1', { id: 1, name: 'Ann' }, 120)
  await cache.mset({ 'user:2': { id: 2 }, 'user:3': { id: 3 } }, 120)
  console.log('  get(user:1)            ', JSON.stringify(await cache.get('user:1')))
  console.log('  mget(user:1..4)        ', JSON.stringify(await cache.mget(['user:1', 'user:2', 'user:3', 'user:4'])))
  console.log('  exists(user:1)         ', await cache.exists('user:1'))
  console.log('  ttl(user:1)            ', await cache.ttl('user:1'))
  await cache.invalidatePattern('user:*')
  console.log("  after invalidatePattern('user:*'), mget:", JSON.stringify(await cache.mget(['user:1', 'user:2'])))
  console.log('  ping                   ', await cache.ping())
  console.log('  getInfo                ', JSON.stringify(await cache.getInfo()), '\n')

  console.log('Speed of one awaited call (1 KB record)')
  await cache.set('hot', serviceStatus('hot'), 300)
  await timeIt('get, hot key', 20_000, () => cache.get('hot'))
  await timeIt('set', 5_000, (i) => cache.set(`k${i % 100}`, serviceStatus('x'), 300))
  await timeIt('getOrSet, hit', 20_000, () => cache.getOrSet('hot', () => serviceStatus('never')))

  console.log('\nFail-safe: the data source goes down, getOrSet keeps answering the last known value')
  let sourceUp = true
  const statuses = async () => {
    if (!sourceUp) throw new Error('status source unreachable')
    return { plex: 'up', checkedAt: new Date().toISOString() }
  }
  const opts = { ttl: 0.2, grace: 3600, timeout: { soft: 100, hard: 1000 } }
  console.log('  source up:          ', JSON.stringify(await cache.getOrSet('service:statuses:all', statuses, opts)))
  sourceUp = false
  await new Promise((r) => setTimeout(r, 300)) // the cached value expires
  console.log('  source down:        ', JSON.stringify(await cache.getOrSet('service:statuses:all', statuses, opts)))
  const hang = () => new Promise(() => {}) // a source that never answers
  const t0 = Date.now()
  const v = await cache.getOrSet('service:statuses:all', hang, opts)
  console.log(`  source hanging:      ${JSON.stringify(v)} after ${Date.now() - t0} ms (timeout.soft)`)

  if (mode === 'redis') {
    // Measured about once a second (README: invalidation latency); wait for a first sample.
    for (let i = 0; i < 30 && cache.stats().redis.invalidationLatency.samples === 0; i++) await new Promise((r) => setTimeout(r, 100))
    const l = cache.stats().redis.invalidationLatency
    console.log(`\ninvalidation latency (Redis -> this L1): p50 ${l.p50Ms?.toFixed(2)} ms, p99 ${l.p99Ms?.toFixed(2)} ms over ${l.samples} sample(s)`)
  }
  const s = cache.stats()
  console.log(`\nstats: L1 ${s.local.entries} entries, ${s.local.bytes} bytes, ${s.local.hits} hits, ${s.local.misses} misses; coalesced getOrSet: ${s.coalesced}; fail-safe answers: ${s.failsafe}`)
  await cache.close()
}

main().catch((err) => {
  console.error(err)
  process.exitCode = 1
})
