#!/usr/bin/env node
// Where an L1 hit's time goes, in ns per call (median of 7 rounds):
// JSON.parse alone, the native lookup alone, and the whole awaited get,
// next to lru-cache + JSON.parse. Memory mode, so no Redis is involved.
import { createRequire } from 'node:module'
import { LRUCache } from 'lru-cache'
import { record } from './record.mjs'

const require = createRequire(import.meta.url)
const { CacheService } = require('../index.js')
const { NativeCache, localGet } = require('../binding.js')

const text = JSON.stringify(record(1))
const N = 200_000
const rounds = 7
const median = (xs) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]

async function time(label, fn) {
  const results = []
  for (let r = 0; r < rounds; r++) {
    const t0 = process.hrtime.bigint()
    for (let i = 0; i < N; i++) await fn()
    results.push(Number(process.hrtime.bigint() - t0) / N)
  }
  console.log(`${label.padEnd(46)} ${median(results).toFixed(0).padStart(6)} ns`)
}
function timeSync(label, fn) {
  const results = []
  for (let r = 0; r < rounds; r++) {
    const t0 = process.hrtime.bigint()
    for (let i = 0; i < N; i++) fn()
    results.push(Number(process.hrtime.bigint() - t0) / N)
  }
  console.log(`${label.padEnd(46)} ${median(results).toFixed(0).padStart(6)} ns`)
}

const native = new NativeCache({ mode: 'memory', localMaxBytes: 1 << 26, localMaxTtlMs: 60_000, commandTimeoutMs: 1000 })
native.queueSet('k', text, 600_000)
native.runSync()
const handle = native.handle
const cache = new CacheService({ mode: 'memory' })
await cache.set('k', JSON.parse(text), 600)
const lru = new LRUCache({ max: 1000 })
lru.set('k', text)

console.log(`record: ${text.length} bytes of JSON`)
timeSync('JSON.parse', () => JSON.parse(text))
timeSync('localGet (sync, no parse)', () => localGet(handle, 'k'))
timeSync('lru.get (sync, no parse)', () => lru.get('k'))
timeSync('localGet + JSON.parse', () => JSON.parse(localGet(handle, 'k')))
timeSync('lru.get + JSON.parse', () => JSON.parse(lru.get('k')))
await time('await cache.get (memory mode)', () => cache.get('k'))
await time('await async lru get + JSON.parse', async () => JSON.parse(lru.get('k')))
