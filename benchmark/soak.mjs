#!/usr/bin/env node
// Soak: a steady mixed load on one instance, sampled every second.
//
//   npm run soak -- --minutes 10            # report only
//   npm run soak -- --seconds 30 --check    # exit 1 on growth after warm-up
//
// Starts its own redis-server on a free loopback port unless --url is given.
// Samples RSS, V8 heap after a forced GC (run under --expose-gc), L1 bytes and
// this process's open sockets; writes benchmark/results/soak-*.csv.
import { mkdirSync, readdirSync, readlinkSync, writeFileSync } from 'node:fs'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { startRedis } from './redis-server.mjs'
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const { CacheService } = require('../index.js')
const here = dirname(fileURLToPath(import.meta.url))

function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`)
  if (i === -1) return fallback
  const v = process.argv[i + 1]
  return v === undefined || v.startsWith('--') ? true : v
}
const seconds = Number(arg('seconds', 0)) || Number(arg('minutes', 1)) * 60
const check = arg('check', false) === true
// Smaller than the working set (~11 MiB of keys + JSON), so eviction runs all along.
const MAX_BYTES = 4 * 1024 * 1024
const KEYS = 20_000
const WORKERS = 32
// Bounds for --check, after warm-up (see README "Reliability"):
const RSS_GROWTH_MB = 32
const HEAP_GROWTH_MB = 8

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))


function openSockets() {
  let n = 0
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      if (readlinkSync(`/proc/self/fd/${fd}`).startsWith('socket:')) n += 1
    } catch {}
  }
  return n
}

function record(i) {
  return {
    id: `svc-${i}`,
    name: `media-service-${i}`,
    status: i % 7 === 0 ? 'degraded' : 'up',
    uptime: 99.9,
    lastCheckAt: new Date(1_700_000_000_000 + i).toISOString(),
    checks: Array.from({ length: 10 }, (_, j) => ({ name: `probe-${j}`, ok: true, latencyMs: j + 3 })),
  }
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length === 0 ? 0 : s[Math.floor(s.length / 2)]
}
const mb = (b) => b / 1024 / 1024

async function main() {
  const redis = arg('url', null) ? { url: arg('url'), stop: () => {} } : await startRedis()
  const errors = []
  const cache = new CacheService({
    url: redis.url,
    local: { maxBytes: MAX_BYTES, maxTtl: 60 },
    logger: { error: (m) => errors.push(m), warn: (m) => errors.push(m), info: () => {}, debug: () => {} },
  })
  let ops = 0
  let running = true
  let rejections = 0
  const worker = async (w) => {
    let i = w * 7919
    while (running) {
      i += 1
      const k = `soak:${(i * 2654435761) % KEYS}`
      try {
        const r = i % 20
        if (r < 11) await cache.get(k)
        else if (r < 15) await cache.set(k, record(i), 30 + (i % 30))
        else if (r < 17) await cache.getOrSet(k, async () => record(i), 60)
        else if (r < 19) await cache.mget([k, `soak:${(i + 1) % KEYS}`, `soak:${(i + 2) % KEYS}`])
        else if (i % 2000 === 19) await cache.invalidatePattern(`soak:${i % 10}*`)
        else await cache.del(k)
      } catch {
        rejections += 1
      }
      ops += 1
    }
  }
  const loops = Array.from({ length: WORKERS }, (_, w) => worker(w))

  const samples = []
  const started = Date.now()
  let lastOps = 0
  console.log(`soak: ${seconds} s, ${WORKERS} workers, ${KEYS} keys of ~1 KB, L1 bound ${mb(MAX_BYTES)} MiB, redis ${redis.url}`)
  for (let t = 1; t <= seconds; t++) {
    await sleep(Math.max(0, started + t * 1000 - Date.now()))
    if (globalThis.gc) globalThis.gc()
    const m = process.memoryUsage()
    const s = cache.stats()
    const sample = { t, rss: m.rss, heap: m.heapUsed, external: m.external, l1Bytes: s.local.bytes, l1Entries: s.local.entries, sockets: openSockets(), ops: ops - lastOps }
    lastOps = ops
    samples.push(sample)
    if (t % 10 === 0 || t === seconds) {
      console.log(`  t=${String(t).padStart(4)}s rss ${mb(sample.rss).toFixed(1)} MiB  heap ${mb(sample.heap).toFixed(1)} MiB  L1 ${mb(sample.l1Bytes).toFixed(1)} MiB/${sample.l1Entries}  sockets ${sample.sockets}  ${sample.ops} ops/s`)
    }
  }
  running = false
  await Promise.all(loops)
  await cache.close()
  redis.stop()

  mkdirSync(join(here, 'results'), { recursive: true })
  const csv = join(here, 'results', `soak-${new Date().toISOString().replace(/[:.]/g, '-')}.csv`)
  writeFileSync(csv, 't,rss_bytes,heap_used_bytes,external_bytes,l1_bytes,l1_entries,open_sockets,ops\n' + samples.map((s) => [s.t, s.rss, s.heap, s.external, s.l1Bytes, s.l1Entries, s.sockets, s.ops].join(',')).join('\n') + '\n')

  const warm = Math.max(5, Math.floor(seconds / 3))
  const after = samples.slice(warm)
  const head = after.slice(0, 5)
  const tail = after.slice(-5)
  const rssGrowth = mb(median(tail.map((s) => s.rss)) - median(head.map((s) => s.rss)))
  const heapGrowth = mb(median(tail.map((s) => s.heap)) - median(head.map((s) => s.heap)))
  const socketsMax = Math.max(...after.map((s) => s.sockets))
  const socketsAtWarm = after[0]?.sockets ?? 0
  const l1Max = Math.max(...samples.map((s) => s.l1Bytes))
  const summary = {
    seconds,
    opsTotal: ops,
    opsPerSecondMedian: median(samples.map((s) => s.ops)),
    rssMiB: { afterWarmUp: +mb(median(head.map((s) => s.rss))).toFixed(1), end: +mb(median(tail.map((s) => s.rss))).toFixed(1), growth: +rssGrowth.toFixed(1) },
    heapMiB: { afterWarmUp: +mb(median(head.map((s) => s.heap))).toFixed(1), end: +mb(median(tail.map((s) => s.heap))).toFixed(1), growth: +heapGrowth.toFixed(1) },
    l1: { maxBytes: MAX_BYTES, peakBytes: l1Max },
    sockets: { atWarmUp: socketsAtWarm, max: socketsMax },
    rejections,
    loggedErrors: errors.length,
    csv,
  }
  console.log(JSON.stringify(summary, null, 2))

  const failures = []
  if (rejections > 0) failures.push(`${rejections} calls rejected`)
  if (errors.length > 0) failures.push(`${errors.length} errors logged, first: ${errors[0]}`)
  if (l1Max > MAX_BYTES) failures.push(`L1 reached ${l1Max} bytes, above its bound ${MAX_BYTES}`)
  if (socketsMax > socketsAtWarm) failures.push(`open sockets grew from ${socketsAtWarm} to ${socketsMax}`)
  if (rssGrowth > RSS_GROWTH_MB) failures.push(`RSS grew ${rssGrowth.toFixed(1)} MiB after warm-up (bound ${RSS_GROWTH_MB})`)
  if (heapGrowth > HEAP_GROWTH_MB) failures.push(`V8 heap grew ${heapGrowth.toFixed(1)} MiB after warm-up (bound ${HEAP_GROWTH_MB})`)
  if (failures.length > 0) {
    console.log(`soak: ${check ? 'FAILED' : 'noted'}:\n  - ${failures.join('\n  - ')}`)
    if (check) process.exitCode = 1
  } else {
    console.log('soak: no growth after warm-up')
  }
}

main().catch((err) => {
  console.error(err)
  process.exitCode = 1
})
