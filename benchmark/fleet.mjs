// One process of W10/W11 (run.mjs starts them): `node fleet.mjs <contender> <redis url>`.
// Takes commands over IPC and answers each with its measurements:
//   { cmd: 'w10', key, callers, factoryMs, at } — at wall-clock time `at`, `callers`
//     concurrent getOrSet on `key` (missing), factory `factoryMs`; → { runs, lat, wrong }
//   { cmd: 'w11', key, callers, everyMs, hangMs } — a value with grace that has
//     expired, then `callers` getOrSet one every `everyMs` while the factory hangs
//     `hangMs`; → { runs, lat, stale, fresh, failed }
//   { cmd: 'exit' }
import { createRequire } from 'node:module'
import { tieredBento } from './contenders.mjs'
import { record } from './record.mjs'

const require = createRequire(import.meta.url)
const { CacheService } = require('../index.js')
const { CacheService: Original } = require('./.build/original/cache.service.js')

const [name, url] = process.argv.slice(2)
const quiet = { error: () => {}, warn: () => {}, info: () => {}, debug: () => {} }
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

/** The dashboard's settings (README's example): a grace copy, soft 200 ms, hard 2 s. */
const TTL = 1
const GRACE = 3600
const SOFT = 200
const HARD = 2000

/** Each contender: getOrSet for W10 (a stampede) and for W11 (fail-safe), close. */
function contender() {
  if (name === 'native+lock' || name === 'native') {
    const c = new CacheService({ url, logger: quiet })
    const lock = name === 'native+lock' ? { lock: 'distributed' } : {}
    return {
      ready: () => c.ping(),
      w10: (k, f) => c.getOrSet(k, f, { ttl: 60, ...lock }),
      w11: (k, f) => c.getOrSet(k, f, { ttl: TTL, grace: GRACE, timeout: { soft: SOFT, hard: HARD } }),
      close: () => c.close(),
    }
  }
  if (name === 'baseline') {
    const c = new Original(url)
    return {
      ready: () => c.ping(),
      w10: (k, f) => c.getOrSet(k, f, 60),
      w11: (k, f) => c.getOrSet(k, f, TTL),
      close: () => c.close(),
    }
  }
  if (name === 'bentocache') {
    const bento = tieredBento(url, 64 * 1024 * 1024)
    return {
      ready: async () => {
        await bento.set({ key: `__ready:${process.pid}`, value: 1 })
        return true
      },
      w10: (k, f) => bento.getOrSet({ key: k, factory: f, ttl: 60_000 }),
      w11: (k, f) =>
        bento.getOrSet({ key: k, factory: f, ttl: TTL * 1000, grace: GRACE * 1000, timeout: SOFT, hardTimeout: HARD }),
      close: () => bento.disconnectAll(),
    }
  }
  throw new Error(`unknown contender ${name}`)
}

async function w10(c, { key, callers, factoryMs, at }) {
  let runs = 0
  const factory = async () => {
    runs += 1
    await sleep(factoryMs)
    return record(10)
  }
  await sleep(Math.max(0, at - Date.now()))
  const t0 = performance.now()
  let wrong = 0
  const lat = await Promise.all(
    Array.from({ length: callers }, async () => {
      const v = await c.w10(key, factory)
      if (v?.id !== 'svc-10') wrong += 1
      return performance.now() - t0
    }),
  )
  return { runs, lat, wrong }
}

async function w11(c, { key, callers, everyMs, hangMs }) {
  // The last known value, then its ttl runs out (the grace copy stays).
  await c.w11(key, async () => record(11))
  await sleep(TTL * 1000 + 300)
  let runs = 0
  const hanging = () => {
    runs += 1
    return sleep(hangMs).then(() => record(12))
  }
  let stale = 0
  let fresh = 0
  let failed = 0
  const calls = []
  for (let i = 0; i < callers; i++) {
    const t0 = performance.now()
    calls.push(
      c.w11(key, hanging).then(
        (v) => {
          if (v?.id === 'svc-11') stale += 1
          else if (v?.id === 'svc-12') fresh += 1
          else failed += 1
          return performance.now() - t0
        },
        () => {
          failed += 1
          return performance.now() - t0
        },
      ),
    )
    await sleep(everyMs)
  }
  const lat = await Promise.all(calls)
  return { runs, lat, stale, fresh, failed }
}

const c = contender()
if (!(await c.ready())) throw new Error(`${name} did not connect`)
process.on('message', async (m) => {
  if (m.cmd === 'exit') {
    await c.close()
    process.exit(0)
  }
  try {
    process.send({ ok: true, ...(m.cmd === 'w10' ? await w10(c, m) : await w11(c, m)) })
  } catch (err) {
    process.send({ ok: false, error: String(err?.message ?? err) })
  }
})
process.send({ ready: true })
