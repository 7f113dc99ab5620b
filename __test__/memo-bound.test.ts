// The memo's memory is inside its share of local.maxBytes (the rest is L1's,
// in Rust): it counts what a copy retains, the key included. Long keys made per request (as an
// application builds them) are kept alive only by the memo, so the JS heap
// after the reads, garbage collected, is what the memo holds.
import { describe, it, expect } from 'vitest'
import { spawnSync } from 'node:child_process'
import { join } from 'node:path'

const script = `
const { CacheService } = require(${JSON.stringify(join(__dirname, '..', 'index.js'))})
const [keyBytes, keys, maxBytes] = process.argv.slice(1).map(Number)
const pad = 'k'.repeat(keyBytes)
const key = (i) => (pad + ':' + i).slice(-keyBytes)
;(async () => {
  const c = new CacheService({ mode: 'memory', local: { maxBytes }, logger: false })
  for (let i = 0; i < keys; i++) await c.set(key(i), { i }, 600)
  gc(); gc()
  const before = process.memoryUsage().heapUsed
  for (let i = 0; i < keys; i++) for (let round = 0; round < 6; round++) await c.get(key(i))
  gc(); gc()
  const grown = process.memoryUsage().heapUsed - before
  // A hot key still gets copies.
  for (let j = 0; j < 20; j++) await c.get(key(0))
  console.log(JSON.stringify({ grown, memoHits: c.stats().local.memoHits }))
})()
`

function run(keyBytes: number, keys: number, maxBytes: number) {
  const r = spawnSync(process.execPath, ['--expose-gc', '-e', script, String(keyBytes), String(keys), String(maxBytes)], { encoding: 'utf8' })
  expect(r.status, r.stderr).toBe(0)
  return JSON.parse(r.stdout) as { grown: number; memoHits: number }
}

describe('the memo stays inside local.maxBytes', () => {
  it.each([
    [16 << 10, 3000, 4 << 20],
    [64 << 10, 1000, 8 << 20],
  ])('keys of %i bytes, %i of them each read 6 times in a row, maxBytes %i: the heap grows by less than the memo share', (keyBytes, keys, maxBytes) => {
    const { grown, memoHits } = run(keyBytes, keys, maxBytes)
    // The memo's share is a sixteenth of maxBytes (src/board.rs); twice that leaves room for noise.
    expect(grown, `the JS heap grew by ${(grown / 2 ** 20).toFixed(2)} MiB`).toBeLessThan(maxBytes / 8)
    // The memo still serves a hot key (it is not simply off).
    expect(memoHits).toBeGreaterThan(0)
  })
})
