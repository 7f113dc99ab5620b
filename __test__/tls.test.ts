// Issue 8, defect 1: TLS against real TLS-only redis-servers, with a CA and
// certificates made by openssl at test time. Every method round-trips its
// bytes over TLS (checked with a raw ioredis TLS client), L1 stays coherent,
// mutual TLS works, and every way a handshake can fail (wrong CA, no client
// certificate, wrong name) gives failure results within the bound and a
// logger message naming the certificate problem. No output says "panicked".
import { describe, it, expect, beforeAll, afterAll, afterEach } from 'vitest'
import Redis from 'ioredis'
import { execFile } from 'node:child_process'
import { join } from 'node:path'
import { CacheService } from '../index.js'
import { stopRedis, eventually, type RedisProcess } from './helpers/redis'
import { makePki, startTlsRedis, type TestPki } from './helpers/tls'
import { expectFailureResults } from './helpers/failure-results'

const TIMEOUT = 500
// Scheduling slack on a shared 2-core machine; the bound under test is TIMEOUT.
const MARGIN = 500
const CODES = ['ERR_CACHE_TIMEOUT', 'ERR_CACHE_UNAVAILABLE', 'ERR_CACHE_SERVER', 'ERR_CACHE_PROTOCOL', 'ERR_CACHE_CLOSED']
const CERT_PROBLEM = /certificate|UnknownIssuer|NotValidForName|BadSignature/i

let pki: TestPki
let server: RedisProcess // localhost cert, no client certificates
let mutual: RedisProcess // localhost cert, client certificates required
let named: RedisProcess // cert for DNS:redis.test only

beforeAll(async () => {
  pki = makePki()
  server = await startTlsRedis(pki)
  mutual = await startTlsRedis(pki, { authClients: true })
  named = await startTlsRedis(pki, { pair: pki.named })
})
afterAll(async () => {
  await stopRedis(server)
  await stopRedis(mutual)
  await stopRedis(named)
  pki?.cleanup()
})

const rawClients: Redis[] = []
/** ioredis over TLS, straight to the server: how bytes in Redis are checked. */
function rawTls(port: number, db = 0, tls: Record<string, unknown> = {}) {
  const r = new Redis({ host: '127.0.0.1', port, db, tls: { ca: pki.ca, ...tls }, lazyConnect: false, maxRetriesPerRequest: 1 })
  r.on('error', () => {})
  rawClients.push(r)
  return r
}

interface LogEntry {
  level: string
  message: string
  meta: unknown
}
const open: CacheService[] = []
function instance(opts: ConstructorParameters<typeof CacheService>[0]) {
  const logs: LogEntry[] = []
  const push = (level: string) => (message: string, meta?: unknown) => logs.push({ level, message: String(message), meta })
  const c = new CacheService({
    commandTimeoutMs: TIMEOUT,
    local: { maxTtl: 3600 },
    logger: { error: push('error'), warn: push('warn'), info: () => {}, debug: () => {} },
    ...opts,
  })
  open.push(c)
  return { c, logs }
}
afterEach(async () => {
  await Promise.all(open.splice(0).map((c) => c.close()))
  for (const r of rawClients.splice(0)) r.disconnect()
})

async function connected(c: CacheService) {
  expect(await eventually(() => c.ping(), 5000, 50), 'the instance never answered PING over TLS').toBe(true)
}

/** Every method of the table over TLS, with the bytes and TTLs checked in Redis itself. */
async function methodTable(c: CacheService, raw: Redis, p: string) {
  await connected(c)
  const value = { s: 'tls ✓', n: 1.5, a: [1, null, true], u: '\u2028', nested: { k: 'v' } }
  await c.set(`${p}:obj`, value, 120)
  expect(await raw.get(`${p}:obj`)).toBe(JSON.stringify(value))
  const pttl = await raw.pttl(`${p}:obj`)
  expect(pttl).toBeGreaterThan(110_000)
  expect(pttl).toBeLessThanOrEqual(120_000)
  expect(await c.get(`${p}:obj`)).toEqual(value)
  expect(await c.get(`${p}:obj`)).toEqual(value)
  expect(await c.exists(`${p}:obj`)).toBe(true)
  expect(await c.exists(`${p}:missing`)).toBe(false)
  const ttl = await c.ttl(`${p}:obj`)
  expect(ttl).toBeGreaterThan(110)
  expect(ttl).toBeLessThanOrEqual(120)
  expect(await c.ttl(`${p}:missing`)).toBe(-2)
  await raw.set(`${p}:forever`, JSON.stringify('x'))
  expect(await c.ttl(`${p}:forever`)).toBe(-1)

  await c.del(`${p}:obj`)
  expect(await raw.exists(`${p}:obj`)).toBe(0)
  expect(await c.get(`${p}:obj`)).toBeNull()

  let calls = 0
  const factory = async () => {
    calls += 1
    return { made: 'by factory', n: calls }
  }
  expect(await c.getOrSet(`${p}:gos`, factory, 60)).toEqual({ made: 'by factory', n: 1 })
  expect(await c.getOrSet(`${p}:gos`, factory, 60)).toEqual({ made: 'by factory', n: 1 })
  expect(calls).toBe(1)
  expect(await raw.get(`${p}:gos`)).toBe(JSON.stringify({ made: 'by factory', n: 1 }))

  await c.mset({ [`${p}:m1`]: 1, [`${p}:m2`]: 'two', [`${p}:m3`]: [3] }, 60)
  expect(await raw.mget(`${p}:m1`, `${p}:m2`, `${p}:m3`)).toEqual(['1', '"two"', '[3]'])
  const mttl = await raw.pttl(`${p}:m2`)
  expect(mttl).toBeGreaterThan(50_000)
  expect(mttl).toBeLessThanOrEqual(60_000)
  expect(await c.mget([`${p}:m1`, `${p}:missing`, `${p}:m2`, `${p}:m3`])).toEqual([1, null, 'two', [3]])

  await c.invalidatePattern(`${p}:m*`)
  expect(await raw.exists(`${p}:m1`, `${p}:m2`, `${p}:m3`)).toBe(0)
  expect(await raw.exists(`${p}:gos`)).toBe(1)
  expect(await c.mget([`${p}:m1`, `${p}:m2`])).toEqual([null, null])

  const info = await c.getInfo()
  expect(info.keyCount).toBe(await raw.dbsize())
  expect(info.keyCount).toBeGreaterThan(0)
  expect(info.memoryUsage).toMatch(/^\d+(\.\d+)?[BKMG]$/)

  await c.clear()
  expect(await raw.dbsize()).toBe(0)
  expect(await c.get(`${p}:gos`)).toBeNull()
}

/** Each call resolves to its failure result within the bound, twice over (first connect, then retries). */
async function failsWithinBound(c: CacheService) {
  for (let round = 0; round < 2; round++) await expectFailureResults(c, TIMEOUT + MARGIN)
}

/** The logger names the certificate problem (rustls' or OpenSSL's words), with a stable code. */
async function certificateProblemLogged(logs: LogEntry[]) {
  const named = await eventually(() => logs.some((l) => CERT_PROBLEM.test(l.message)), 3000, 50)
  expect(named, `no logger message names the certificate problem; got: ${JSON.stringify(logs.map((l) => l.message).slice(0, 5))}`).toBe(true)
  const codes = logs.map((l) => (l.meta as { code?: string } | undefined)?.code)
  expect(codes.filter((code) => code !== undefined).length, 'logger meta carries no code').toBeGreaterThan(0)
  for (const code of codes) if (code !== undefined) expect(CODES).toContain(code)
}

describe('the whole method table over TLS', () => {
  it('tls: { ca } as a PEM string', async () => {
    const { c } = instance({ host: '127.0.0.1', port: server.port, db: 1, tls: { ca: pki.ca } })
    await methodTable(c, rawTls(server.port, 1), 'pem')
  })

  it('tls: { ca } as a Buffer', async () => {
    const { c } = instance({ host: '127.0.0.1', port: server.port, db: 2, tls: { ca: Buffer.from(pki.ca) } })
    await methodTable(c, rawTls(server.port, 2), 'buf')
  })

  it('a rediss:// URL (with its db) plus tls: { ca }', async () => {
    const { c } = instance({ url: `rediss://127.0.0.1:${server.port}/3`, tls: { ca: pki.ca } })
    await methodTable(c, rawTls(server.port, 3), 'url')
  })

  it("L1 stays coherent over TLS: another client's write is seen within 100 ms", async () => {
    const { c } = instance({ host: '127.0.0.1', port: server.port, db: 4, tls: { ca: pki.ca } })
    const raw = rawTls(server.port, 4)
    await connected(c)
    for (const [i, next] of [JSON.stringify('new'), null].entries()) {
      const key = `coh:${i}`
      await raw.set(key, JSON.stringify('old'))
      // L1 fills on a key's second read; the third is a hit.
      expect(await c.get(key)).toBe('old')
      expect(await c.get(key)).toBe('old')
      const hits = c.stats().local.hits
      expect(await c.get(key)).toBe('old')
      expect(c.stats().local.hits, `${key} should be an L1 hit`).toBe(hits + 1)
      if (next === null) await raw.del(key)
      else await raw.set(key, next)
      const started = performance.now()
      const expected = next === null ? null : JSON.parse(next)
      const ok = await eventually(async () => (await c.get(key)) === expected, 2000, 2)
      const took = performance.now() - started
      expect(ok, `${key} never became ${String(expected)}`).toBe(true)
      expect(took, `${key} took ${took.toFixed(1)} ms`).toBeLessThan(100)
    }
  })
})

describe('mutual TLS (the server requires a client certificate)', () => {
  it('{ ca, cert, key }: the method table works', async () => {
    const { c } = instance({
      host: '127.0.0.1',
      port: mutual.port,
      tls: { ca: pki.ca, cert: pki.client.cert, key: Buffer.from(pki.client.key) },
    })
    await methodTable(c, rawTls(mutual.port, 0, { cert: pki.client.cert, key: pki.client.key }), 'mtls')
  })

  it('without a client certificate: failure results within the bound, nothing lands', async () => {
    const { c, logs } = instance({ host: '127.0.0.1', port: mutual.port, tls: { ca: pki.ca } })
    await failsWithinBound(c)
    const raw = rawTls(mutual.port, 0, { cert: pki.client.cert, key: pki.client.key })
    expect(await raw.exists('k', 'j')).toBe(0)
    expect(logs.length, 'the logger heard nothing').toBeGreaterThan(0)
  })
})

describe('certificate checks', () => {
  it('a wrong CA: failure results within the bound, and the logger names the certificate problem', async () => {
    const { c, logs } = instance({ host: '127.0.0.1', port: server.port, db: 5, tls: { ca: pki.otherCa } })
    await failsWithinBound(c)
    await certificateProblemLogged(logs)
    expect(await rawTls(server.port, 5).dbsize()).toBe(0)
  })

  it('tls: true (system roots) against a private CA: failure results within the bound, certificate problem logged', async () => {
    const { c, logs } = instance({ host: '127.0.0.1', port: server.port, db: 5, tls: true })
    await failsWithinBound(c)
    await certificateProblemLogged(logs)
  })

  it('rejectUnauthorized: false connects without a CA', async () => {
    const { c } = instance({ host: '127.0.0.1', port: server.port, db: 6, tls: { rejectUnauthorized: false } })
    await methodTable(c, rawTls(server.port, 6), 'noverify')
  })

  it("servername: 'redis.test' with host 127.0.0.1 against the redis.test certificate works", async () => {
    const { c } = instance({ host: '127.0.0.1', port: named.port, db: 1, tls: { ca: pki.ca, servername: 'redis.test' } })
    await methodTable(c, rawTls(named.port, 1, { servername: 'redis.test' }), 'sni')
  })

  it('without servername the redis.test certificate does not match 127.0.0.1: failure results, problem logged', async () => {
    const { c, logs } = instance({ host: '127.0.0.1', port: named.port, db: 2, tls: { ca: pki.ca } })
    await failsWithinBound(c)
    await certificateProblemLogged(logs)
    expect(await rawTls(named.port, 2, { servername: 'redis.test' }).dbsize()).toBe(0)
  })
})

describe('no panic', () => {
  // A Rust panic prints to the process's own stderr (fd 2), which no in-process
  // hook sees: run the TLS paths in a child and read what it printed.
  it('TLS use, good and bad, prints no Rust panic and the child gets correct results', async () => {
    const script = `
      const { CacheService } = require(${JSON.stringify(join(__dirname, '..', 'index.js'))})
      const fs = require('node:fs')
      const ca = fs.readFileSync(${JSON.stringify(pki.caFile)}, 'utf8')
      const other = fs.readFileSync(${JSON.stringify(pki.otherCaFile)}, 'utf8')
      const quiet = { error() {}, warn() {}, info() {}, debug() {} }
      const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
      ;(async () => {
        const opts = { commandTimeoutMs: 400, logger: quiet }
        const good = new CacheService({ url: 'rediss://127.0.0.1:${server.port}/7', tls: { ca }, ...opts })
        const wrongCa = new CacheService({ host: '127.0.0.1', port: ${server.port}, tls: { ca: other }, ...opts })
        const noCert = new CacheService({ host: '127.0.0.1', port: ${mutual.port}, tls: { ca }, ...opts })
        const systemRoots = new CacheService({ url: 'rediss://127.0.0.1:${server.port}', ...opts })
        let pong = false
        for (let i = 0; i < 50 && !pong; i++) if (!(pong = await good.ping())) await sleep(100)
        await good.set('child:k', { v: 1 })
        const v = await good.get('child:k')
        const bad = await Promise.all([wrongCa.ping(), noCert.ping(), systemRoots.ping(), wrongCa.get('x')])
        await sleep(500)
        const bad2 = await Promise.all([wrongCa.ping(), noCert.ping(), systemRoots.ping()])
        await Promise.all([good, wrongCa, noCert, systemRoots].map((c) => c.close()))
        process.stdout.write(JSON.stringify({ pong, v, bad, bad2 }))
      })().catch((e) => { console.error('child failed', e); process.exit(1) })
    `
    const { stdout, stderr, code } = await new Promise<{ stdout: string; stderr: string; code: number | null }>(
      (resolve) => {
        execFile(process.execPath, ['-e', script], { timeout: 25_000, env: { ...process.env } }, (err, stdout, stderr) =>
          resolve({ stdout, stderr, code: err ? ((err as { code?: number }).code ?? -1) : 0 }),
        )
      },
    )
    expect(stderr).not.toMatch(/panicked/)
    expect(code, stderr).toBe(0)
    expect(JSON.parse(stdout)).toEqual({ pong: true, v: { v: 1 }, bad: [false, false, false, null], bad2: [false, false, false] })
    expect(await rawTls(server.port, 7).get('child:k')).toBe('{"v":1}')
  }, 40_000)
})
