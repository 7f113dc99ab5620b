#!/usr/bin/env node
// npm run bench [-- --quick] [-- --reps N] [-- --only W1,W7,W10] [-- --cluster]
//
// Every contender (benchmark/contenders.mjs) on one redis-server of our own,
// interleaved within each repetition (A B C … A B C …); medians over the
// repetitions, and each figure also as a ratio to the baseline from the same
// repetition. redis-benchmark's GET/SET on the same server is the physical
// limit. Writes benchmark/results/bench-*.json and prints a markdown table.
import { spawnSync, execFileSync, fork } from 'node:child_process'
import { mkdirSync, writeFileSync, readFileSync } from 'node:fs'
import { cpus, totalmem } from 'node:os'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { startRedis, startCluster } from './redis-server.mjs'
import { createRequire } from 'node:module'
import { Bench } from 'tinybench'
import { make as makeSingle, makeCluster, NAMES as SINGLE_NAMES, CLUSTER_NAMES, BASELINE } from './contenders.mjs'
import { record } from './record.mjs'

const here = dirname(fileURLToPath(import.meta.url))
const require = createRequire(import.meta.url)

const argv = process.argv.slice(2)
const flag = (n) => argv.includes(`--${n}`)
const opt = (n, d) => (argv.indexOf(`--${n}`) >= 0 ? argv[argv.indexOf(`--${n}`) + 1] : d)
const QUICK = flag('quick')
const REPS = Number(opt('reps', QUICK ? 1 : 5))
const RUN_MS = Number(opt('ms', QUICK ? 120 : 1000))
const ONLY = opt('only', null)?.split(',')
/** Keys of the large run of W1-W5 (`--scale 0` skips it). */
const SCALE = Number(opt('scale', QUICK ? 0 : 100_000))
const CONCURRENCY = 64
// --cluster: the same workloads on a 3-primary Redis Cluster, the addon against the original over Redis.Cluster.
const CLUSTER = flag('cluster')
const NAMES = CLUSTER ? CLUSTER_NAMES : SINGLE_NAMES
/** The contenders in repetition `rep`'s order: each starts one position later than in the last, so none always runs first (after the previous workload) or right after the same neighbour. */
const inOrder = (rep) => NAMES.map((_, i) => NAMES[(i + rep - 1) % NAMES.length])
const make = CLUSTER ? makeCluster : makeSingle
const CLUSTER_WORKLOADS = ['W1', 'W2', 'W3', 'W4', 'W5', 'W8']
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const log = (...a) => console.error(...a)


/** A raw client on the benchmark's server, for `INFO cpu` (set in main). */
let probe = null
/** Redis' own CPU time so far, in µs: `used_cpu_user` + `used_cpu_sys`. */
async function redisCpuUs() {
  const info = await probe.info('cpu')
  const v = (n) => Number(new RegExp(`${n}:([\\d.]+)`).exec(info)?.[1] ?? 0)
  return (v('used_cpu_user') + v('used_cpu_sys')) * 1e6
}
/** Redis CPU µs per operation of the last `drive` (null before any). */
let lastCpuPerOp = null

/** Runs `fn(key)` for every key, 500 at a time. */
async function each(keys, fn) {
  for (let i = 0; i < keys.length; i += 500) await Promise.all(keys.slice(i, i + 500).map(fn))
}

/** Runs `op(i)` from `concurrency` loops for `ms` (or `max` calls); returns ops per second. */
async function drive(op, { concurrency = CONCURRENCY, ms = RUN_MS, max = Infinity } = {}) {
  let n = 0
  const cpu0 = probe ? await redisCpuUs() : 0
  const started = performance.now()
  const end = started + ms
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < end && n < max) await op(n++)
    }),
  )
  const rate = n / ((performance.now() - started) / 1000)
  lastCpuPerOp = probe && n > 0 ? ((await redisCpuUs()) - cpu0) / n : null
  return rate
}

let HOT = Array.from({ length: 1000 }, (_, i) => `hot:${i}`)
const COLD = 50_000
let runId = 0

// Each workload: how to prepare a contender, what to measure, the unit, and whether more is better.
const workloads = {
  W1: {
    title: 'hot get, 1,000 keys, all L1 hits, 64 in flight',
    unit: 'ops/s',
    higher: true,
    async run(a) {
      await each(HOT, (k) => a.set(k, record(k.length), 600))
      // Twice: the native L1 fills on a key's second read.
      for (let r = 0; r < 2; r++) await each(HOT, (k) => a.get(k))
      return drive((i) => a.get(HOT[i % HOT.length]))
    },
  },
  W2: {
    title: 'cold get from Redis (every read a key this instance never read), 64 in flight',
    unit: 'ops/s',
    higher: true,
    fresh: true,
    async run(a) {
      // One pass at most: a key read twice would be an L1 hit for the tiered contenders.
      return drive((i) => a.get(`cold:${i}`), { max: COLD })
    },
  },
  W3: {
    title: 'set, 64 in flight',
    unit: 'ops/s',
    higher: true,
    async run(a) {
      const v = record(3)
      return drive((i) => a.set(`w3:${i % HOT.length}`, v, 600))
    },
  },
  W4: {
    title: 'getOrSet, 95 % hits, factory 1 ms async, 64 in flight',
    unit: 'ops/s',
    higher: true,
    async run(a) {
      for (let r = 0; r < 2; r++) await each(HOT, (k) => a.getOrSet(k, async () => record(1), 600))
      const run = runId++
      return drive((i) =>
        i % 20 === 0
          ? a.getOrSet(`w4:${run}:${i}`, () => sleep(1).then(() => record(i)), 600)
          : a.getOrSet(HOT[i % HOT.length], async () => record(i), 600),
      )
    },
  },
  W5: {
    title: 'mget of 10 hot keys, 64 in flight',
    unit: 'ops/s',
    higher: true,
    async run(a) {
      await each(HOT, (k) => a.set(k, record(2), 600))
      for (let r = 0; r < 2; r++) for (let i = 0; i < HOT.length; i += 1000) await a.mget(HOT.slice(i, i + 1000))
      let failed = 0
      const rate = await drive(async (i) => {
        const got = await a.mget(Array.from({ length: 10 }, (_, j) => HOT[(i * 10 + j) % HOT.length]))
        if (got.length !== 10 || got.includes(null)) failed++
      })
      // The original's MGET across cluster slots fails (CROSSSLOT) and answers [].
      return failed ? { value: null, note: `failed: ${failed} mget calls answered [] or null` } : rate
    },
  },
  W6: {
    title: 'stampede: 500 concurrent getOrSet on one missing key, factory 20 ms (factory calls)',
    unit: 'calls',
    higher: false,
    async run(a) {
      let calls = 0
      const key = `w6:${runId++}`
      await Promise.all(Array.from({ length: 500 }, () => a.getOrSet(key, () => ((calls += 1), sleep(20).then(() => record(6))), 60)))
      return calls
    },
  },
  W7: {
    title: 'latency of one hot get, one in flight (p50 / p99, µs)',
    unit: 'µs p50',
    higher: false,
    async run(a) {
      await a.set('w7', record(7), 600)
      await a.get('w7')
      const bench = new Bench({ time: Math.max(100, RUN_MS), warmupTime: 50, iterations: 200 })
      bench.add('get', () => a.get('w7'))
      await bench.run()
      const lat = bench.tasks[0].result.latency
      return { value: lat.p50 * 1000, p99: lat.p99 * 1000 }
    },
  },
  W8: {
    title: 'coherence: ms from B.set/B.del starting until A stops serving the old value (median)',
    unit: 'ms',
    higher: false,
    pair: true,
    async run(a, b) {
      if (!a.coherent) return { value: null, note: 'one process only' }
      const times = []
      const rounds = QUICK ? 5 : 20
      for (let r = 0; r < rounds; r++) {
        const key = `w8:${runId}:${r}`
        await a.set(key, { v: 'old' }, 600)
        await a.get(key)
        await a.get(key)
        const started = performance.now()
        const deleting = r % 2 === 1
        const write = deleting ? b.del(key) : b.set(key, { v: 'new' }, 600)
        let seen = false
        while (performance.now() - started < 1000) {
          const v = await a.get(key)
          if (deleting ? v === null : v?.v === 'new') {
            seen = true
            break
          }
          await new Promise((res) => setImmediate(res))
        }
        await write
        times.push(seen ? performance.now() - started : Infinity)
      }
      runId++
      const sorted = times.sort((x, y) => x - y)
      const med = sorted[Math.floor(sorted.length / 2)]
      return Number.isFinite(med) ? { value: med } : { value: null, note: 'stale > 1 s' }
    },
  },
  W12: {
    title: 'getOrSetMany over 10 keys, 2 missing, factory 1 ms async (without getOrSetMany: 10 getOrSet calls), 64 in flight',
    unit: 'ops/s',
    higher: true,
    async run(a) {
      for (let r = 0; r < 2; r++) await each(HOT, (k) => a.getOrSet(k, async () => record(1), 600))
      const run = runId++
      const load = (missing, i) => sleep(1).then(() => Object.fromEntries(missing.map((k) => [k, record(i)])))
      // The addon: one call, one factory call for both missing keys; the others: a getOrSet per key.
      const many = a.getOrSetMany
        ? (keys, i) => a.getOrSetMany(keys, (missing) => load(missing, i), 600)
        : (keys, i) => Promise.all(keys.map((k) => a.getOrSet(k, () => sleep(1).then(() => record(i)), 600)))
      let failed = 0
      const rate = await drive(async (i) => {
        const keys = Array.from({ length: 10 }, (_, j) => (j === 3 || j === 7 ? `w12:${run}:${i}:${j}` : HOT[(i * 10 + j) % HOT.length]))
        const got = await many(keys, i)
        if (got.length !== 10 || got.includes(null)) failed++
      })
      return failed ? { value: null, note: `failed: ${failed} calls answered null` } : rate
    },
  },
}

// W10/W11: several processes, or getOrSet options the contenders above do not
// share; each contender's processes run benchmark/fleet.mjs (one after another).
const FLEET_NAMES = ['native+lock', 'native', 'bentocache', 'baseline']
const W10 = { processes: 4, callers: 100, factoryMs: QUICK ? 50 : 100 }
const W11 = { callers: QUICK ? 20 : 100, everyMs: 10, hangMs: QUICK ? 1000 : 5000 }
const fleet = {
  W10: {
    title: `stampede: ${W10.processes} processes × ${W10.callers} concurrent getOrSet on one missing key, factory ${W10.factoryMs} ms`,
    unit: 'factory runs · caller ms p50 / p99',
    names: FLEET_NAMES,
    processes: W10.processes,
    async run(procs, name, rep) {
      const key = `w10:${name}:${rep}:${Date.now()}`
      const at = Date.now() + 300
      const replies = await Promise.all(procs.map((p) => p.ask({ cmd: 'w10', key, at, callers: W10.callers, factoryMs: W10.factoryMs })))
      return {
        runs: replies.reduce((n, r) => n + r.runs, 0),
        wrong: replies.reduce((n, r) => n + r.wrong, 0),
        lat: replies.flatMap((r) => r.lat),
      }
    },
  },
  W11: {
    title: `dashboard: a value past its ttl with grace, factory hangs ${W11.hangMs / 1000} s, ${W11.callers} callers ${W11.everyMs} ms apart (grace 1 h, timeout soft 200 ms / hard 2 s)`,
    unit: 'caller ms p50 / p99',
    names: ['native', 'bentocache', 'baseline'],
    processes: 1,
    async run([p], name, rep) {
      return p.ask({ cmd: 'w11', key: `w11:${name}:${rep}:${Date.now()}`, ...W11 })
    },
  },
}

/** Nearest-rank percentile. */
function percentile(xs, q) {
  const s = [...xs].sort((a, b) => a - b)
  return s.length === 0 ? null : s[Math.min(s.length, Math.max(1, Math.ceil(q * s.length))) - 1]
}

/** A fleet.mjs process, ready; `ask(cmd)` resolves to its reply. */
async function fleetProcess(name, url) {
  const child = fork(join(here, 'fleet.mjs'), [name, url], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] })
  const next = () =>
    new Promise((resolve, reject) => {
      child.once('message', resolve)
      child.once('exit', (code) => reject(new Error(`fleet process ${name} exited (${code})`)))
    })
  await next()
  return {
    async ask(cmd) {
      const reply = next()
      child.send(cmd)
      const { ok, error, ...r } = await reply
      if (!ok) throw new Error(error)
      return r
    },
    exit: () => child.send({ cmd: 'exit' }),
  }
}

async function runFleet(chosen, url) {
  const results = {}
  for (const w of chosen) {
    const wl = fleet[w]
    results[w] = { title: wl.title, unit: wl.unit, contenders: {} }
    for (const name of wl.names) {
      const procs = await Promise.all(Array.from({ length: wl.processes }, () => fleetProcess(name, url)))
      const reps = []
      for (let rep = 1; rep <= REPS; rep++) {
        let r
        try {
          r = await wl.run(procs, name, rep)
          r = { ...r, p50: percentile(r.lat, 0.5), p99: percentile(r.lat, 0.99), callers: r.lat.length }
          delete r.lat
        } catch (err) {
          r = { error: String(err?.message ?? err).slice(0, 80) }
        }
        reps.push(r)
        log(`  rep ${rep}/${REPS} ${w} ${name}: ${JSON.stringify(r)}`)
      }
      for (const p of procs) p.exit()
      const med = (f) => median(reps.map((r) => r[f] ?? null))
      results[w].contenders[name] = { runs: med('runs'), p50: med('p50'), p99: med('p99'), stale: med('stale'), fresh: med('fresh'), failed: med('failed'), wrong: med('wrong'), callers: med('callers'), reps, note: reps.find((r) => r.error)?.error }
    }
  }
  return results
}

function fleetCell(w, c) {
  if (!c || c.p50 === null) return c?.note ? `error: ${c.note}` : '—'
  const lat = `${c.p50.toFixed(0)} / ${c.p99.toFixed(0)}`
  if (w === 'W10') return `${c.runs} · ${lat}`
  const answered = c.failed ? `, ${c.failed} failed` : ''
  return `${lat} (${c.stale} last known, ${c.fresh} fresh${answered})`
}

function median(xs) {
  const s = xs.filter((x) => x !== null && Number.isFinite(x)).sort((a, b) => a - b)
  if (s.length === 0) return null
  const m = Math.floor(s.length / 2)
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2
}

function redisBenchmark(port) {
  const n = QUICK ? 20_000 : 200_000
  try {
    const out = execFileSync('redis-benchmark', ['-h', '127.0.0.1', '-p', String(port), '-t', 'get,set', '-n', String(n), '-c', String(CONCURRENCY), '-d', '1000', '--csv'], { encoding: 'utf8' })
    const rps = {}
    for (const line of out.split('\n')) {
      const m = /^"(GET|SET)","([\d.]+)"/.exec(line)
      if (m) rps[m[1]] = Number(m[2])
    }
    return rps
  } catch (err) {
    return { error: String(err.message ?? err).split('\n')[0] }
  }
}

/** W9 in a child process per contender: RSS + heap per entry at 100,000 entries. */
function memoryPerEntry(name, url) {
  const r = spawnSync(process.execPath, ['--expose-gc', join(here, 'memory.mjs'), name, url, QUICK ? '10000' : '100000'], { encoding: 'utf8', timeout: 300_000 })
  try {
    return JSON.parse(r.stdout.trim().split('\n').pop())
  } catch {
    return { error: (r.stderr || r.stdout).slice(0, 300) }
  }
}

function versions() {
  // Read from node_modules directly: some packages' `exports` hide package.json.
  const v = (p) => {
    try {
      return JSON.parse(readFileSync(join(here, '..', 'node_modules', p, 'package.json'), 'utf8')).version
    } catch {
      return 'n/a'
    }
  }
  const redisVersion = spawnSync('redis-server', ['--version'], { encoding: 'utf8' }).stdout.match(/v=(\S+)/)?.[1]
  return { node: process.version, redis: redisVersion, ioredis: v('ioredis'), bentocache: v('bentocache'), redis_client: v('redis'), 'lru-cache': v('lru-cache'), tinybench: v('tinybench'), addon: require('../package.json').version }
}

function fmt(v, unit) {
  if (v === null || v === undefined) return '—'
  if (unit === 'ops/s') return v >= 1e6 ? `${(v / 1e6).toFixed(2)} M` : `${(v / 1e3).toFixed(1)} k`
  if (unit === 'µs p50') return v.toFixed(1)
  if (unit === 'ms') return v.toFixed(2)
  return String(v)
}

async function main() {
  const server = CLUSTER ? await startCluster() : await startRedis()
  const target = CLUSTER ? server.seeds : server.url
  const Redis = require('ioredis')
  // Redis CPU per op is read off the single server (not measured on the cluster).
  probe = CLUSTER ? null : new Redis(server.url)
  const chosen = Object.keys(workloads).filter((w) => (!ONLY || ONLY.includes(w)) && (!CLUSTER || CLUSTER_WORKLOADS.includes(w)))
  log(`bench: ${REPS} repetition(s), ${RUN_MS} ms per run, contenders: ${NAMES.join(', ')}`)
  // Cold keys for W2, written once, the way the original writes them (pipelined SETEX).
  if (CLUSTER) {
    const Redis = require('ioredis')
    const seed = new Redis.Cluster(server.seeds.map((s) => ({ host: '127.0.0.1', port: Number(s.split(':')[1]) })))
    for (let i = 0; i < COLD; i += 500) {
      await Promise.all(Array.from({ length: 500 }, (_, j) => seed.setex(`cold:${i + j}`, 3600, JSON.stringify(record(i + j)))))
    }
    seed.disconnect()
  } else {
    const { CacheService: Original } = require('./.build/original/cache.service.js')
    const seed = new Original(server.url)
    for (let i = 0; i < COLD; i += 500) {
      const batch = {}
      for (let j = i; j < i + 500; j++) batch[`cold:${j}`] = record(j)
      await seed.mset(batch, 3600)
    }
    await seed.close()
  }

  const results = {}
  for (const w of chosen) results[w] = Object.fromEntries(NAMES.map((n) => [n, []]))
  for (let rep = 1; rep <= REPS; rep++) {
    for (const w of chosen) {
      const wl = workloads[w]
      const line = []
      for (const name of inOrder(rep)) {
        const a = await make(name, target)
        const b = wl.pair ? await make(name, target) : null
        let r
        lastCpuPerOp = null
        try {
          r = await wl.run(a, b)
        } catch (err) {
          r = { value: null, note: `error: ${String(err?.message ?? err).slice(0, 80)}` }
        }
        await a.close()
        if (b) await b.close()
        const entry = typeof r === 'object' && r !== null ? r : { value: r }
        if (wl.unit === 'ops/s') entry.redisCpuUs = lastCpuPerOp
        results[w][name].push(entry)
        line.push(`${name} ${fmt(entry.value, wl.unit)}`)
      }
      log(`  rep ${rep}/${REPS} ${w}: ${line.join(' | ')}`)
    }
  }

  // The same workloads over SCALE keys (L1s large enough to hold them all).
  const SCALED = ['W1', 'W3', 'W4', 'W5'].filter((w) => chosen.includes(w))
  const scaleResults = {}
  const scaleReps = Number(opt('scale-reps', 1))
  if (!CLUSTER && SCALE > 0 && SCALED.length > 0) {
    HOT = Array.from({ length: SCALE }, (_, i) => `hot:${i}`)
    for (const w of SCALED) scaleResults[w] = Object.fromEntries(NAMES.map((n) => [n, []]))
    for (let rep = 1; rep <= scaleReps; rep++) {
      for (const w of SCALED) {
        const line = []
        for (const name of inOrder(rep)) {
          const a = await make(name, server.url)
          let r
          lastCpuPerOp = null
          try {
            r = { value: await workloads[w].run(a) }
          } catch (err) {
            r = { value: null, note: `error: ${String(err?.message ?? err).slice(0, 80)}` }
          }
          r.redisCpuUs = lastCpuPerOp
          await a.close()
          scaleResults[w][name].push(r)
          line.push(`${name} ${fmt(r.value, 'ops/s')}`)
        }
        log(`  ${SCALE.toLocaleString('en')} keys, rep ${rep}/${scaleReps} ${w}: ${line.join(' | ')}`)
      }
    }
  }
  // Redis' tracking table after one instance read 10,000 keys twice (so they are in its L1).
  let tracking = null
  if (!CLUSTER) {
    const a = await make('native', server.url)
    const mem = async () => Number(/used_memory:(\d+)/.exec(await probe.info('memory'))?.[1])
    const tracked = async () => Number(/tracking_total_keys:(\d+)/.exec(await probe.info('stats'))?.[1])
    const keys = Array.from({ length: 10_000 }, (_, i) => `tracked:${i}`)
    await each(keys, (k) => a.set(k, record(1), 600))
    const before = [await mem(), await tracked()]
    for (let r = 0; r < 2; r++) await each(keys, (k) => a.get(k))
    const after = [await mem(), await tracked()]
    tracking = { keysRead: keys.length, trackedKeys: after[1] - before[1], bytesPerKey: (after[0] - before[0]) / keys.length }
    await a.close()
  }
  probe?.disconnect()

  const fleetChosen = CLUSTER ? [] : Object.keys(fleet).filter((w) => !ONLY || ONLY.includes(w))
  const fleetResults = await runFleet(fleetChosen, server.url)

  const limit = CLUSTER ? {} : (log('  redis-benchmark …'), redisBenchmark(server.port))
  const memory = {}
  if (!CLUSTER && (!ONLY || ONLY.includes('W9'))) {
    for (const name of NAMES) {
      log(`  W9 memory: ${name} …`)
      memory[name] = memoryPerEntry(name, server.url)
    }
  }
  server.stop()

  // Medians, and medians of per-repetition ratios to the baseline.
  const table = {}
  for (const w of chosen) {
    const wl = workloads[w]
    table[w] = {}
    for (const name of NAMES) {
      const runs = results[w][name]
      const ratios = runs.map((r, i) => {
        const base = results[w][BASELINE][i]?.value
        if (r.value === null || base === null || base === undefined || r.value === 0) return null
        return wl.higher ? r.value / base : base / r.value
      })
      table[w][name] = {
        median: median(runs.map((r) => r.value)),
        p99: median(runs.map((r) => r.p99 ?? null)),
        ratio: median(ratios),
        note: runs.find((r) => r.note)?.note,
      }
    }
  }

  const median2 = (runs, f) => median(runs.map(f))
  const scaleTable = {}
  for (const w of Object.keys(scaleResults)) {
    scaleTable[w] = {}
    for (const name of NAMES) {
      const runs = scaleResults[w][name]
      const ratios = runs.map((r, i) => {
        const base = scaleResults[w][BASELINE][i]?.value
        return r.value === null || !base ? null : r.value / base
      })
      scaleTable[w][name] = {
        median: median2(runs, (r) => r.value),
        ratio: median(ratios),
        vsSmall: table[w]?.[name]?.median ? median2(runs, (r) => r.value) / table[w][name].median : null,
        redisCpuUs: median2(runs, (r) => r.redisCpuUs ?? null),
      }
    }
  }
  for (const w of chosen) for (const name of NAMES) table[w][name].redisCpuUs = median(results[w][name].map((r) => r.redisCpuUs ?? null))

  const meta = { cluster: CLUSTER ? '3 primaries + 3 replicas, one host' : undefined, date: new Date().toISOString(), machine: `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB`, reps: REPS, runMs: RUN_MS, concurrency: CONCURRENCY, quick: QUICK, versions: versions() }
  const out = { meta, workloads: Object.fromEntries(chosen.map((w) => [w, workloads[w].title])), table, raw: results, fleet: fleetResults, redisBenchmark: limit, memory, scale: { keys: SCALE, table: scaleTable, raw: scaleResults }, tracking }
  mkdirSync(join(here, 'results'), { recursive: true })
  const file = join(here, 'results', `bench-${CLUSTER ? 'cluster-' : ''}${QUICK ? 'quick-' : ''}${meta.date.replace(/[:.]/g, '-')}.json`)
  writeFileSync(file, JSON.stringify(out, null, 2))

  // Markdown.
  const lines = []
  lines.push(`${CLUSTER ? 'Redis Cluster (3 primaries + 3 replicas on this host) · ' : ''}Run ${meta.date} · ${meta.machine} · Node ${meta.versions.node} · Redis ${meta.versions.redis} · ${REPS} repetitions × ${RUN_MS} ms, medians; (×N) = median ratio to the baseline in the same repetition, >1 is better`)
  if (chosen.length > 0) {
    lines.push('')
    lines.push(`| workload | ${NAMES.join(' | ')} |`)
    lines.push(`|---|${NAMES.map(() => '---').join('|')}|`)
  }
  for (const w of chosen) {
    const wl = workloads[w]
    const cells = NAMES.map((n) => {
      const c = table[w][n]
      if (c.median === null) return c.note ?? '—'
      let s = fmt(c.median, wl.unit)
      if (w === 'W7' && c.p99 !== null) s += ` / ${c.p99.toFixed(1)}`
      if (c.ratio !== null && w !== 'W6') s += ` (×${c.ratio.toFixed(2)})`
      return s
    })
    lines.push(`| ${w} ${wl.title} [${wl.unit}] | ${cells.join(' | ')} |`)
  }
  if (Object.keys(memory).length > 0) {
    const cells = NAMES.map((n) => {
      const m = memory[n]
      if (!m || m.error || m.bytesPerEntry === undefined) return m?.note ?? '—'
      return `${Math.round(m.bytesPerEntry)} B (×${m.overPayload.toFixed(2)} payload)`
    })
    lines.push(`| W9 memory per cached entry at ${QUICK ? '10,000' : '100,000'} entries, RSS + heap [bytes; × key+JSON] | ${cells.join(' | ')} |`)
  }
  if (fleetChosen.length > 0) {
    lines.push('')
    lines.push(`W10/W11: medians over ${REPS} repetition(s); caller latency from the calls' start, ms`)
    lines.push('')
    lines.push(`| workload | ${FLEET_NAMES.join(' | ')} |`)
    lines.push(`|---|${FLEET_NAMES.map(() => '---').join('|')}|`)
    for (const w of fleetChosen) {
      const cells = FLEET_NAMES.map((n) => (fleet[w].names.includes(n) ? fleetCell(w, fleetResults[w].contenders[n]) : 'n/a'))
      lines.push(`| ${w} ${fleet[w].title} [${fleet[w].unit}] | ${cells.join(' | ')} |`)
    }
  }
  lines.push('')
  // Redis CPU is read off the single server only.
  const cpuRows = CLUSTER ? [] : chosen.filter((w) => workloads[w].unit === 'ops/s')
  if (cpuRows.length > 0) {
    lines.push(`Redis CPU per operation (\`INFO cpu\` used_cpu_user + used_cpu_sys over the run, divided by its operations; µs, median; (×N) = ratio to the baseline, <1 is less CPU)`)
    lines.push('')
    lines.push(`| workload | ${NAMES.join(' | ')} |`)
    lines.push(`|---|${NAMES.map(() => '---').join('|')}|`)
    for (const w of cpuRows) {
      const base = table[w][BASELINE].redisCpuUs
      const cells = NAMES.map((n) => {
        const v = table[w][n].redisCpuUs
        if (v === null || v === undefined) return '—'
        return base ? `${v.toFixed(2)} (×${(v / base).toFixed(2)})` : v.toFixed(2)
      })
      lines.push(`| ${w} | ${cells.join(' | ')} |`)
    }
    lines.push('')
  }
  if (Object.keys(scaleTable).length > 0) {
    lines.push(`The same over ${SCALE.toLocaleString('en')} keys (${scaleReps} repetitions; ops/s (×N to the baseline) [÷ the 1,000-key median]; Redis CPU µs/op)`)
    lines.push('')
    lines.push(`| workload | ${NAMES.join(' | ')} |`)
    lines.push(`|---|${NAMES.map(() => '---').join('|')}|`)
    for (const w of Object.keys(scaleTable)) {
      const cells = NAMES.map((n) => {
        const c = scaleTable[w][n]
        if (c.median === null) return '—'
        let cell = `${fmt(c.median, 'ops/s')} (×${c.ratio?.toFixed(2) ?? '?'}) [${c.vsSmall?.toFixed(2) ?? '?'}]`
        if (c.redisCpuUs !== null) cell += `; ${c.redisCpuUs.toFixed(2)} µs`
        return cell
      })
      lines.push(`| ${w} ${workloads[w].title.replace('1,000', SCALE.toLocaleString('en'))} | ${cells.join(' | ')} |`)
    }
    lines.push('')
  }
  if (tracking) {
    lines.push(`Redis tracking table: after one native instance read ${tracking.keysRead.toLocaleString('en')} keys twice, ${tracking.trackedKeys.toLocaleString('en')} more keys tracked, used_memory +${Math.round(tracking.bytesPerKey)} B per key read.`)
    lines.push('')
  }
  if (!CLUSTER) lines.push(`redis-benchmark on the same server (-c ${CONCURRENCY} -d 1000, no pipelining): GET ${limit.GET ?? '?'} rps, SET ${limit.SET ?? '?'} rps.`)
  const md = lines.join('\n')
  // A partial run (--only) leaves latest.md, the last full table, alone.
  if (!ONLY || QUICK) writeFileSync(join(here, 'results', `latest${CLUSTER ? '-cluster' : ''}${QUICK ? '-quick' : ''}.md`), md + '\n')
  console.log(md)
  log(`\nwritten: ${file}`)
  process.exit(0)
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
