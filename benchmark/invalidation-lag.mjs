#!/usr/bin/env node
// How late a write by another process reaches L1: a raw client (ioredis, as
// another process would) rewrites a key this instance holds in L1; the lag is
// the time from sending that write to this instance no longer serving the old
// value (its invalidation counter moving), polled on every event-loop turn.
// Prints p50/p99/max over --writes writes (default 2000). One server on loopback.
import { createRequire } from 'node:module'
import Redis from 'ioredis'
import { startRedis } from './redis-server.mjs'

const require = createRequire(import.meta.url)
const { CacheService } = require('../index.js')
const writes = Number(process.argv[process.argv.indexOf('--writes') + 1] || 2000)

const server = await startRedis()
const raw = new Redis(server.port, '127.0.0.1')
const cache = new CacheService({ url: server.url, logger: false })
const turn = () => new Promise((r) => setImmediate(r))
const lags = []
try {
  await cache.ping()
  for (let i = 0; i < writes; i++) {
    const k = `lag:${i % 100}`
    await raw.set(k, JSON.stringify(i))
    // Until L1 answers it (the second read fills it).
    for (let tries = 0; ; tries++) {
      const hits = cache.stats().local.hits
      await cache.get(k)
      if (cache.stats().local.hits > hits) break
      if (tries > 100) throw new Error(`${k} never reached L1`)
    }
    const before = cache.stats().local.invalidations
    const t0 = process.hrtime.bigint()
    raw.set(k, JSON.stringify(-i))
    while (cache.stats().local.invalidations === before) await turn()
    lags.push(Number(process.hrtime.bigint() - t0) / 1e6)
    if (await cache.get(k) !== -i) throw new Error(`${k}: the old value was served after its invalidation`)
  }
} finally {
  await cache.close()
  raw.disconnect()
  server.stop()
}
lags.sort((a, b) => a - b)
const q = (p) => lags[Math.min(lags.length - 1, Math.floor(p * lags.length))].toFixed(3)
console.log(JSON.stringify({ writes: lags.length, p50Ms: q(0.5), p99Ms: q(0.99), maxMs: lags[lags.length - 1].toFixed(3) }))
