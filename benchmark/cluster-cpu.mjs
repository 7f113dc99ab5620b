#!/usr/bin/env node
// CPU per operation on a Redis Cluster: this process' (process.cpuUsage) and
// the cluster's (INFO cpu summed over every node), for W2-style cold gets and
// W3-style sets, contenders interleaved within each repetition; medians.
// node benchmark/cluster-cpu.mjs [--reps 5] [--n 20000] [--names native,baseline] [--single]
// PAUSE_MS=3000: waits that long after seeding (and prints the pid), to attach perf.
import { createRequire } from 'node:module'
import { startCluster, startRedis } from './redis-server.mjs'
import { makeCluster, make } from './contenders.mjs'
import { record } from './record.mjs'

const require = createRequire(import.meta.url)
const argv = process.argv.slice(2)
const opt = (n, d) => (argv.indexOf(`--${n}`) >= 0 ? argv[argv.indexOf(`--${n}`) + 1] : d)
const REPS = Number(opt('reps', 5))
const N = Number(opt('n', 20000))
const NAMES = opt('names', 'native,baseline').split(',')
const CONC = 64

// --single: the same on one redis-server, for comparison.
const SINGLE = argv.includes('--single')
const server = SINGLE ? await startRedis() : await startCluster()
if (SINGLE) server.seeds = [`127.0.0.1:${server.port}`]
const Redis = require('ioredis')
const nodes = server.seeds.map((s) => new Redis(Number(s.split(':')[1])))
const redisCpu = async () => {
  let us = 0
  for (const n of nodes) {
    const info = await n.info('cpu')
    const v = (k) => Number(new RegExp(`${k}:([\\d.]+)`).exec(info)?.[1] ?? 0)
    us += (v('used_cpu_user') + v('used_cpu_sys')) * 1e6
  }
  return us
}
const seed = SINGLE ? new Redis(server.port) : new Redis.Cluster(server.seeds.map((s) => ({ host: '127.0.0.1', port: Number(s.split(':')[1]) })))
const COLD = N * REPS * NAMES.length
for (let i = 0; i < COLD; i += 500) {
  await Promise.all(Array.from({ length: Math.min(500, COLD - i) }, (_, j) => seed.setex(`cold:${i + j}`, 3600, JSON.stringify(record(i + j)))))
}
seed.disconnect()
if (process.env.PAUSE_MS) {
  console.error(`seeded, pid ${process.pid}`)
  await new Promise((r) => setTimeout(r, Number(process.env.PAUSE_MS)))
}

async function drive(op) {
  let n = 0
  const c0 = process.cpuUsage()
  const r0 = await redisCpu()
  const t0 = performance.now()
  await Promise.all(Array.from({ length: CONC }, async () => { while (n < N) await op(n++) }))
  const wall = performance.now() - t0
  const c = process.cpuUsage(c0)
  const r = await redisCpu()
  return { node: (c.user + c.system) / N, redis: (r - r0) / N, rate: N / (wall / 1000) }
}

const res = {}
let coldAt = 0
for (let rep = 0; rep < REPS; rep++) {
  for (const name of NAMES) {
    const a = SINGLE ? await make(name, server.url) : await makeCluster(name, server.seeds)
    const base = coldAt
    coldAt += N
    const w2 = await drive((i) => a.get(`cold:${base + i}`))
    const v = record(3)
    const w3 = await drive((i) => a.set(`w3:${i % 1000}`, v, 600))
    await a.close()
    for (const [w, m] of [['W2', w2], ['W3', w3]]) {
      ;((res[w] ??= {})[name] ??= []).push(m)
      console.error(`rep ${rep + 1} ${w} ${name}: node ${m.node.toFixed(1)} µs/op, redis ${m.redis.toFixed(1)} µs/op, ${(m.rate / 1000).toFixed(1)} k/s`)
    }
  }
}
const med = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)] }
for (const [w, by] of Object.entries(res)) {
  for (const [name, ms] of Object.entries(by)) {
    console.log(`${w} ${name}: node ${med(ms.map((m) => m.node)).toFixed(1)} µs/op · redis ${med(ms.map((m) => m.redis)).toFixed(1)} µs/op · ${(med(ms.map((m) => m.rate)) / 1000).toFixed(1)} k ops/s`)
  }
}
for (const n of nodes) n.disconnect()
server.stop()
process.exit(0)
