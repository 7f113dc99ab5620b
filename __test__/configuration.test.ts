// Issue 8, drop-in parity with the backend's configuration, in child processes
// (the singleton reads the environment once, on first use):
// - REDIS_URL_FILE (Docker secrets): the file's trimmed content is the URL, and it wins over REDIS_URL;
// - failures stay visible after a one-line swap: rate-limited warnings on stderr by default,
//   nothing with `logger: false`, and `cacheService.setLogger(logger)` attaches the app's logger.
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import Redis from 'ioredis'
import { execFile } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { CacheService } from '../index.js'
import { startRedis, stopRedis, freePort, eventually, type RedisProcess } from './helpers/redis'

const INDEX = join(__dirname, '..', 'index.js')
const CODES = ['ERR_CACHE_TIMEOUT', 'ERR_CACHE_UNAVAILABLE', 'ERR_CACHE_SERVER', 'ERR_CACHE_PROTOCOL', 'ERR_CACHE_CLOSED']

let server: RedisProcess
let db3: Redis
let db5: Redis
let dir: string
/** Nothing listens there: the fallback for whatever the child is not told, never the default Redis port. */
let deadPort: number

beforeAll(async () => {
  server = await startRedis()
  db3 = new Redis({ port: server.port, host: '127.0.0.1', db: 3 })
  db5 = new Redis({ port: server.port, host: '127.0.0.1', db: 5 })
  dir = mkdtempSync(join(tmpdir(), 'native-cache-config-'))
  deadPort = await freePort()
})
afterAll(async () => {
  db3?.disconnect()
  db5?.disconnect()
  await stopRedis(server)
  if (dir) rmSync(dir, { recursive: true, force: true })
})

interface ChildResult {
  code: number | null
  stdout: string
  stderr: string
  /** The JSON the child printed last on stdout. */
  result: any
}

/** Runs `body` (an async function body with `cacheService`, `CacheService`, `sleep` in scope) in a fresh node. */
function child(body: string, env: Record<string, string>): Promise<ChildResult> {
  const script = `
    const { cacheService, CacheService } = require(${JSON.stringify(INDEX)})
    const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
    ;(async () => { ${body} })().then(
      (result) => { process.stdout.write('\\n' + JSON.stringify(result ?? null)); process.exit(0) },
      (err) => { process.stdout.write('\\n' + JSON.stringify({ childError: String(err && err.stack || err) })); process.exit(1) },
    )
  `
  const base: Record<string, string> = {}
  for (const [k, v] of Object.entries(process.env)) {
    if (v !== undefined && !/^REDIS_|^CACHE_MODE$/.test(k)) base[k] = v
  }
  // Anything the child is not told falls back to a port where nothing listens.
  const childEnv = { ...base, REDIS_HOST: '127.0.0.1', REDIS_PORT: String(deadPort), ...env }
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ['-e', script], { env: childEnv, timeout: 30_000 }, (err, stdout, stderr) => {
      const last = stdout.trim().split('\n').pop() ?? ''
      let result: unknown
      try {
        result = JSON.parse(last)
      } catch {
        result = { unparsed: stdout }
      }
      // A child that threw (e.g. an option the current code rejects) fails the test with its error.
      const thrown = (result as { childError?: string } | null)?.childError
      if (thrown !== undefined) reject(new Error(`the child threw: ${thrown}`))
      else resolve({ code: err ? ((err as { code?: number }).code ?? -1) : 0, stdout, stderr, result })
    })
  })
}

/** A child's singleton sets `key` to `value` (JavaScript source), reads it back and closes: the read is its result. */
const setAndGet = (key: string, value: string, env: Record<string, string>) =>
  child(
    `await cacheService.set('${key}', ${value})
     const v = await cacheService.get('${key}')
     await cacheService.close()
     return v`,
    env,
  )

const stderrLines = (s: string) => s.split('\n').filter((l) => l.trim() !== '')

describe('REDIS_URL_FILE', () => {
  it('the singleton connects to the trimmed URL in the file (db 3 included)', async () => {
    const file = join(dir, 'redis-url')
    writeFileSync(file, `  redis://127.0.0.1:${server.port}/3\n`)
    await db3.del('cfg:file')
    const r = await setAndGet('cfg:file', `{ via: 'REDIS_URL_FILE' }`, { REDIS_URL_FILE: file })
    expect(r.result, r.stderr).toEqual({ via: 'REDIS_URL_FILE' })
    expect(await db3.get('cfg:file')).toBe('{"via":"REDIS_URL_FILE"}')
    expect(r.stderr).not.toMatch(/panicked/)
  })

  it('REDIS_URL_FILE wins over REDIS_URL', async () => {
    const file = join(dir, 'redis-url-both')
    writeFileSync(file, `redis://127.0.0.1:${server.port}/3`)
    await db3.del('cfg:both')
    await db5.del('cfg:both')
    const r = await setAndGet('cfg:both', `'from the file'`, { REDIS_URL_FILE: file, REDIS_URL: `redis://127.0.0.1:${server.port}/5` })
    expect(r.result, r.stderr).toBe('from the file')
    expect(await db3.get('cfg:both')).toBe('"from the file"')
    expect(await db5.exists('cfg:both')).toBe(0)
  })

  it('a REDIS_URL_FILE naming no file falls back to REDIS_URL', async () => {
    await db5.del('cfg:fallback')
    const r = await setAndGet('cfg:fallback', `'from REDIS_URL'`, { REDIS_URL_FILE: join(dir, 'no-such-file'), REDIS_URL: `redis://127.0.0.1:${server.port}/5` })
    expect(r.result, r.stderr).toBe('from REDIS_URL')
    expect(await db5.get('cfg:fallback')).toBe('"from REDIS_URL"')
  })
})

describe('failures stay visible after a one-line swap', () => {
  const failMany = `
    let failures = 0
    const end = Date.now() + 1500
    while (Date.now() < end) {
      const r = await Promise.all([cache.get('k'), cache.ping(), cache.exists('k')])
      if (r[0] === null && r[1] === false && r[2] === false) failures += 3
      await sleep(5)
    }
  `

  it('no logger: rate-limited warnings on stderr (many failures, a few lines)', async () => {
    const r = await child(
      `const cache = cacheService
       ${failMany}
       await cache.close()
       return { failures }`,
      { REDIS_URL: `redis://127.0.0.1:${deadPort}` },
    )
    const lines = stderrLines(r.stderr)
    expect(r.result.failures, r.stderr).toBeGreaterThan(30)
    expect(lines.length, `no warning on stderr for ${r.result.failures} failures`).toBeGreaterThan(0)
    // A few warnings (each may span a line or several), not one per failure.
    expect(lines.length, `not rate-limited: ${lines.length} lines for ${r.result.failures} failures:\n${r.stderr.slice(0, 2000)}`).toBeLessThanOrEqual(20)
    expect(r.stderr).not.toMatch(/panicked/)
  })

  it('logger: false: nothing on stderr', async () => {
    const r = await child(
      `const cache = new CacheService({ url: 'redis://127.0.0.1:${deadPort}', logger: false })
       ${failMany}
       await cache.close()
       return { failures }`,
      {},
    )
    expect(r.result.failures, JSON.stringify(r.result)).toBeGreaterThan(30)
    expect(r.stderr).toBe('')
  })

  it('cacheService.setLogger(logger) receives the singleton’s failures with their codes, before and after first use', async () => {
    const r = await child(
      `const seen = []
       const logger = {
         error: (message, meta) => seen.push({ level: 'error', message: String(message), code: meta && meta.code }),
         warn: (message, meta) => seen.push({ level: 'warn', message: String(message), code: meta && meta.code }),
         info() {}, debug() {},
       }
       cacheService.setLogger(logger)
       const cache = cacheService
       ${failMany}
       const before = seen.length
       // Replaced after first use: the new logger gets what follows.
       const later = []
       cacheService.setLogger({ error: (m, meta) => later.push(meta && meta.code), warn: (m, meta) => later.push(meta && meta.code) })
       for (let i = 0; i < 5; i++) await cache.get('k' + i)
       await sleep(100)
       const errorsByCode = cache.stats().redis.errorsByCode
       await cache.close()
       return { failures, before, after: seen.length, seen: seen.slice(0, 5), later, errorsByCode }`,
      { REDIS_URL: `redis://127.0.0.1:${deadPort}` },
    )
    const out = r.result
    expect(out.failures, JSON.stringify(out)).toBeGreaterThan(30)
    expect(out.before, JSON.stringify(out)).toBeGreaterThan(0)
    for (const s of out.seen) expect(CODES, JSON.stringify(s)).toContain(s.code)
    expect(out.after, 'the replaced logger still got calls').toBe(out.before)
    expect(out.later.length, JSON.stringify(out)).toBeGreaterThan(0)
    for (const code of out.later) expect(CODES).toContain(code)
    // A refused connection is 'unavailable' (or, while connecting, 'timeout'); none is 'closed'.
    expect(out.errorsByCode.closed, JSON.stringify(out.errorsByCode)).toBe(0)
    expect(out.errorsByCode.unavailable + out.errorsByCode.timeout, JSON.stringify(out.errorsByCode)).toBeGreaterThan(0)
    // The application's logger replaces the default stderr warnings.
    expect(r.stderr).toBe('')
  })

  it('cacheService.setLogger(false) silences the singleton', async () => {
    const r = await child(
      `cacheService.setLogger(false)
       const cache = cacheService
       ${failMany}
       await cache.close()
       return { failures }`,
      { REDIS_URL: `redis://127.0.0.1:${deadPort}` },
    )
    expect(r.result.failures, JSON.stringify(r.result)).toBeGreaterThan(30)
    expect(r.stderr).toBe('')
  })

  it('setLogger works on any instance: attach, replace, silence', async () => {
    const c = new CacheService({ url: `redis://127.0.0.1:${deadPort}`, commandTimeoutMs: 200, logger: false })
    try {
      expect(await c.get('k')).toBeNull()
      const first: Array<string | undefined> = []
      c.setLogger({ error: (_m: string, meta?: { code?: string }) => first.push(meta?.code), warn: (_m: string, meta?: { code?: string }) => first.push(meta?.code) })
      expect(await c.get('k')).toBeNull()
      expect(await c.ping()).toBe(false)
      expect(await eventually(() => first.length > 0, 1000, 10), 'the attached logger heard nothing').toBe(true)
      for (const code of first) expect(CODES).toContain(code)
      c.setLogger(null)
      const n = first.length
      // null: the default, rate-limited warnings on stderr (caught here, so a green run prints nothing).
      const written: string[] = []
      const write = process.stderr.write
      process.stderr.write = ((chunk: string) => (written.push(String(chunk)), true)) as typeof process.stderr.write
      try {
        expect(await c.get('k')).toBeNull()
      } finally {
        process.stderr.write = write
      }
      expect(written.join('')).toMatch(/@medianest\/native-cache: |^$/)
      c.setLogger(false)
      expect(await c.get('k')).toBeNull()
      expect(first.length, 'a detached logger still got calls').toBe(n)
    } finally {
      await c.close()
    }
  })
})
