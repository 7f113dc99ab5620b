// Every contender behind one small adapter:
//   { name, get(k), set(k, v, ttlSeconds), getOrSet(k, factory, ttlSeconds),
//     getOrSetMany?(keys, factory(missing), ttlSeconds) (the addon only),
//     mget(keys), del(k), close(), coherent: whether another process's writes reach it }
// Values are plain objects; each adapter hands back a fresh object per read,
// as the original does (a JSON.parse per hit).
import { createRequire } from 'node:module'
import { LRUCache } from 'lru-cache'
import { createClient } from 'redis'
import { BentoCache, bentostore } from 'bentocache'
import { memoryDriver } from 'bentocache/drivers/memory'
import { redisDriver, redisBusDriver } from 'bentocache/drivers/redis'

const require = createRequire(import.meta.url)
const { CacheService } = require('../index.js')
const { CacheService: Original } = require('./.build/original/cache.service.js')

const quiet = { error: () => {}, warn: () => {}, info: () => {}, debug: () => {} }

export const NAMES = ['native', 'native-noL1', 'baseline', 'bentocache', 'node-redis-csc', 'lru-cache']
export const BASELINE = 'baseline'

/** The native addon and the original share the CacheService API: one adapter for both. */
function serviceAdapter(name, c) {
  return {
    name,
    coherent: true,
    get: (k) => c.get(k),
    set: (k, v, ttl) => c.set(k, v, ttl),
    getOrSet: (k, f, ttl) => c.getOrSet(k, f, ttl),
    // The addon's own (W12); the original has none.
    getOrSetMany: typeof c.getOrSetMany === 'function' ? (keys, f, ttl) => c.getOrSetMany(keys, f, ttl) : undefined,
    mget: (keys) => c.mget(keys),
    del: (k) => c.del(k),
    ready: () => c.ping(),
    close: () => c.close(),
  }
}

/** bentocache as configured for every workload: memory L1 of `maxBytes`, Redis L2 at `url`, its Redis bus. */
export function tieredBento(url, maxBytes) {
  const { hostname, port } = new URL(url)
  const connection = { host: hostname, port: Number(port) }
  return new BentoCache({
    default: 'tiered',
    stores: {
      tiered: bentostore()
        .useL1Layer(memoryDriver({ maxSize: maxBytes }))
        .useL2Layer(redisDriver({ connection }))
        .useBus(redisBusDriver({ connection })),
    },
  })
}

function bentoAdapter(url, maxBytes) {
  const bento = tieredBento(url, maxBytes)
  const ms = (ttl) => (ttl ? ttl * 1000 : 300_000)
  return {
    name: 'bentocache',
    coherent: true,
    get: async (k) => {
      const v = await bento.get({ key: k })
      return v === undefined ? null : v
    },
    set: (k, v, ttl) => bento.set({ key: k, value: v, ttl: ms(ttl) }),
    getOrSet: (k, f, ttl) => bento.getOrSet({ key: k, factory: f, ttl: ms(ttl) }),
    mget: async (keys) => (await Promise.all(keys.map((k) => bento.get({ key: k })))).map((v) => (v === undefined ? null : v)),
    del: (k) => bento.delete({ key: k }),
    ready: async () => {
      await bento.set({ key: '__ready', value: 1 })
      return true
    },
    close: () => bento.disconnectAll(),
  }
}

function nodeRedisAdapter(url, maxEntries) {
  const client = createClient({ url, RESP: 3, clientSideCache: { ttl: 0, maxEntries, evictPolicy: 'LRU' } })
  client.on('error', () => {})
  const connected = client.connect()
  const parse = (v) => (v ? JSON.parse(v) : null)
  return {
    name: 'node-redis-csc',
    coherent: true,
    get: async (k) => parse(await client.get(k)),
    set: (k, v, ttl) => client.set(k, JSON.stringify(v), { EX: ttl || 300 }),
    getOrSet: async (k, f, ttl) => {
      const cached = parse(await client.get(k))
      if (cached !== null) return cached
      const v = await f()
      await client.set(k, JSON.stringify(v), { EX: ttl || 300 })
      return v
    },
    mget: async (keys) => (await client.mGet(keys)).map(parse),
    del: (k) => client.del(k),
    ready: async () => {
      await connected
      return (await client.ping()) === 'PONG'
    },
    close: () => client.close?.() ?? client.quit(),
  }
}

function lruAdapter(maxBytes) {
  // The in-process ceiling for a JavaScript L1: JSON text in a Map-backed LRU, no Redis.
  const lru = new LRUCache({ maxSize: maxBytes, sizeCalculation: (v, k) => v.length + k.length, ttlAutopurge: false })
  const parse = (v) => (v === undefined ? null : JSON.parse(v))
  return {
    name: 'lru-cache',
    coherent: false,
    get: async (k) => parse(lru.get(k)),
    set: async (k, v, ttl) => {
      lru.set(k, JSON.stringify(v), { ttl: (ttl || 300) * 1000 })
    },
    getOrSet: async (k, f, ttl) => {
      const cached = parse(lru.get(k))
      if (cached !== null) return cached
      const v = await f()
      lru.set(k, JSON.stringify(v), { ttl: (ttl || 300) * 1000 })
      return v
    },
    mget: async (keys) => keys.map((k) => parse(lru.get(k))),
    del: async (k) => {
      lru.delete(k)
    },
    ready: async () => true,
    close: async () => {},
  }
}

/** A connected contender; `maxBytes` bounds the L1s (large enough for every workload). */
export async function make(name, url, maxBytes = 256 * 1024 * 1024) {
  const a = {
    native: () => serviceAdapter('native', new CacheService({ url, local: { maxBytes, maxTtl: 600 }, logger: quiet })),
    'native-noL1': () => serviceAdapter('native-noL1', new CacheService({ url, local: false, logger: quiet })),
    baseline: () => serviceAdapter('baseline', new Original(url)),
    bentocache: () => bentoAdapter(url, maxBytes),
    'node-redis-csc': () => nodeRedisAdapter(url, 0),
    'lru-cache': () => lruAdapter(maxBytes),
  }[name]()
  if (!(await a.ready())) throw new Error(`${name} did not connect to ${url}`)
  return a
}

/** Contenders of the cluster table (`npm run bench -- --cluster`). */
export const CLUSTER_NAMES = ['native', 'native-noL1', 'baseline']

/** A contender on a Redis Cluster; the baseline is the original's code over ioredis' Redis.Cluster. */
export async function makeCluster(name, seeds, maxBytes = 256 * 1024 * 1024) {
  const cluster = { nodes: seeds }
  let a
  if (name === 'native') a = serviceAdapter(name, new CacheService({ cluster, local: { maxBytes, maxTtl: 600 }, logger: quiet }))
  else if (name === 'native-noL1') a = serviceAdapter(name, new CacheService({ cluster, local: false, logger: quiet }))
  else if (name === 'baseline') {
    const Redis = require('ioredis')
    const original = new Original(`redis://${seeds[0]}`)
    // The original's code, unchanged, over the cluster client a backend on a cluster would give it.
    original.redis = new Redis.Cluster(
      seeds.map((s) => ({ host: s.split(':')[0], port: Number(s.split(':')[1]) })),
      { redisOptions: { maxRetriesPerRequest: 3 } },
    )
    original.redis.on('error', () => {})
    a = serviceAdapter(name, original)
    a.close = async () => original.redis.disconnect()
  } else throw new Error(`no cluster contender ${name}`)
  if (!(await a.ready())) throw new Error(`${name} did not connect to the cluster`)
  return a
}
