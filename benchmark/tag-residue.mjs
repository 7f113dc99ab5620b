#!/usr/bin/env node
// What tag bookkeeping costs Redis, and what it leaves (docs/tags.md):
// --sets tagged sets (default 1,000,000), each with --ttl ms (default 1000)
// and one of --tags tags (default 4), pipelined through the public API with
// at most --concurrency calls in flight; then `used_memory` and the index
// keys' `MEMORY USAGE` right after the writes, and again once the keys have
// expired (ttl + TAG_SLACK_MS + 3 s). One private server on loopback.
import { createRequire } from 'node:module'
import Redis from 'ioredis'
import { startRedis } from './redis-server.mjs'

const require = createRequire(import.meta.url)
const { CacheService } = require('../index.js')
const { TAG_INDEX_PREFIX, TAG_SLACK_MS } = require('../native.js')

const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`)
  return i > 0 ? Number(process.argv[i + 1]) : fallback
}
const sets = arg('sets', 1_000_000)
const ttlMs = arg('ttl', 1000)
const tagCount = arg('tags', 4)
const concurrency = arg('concurrency', 256)
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

const server = await startRedis()
const raw = new Redis(server.port, '127.0.0.1')
const cache = new CacheService({ url: server.url, logger: false })

async function usedMemory() {
  const info = await raw.info('memory')
  return Number(/used_memory:(\d+)/.exec(info)[1])
}

/** The index keys (snapshots included): how many, their members, their MEMORY USAGE in bytes. */
async function indexes() {
  let keys = 0
  let members = 0
  let bytes = 0
  let cursor = '0'
  do {
    const [next, found] = await raw.scan(cursor, 'MATCH', `${TAG_INDEX_PREFIX}*`, 'COUNT', 1000)
    for (const k of found) {
      keys++
      members += await raw.zcard(k)
      bytes += (await raw.memory('USAGE', k, 'SAMPLES', '0')) ?? 0
    }
    cursor = next
  } while (cursor !== '0')
  return { keys, members, bytes }
}

const mb = (n) => `${(n / 1048576).toFixed(1)} MB`
try {
  await cache.ping()
  const base = await usedMemory()
  const started = Date.now()
  let next = 0
  let peak = { keys: 0, members: 0, bytes: 0 }
  // The indexes sampled every 100k sets (writes paused meanwhile): the largest is kept.
  const step = 100_000
  for (let done = 0; done < sets; done += step) {
    const stop = Math.min(sets, done + step)
    const run = async () => {
      while (next < stop) {
        const i = next++
        await cache.set(`residue:${i}`, i, ttlMs / 1000, { tags: [`tag-${i % tagCount}`] })
      }
    }
    await Promise.all(Array.from({ length: concurrency }, run))
    const now = await indexes()
    if (now.bytes > peak.bytes) peak = now
  }
  const secs = (Date.now() - started) / 1000
  const after = { used: await usedMemory(), ...(await indexes()), keyCount: await raw.dbsize() }
  await sleep(ttlMs + TAG_SLACK_MS + 3000)
  const expired = { used: await usedMemory(), ...(await indexes()), keyCount: await raw.dbsize() }
  const row = (name, r) =>
    `${name.padEnd(24)} used_memory ${mb(r.used).padStart(9)} (+${mb(r.used - base)})  keys ${String(r.keyCount).padStart(7)}  index keys ${r.keys}  members ${String(r.members).padStart(7)}  index MEMORY USAGE ${mb(r.bytes)}`
  console.log(`${sets} tagged sets, ttl ${ttlMs} ms, ${tagCount} tags, ${concurrency} in flight: ${secs.toFixed(1)} s (${Math.round(sets / secs)}/s)`)
  console.log(`${'empty server'.padEnd(24)} used_memory ${mb(base).padStart(9)}`)
  console.log(`largest index sample      index keys ${peak.keys}  members ${peak.members}  index MEMORY USAGE ${mb(peak.bytes)}`)
  console.log(row('right after the writes', after))
  console.log(row(`after expiry (+${(ttlMs + TAG_SLACK_MS + 3000) / 1000} s)`, expired))
} finally {
  await cache.close()
  raw.disconnect()
  server.stop()
}
