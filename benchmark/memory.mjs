// W9, one contender per process: RSS (which includes the V8 heap and native
// allocations) per cached entry once 100,000 ~1 KB records sit in its L1.
import { make } from './contenders.mjs'
import { record } from './record.mjs'

const [name, url, countArg] = process.argv.slice(2)
const count = Number(countArg ?? 100000)
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))


function settle() {
  for (let i = 0; i < 3; i++) globalThis.gc?.()
  return process.memoryUsage()
}

const a = await make(name, url, 1024 * 1024 * 1024)
if (name === 'baseline' || name === 'native-noL1') {
  console.log(JSON.stringify({ note: 'no L1' }))
  process.exit(0)
}
// Warm the client itself (connections, code paths) before the baseline reading.
for (let i = 0; i < 1000; i++) await a.set(`warm:${i}`, record(i), 600)
for (let i = 0; i < 1000; i++) await a.del(`warm:${i}`)
await sleep(200)
const before = settle()
let payload = 0
const keys = []
for (let i = 0; i < count; i += 1000) {
  const batch = []
  for (let j = i; j < i + 1000; j++) {
    const key = `mem:${name}:${j}`
    keys.push(key)
    payload += key.length + JSON.stringify(record(j)).length
    batch.push(a.set(key, record(j), 600))
  }
  await Promise.all(batch)
}
// Read every key twice so L1s that fill on read (the native one on a key's second read) hold them all.
for (let r = 0; r < 2; r++) for (let i = 0; i < count; i += 1000) await Promise.all(keys.slice(i, i + 1000).map((k) => a.get(k)))
await sleep(500)
const after = settle()
const grown = after.rss - before.rss
console.log(JSON.stringify({ entries: count, rssGrowth: grown, heapGrowth: after.heapUsed - before.heapUsed, bytesPerEntry: grown / count, payloadPerEntry: payload / count, overPayload: grown / payload }))
await a.close()
process.exit(0)
