// What JavaScript and Rust must agree on is defined once, in Rust, and read
// from there: error codes (src/error.rs errorCodes()), the memo board's layout
// (src/board.rs boardLayout()) and the defaults (src/options.rs). These fail
// when one side is edited alone: a code or offset restated in JavaScript, or a
// layout the memo's views cannot read.
import { describe, it, expect } from 'vitest'
import { readFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { CacheService, CacheClosedError, TimeoutError } from '../index.js'
// eslint-disable-next-line @typescript-eslint/no-require-imports
const binding = require('../native.js')
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { LAYOUT } = require('../lib/memo.js')

const root = join(__dirname, '..')
const sources = ['index.js', ...readdirSync(join(root, 'lib')).map((f) => join('lib', f))].map((f) => [f, readFileSync(join(root, f), 'utf8')] as const)

describe('the JavaScript/Rust boundary', () => {
  it('no error code is written in JavaScript: each is read from errorCodes()', async () => {
    for (const [file, text] of sources) expect(text.match(/ERR_CACHE_\w*/g), file).toBe(null)
    const codes = Object.values(binding.errorCodes())
    expect(new Set(codes).size).toBe(codes.length)
    expect(codes).toContain(new CacheClosedError().code)
    const m = new CacheService({ mode: 'memory', logger: false })
    const timedOut = await m.getOrSet('t', () => new Promise(() => {}), { timeout: { hard: 5 } }).catch((e: unknown) => e)
    expect(timedOut).toBeInstanceOf(TimeoutError)
    expect(codes).toContain((timedOut as { code: string }).code)
    await m.close()
    const logged: string[] = []
    const log = (_m: string, meta?: { code?: string }) => meta?.code && logged.push(meta.code)
    const c = new CacheService({ host: '127.0.0.1', port: 1, commandTimeoutMs: 50, logger: { error: log, warn: log, info: log, debug: log } })
    await c.get('k')
    await c.getOrSet('k', () => 1, { grace: 10, timeout: { hard: 10 } }).catch(() => {})
    await c.close()
    expect(logged.length).toBeGreaterThan(0)
    for (const code of logged) expect(codes).toContain(code)
  })

  it("the memo's views are built from Rust's board layout, and see what Rust writes", async () => {
    expect(LAYOUT).toEqual(binding.boardLayout())
    for (const [file, text] of sources) {
      expect(text.match(/new (Float64|Uint32)Array\(board, (0, \d|[1-9])/g), `${file} restates a board offset`).toBe(null)
    }
    const c = new CacheService({ mode: 'memory', logger: false })
    await c.set('k', 1)
    for (let i = 0; i < 5; i++) await c.get('k')
    expect(c.stats().local.memoHits).toBeGreaterThan(0)
    // A change Rust makes (a write) moves the version the memo's copy was taken at.
    await c.set('k', 2)
    expect(await c.get('k')).toBe(2)
    await c.close()
  })

  it('the defaults JavaScript applies are the exported ones', () => {
    for (const [file, text] of sources) {
      expect(text.match(/\b(300|1000|60)\s*\*\s*1000\b|64 \* 1024 \* 1024|maxBytes: 67108864/g), file).toBe(null)
    }
    const c = new CacheService({ mode: 'memory', logger: false })
    expect(c.stats().local.maxBytes).toBe(binding.DEFAULT_LOCAL_MAX_BYTES)
    return c.close()
  })
})
