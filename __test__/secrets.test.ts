// No error, log line, metric or stats() field contains a password or a URL's
// userinfo: a raw base64 password (as `openssl rand -base64 24` makes, with
// `/` and `+`) in a URL that does not parse is shown as redis://:***@host:port,
// with how to fix it (percent-encode the password).
import { describe, it, expect, afterAll } from 'vitest'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { CacheService, cacheService } from '../index.js'
import { freePort, sleep } from './helpers/redis'

const PASSWORD = '/mDYUq+Lk9/x7Zr2pQ+w3VbN8sT1uE4h'
const SECRETS = [PASSWORD, encodeURIComponent(PASSWORD), 'mDYUq', 'Lk9/x7']

function leaks(text: string): string[] {
  return SECRETS.filter((s) => text.includes(s))
}

/** Everything a logger received, as text. */
function recorder() {
  const lines: string[] = []
  const write = (message: unknown, meta?: unknown) => {
    lines.push(String(message))
    if (meta !== undefined) {
      lines.push(JSON.stringify(meta, (_k, v) => (v instanceof Error ? { message: v.message, code: (v as { code?: string }).code } : v)))
    }
  }
  return { logger: { error: write, warn: write, info: write, debug: write }, lines }
}

const METHODS: Array<[string, (c: CacheService) => Promise<unknown>]> = [
  ['get', (c) => c.get('k')],
  ['set', (c) => c.set('k', 1)],
  ['del', (c) => c.del('k')],
  ['getOrSet', (c) => c.getOrSet('k', () => 1)],
  ['invalidatePattern', (c) => c.invalidatePattern('k*')],
  ['exists', (c) => c.exists('k')],
  ['ttl', (c) => c.ttl('k')],
  ['ping', (c) => c.ping()],
  ['mget', (c) => c.mget(['k'])],
  ['mset', (c) => c.mset({ k: 1 })],
  ['getInfo', (c) => c.getInfo()],
  ['clear', (c) => c.clear()],
]

describe('a malformed URL with a raw base64 password', () => {
  const url = `redis://:${PASSWORD}@cache.internal:7000`

  it('the constructor throws a TypeError that redacts it and says to percent-encode', () => {
    let error: unknown
    try {
      new CacheService({ url })
    } catch (e) {
      error = e
    }
    expect(error).toBeInstanceOf(TypeError)
    const message = (error as Error).message
    expect(leaks(message)).toEqual([])
    expect(message).toContain('redis://:***@cache.internal:7000')
    expect(message).toContain('percent-encode')
  })

  it('cluster seed nodes too', () => {
    expect(() => new CacheService({ cluster: { nodes: [url] } })).toThrow(/percent-encode/)
    try {
      new CacheService({ cluster: { nodes: [url] } })
    } catch (e) {
      expect(leaks((e as Error).message)).toEqual([])
    }
  })

  it('from REDIS_URL_FILE, the lazy singleton: every method rejects with the redacted message', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'secrets-'))
    const file = join(dir, 'redis_url')
    writeFileSync(file, `${url}\n`)
    const saved = { ...process.env }
    process.env.REDIS_URL_FILE = file
    try {
      for (const [name, call] of METHODS) {
        const error = await call(cacheService).then(
          () => null,
          (e: Error) => e,
        )
        expect(error, name).toBeInstanceOf(TypeError)
        expect(leaks(error!.message), name).toEqual([])
        expect(error!.message, name).toContain('redis://:***@cache.internal:7000')
      }
      expect(() => cacheService.stats()).toThrow(/\*\*\*/)
    } finally {
      process.env = saved
    }
  })
})

describe('a working URL with a password, to a server that is not there', () => {
  const open: CacheService[] = []
  afterAll(async () => {
    for (const c of open) await c.close()
  })

  it('no log line, stats() field, metric or method result holds the password', async () => {
    const port = await freePort()
    const { logger, lines } = recorder()
    const variants = [
      { url: `redis://:${encodeURIComponent(PASSWORD)}@127.0.0.1:${port}/0`, commandTimeoutMs: 100, logger },
      { host: '127.0.0.1', port, password: PASSWORD, commandTimeoutMs: 100, logger },
      { cluster: { nodes: [`127.0.0.1:${port}`] }, password: PASSWORD, commandTimeoutMs: 100, logger },
    ]
    for (const options of variants) {
      const c = new CacheService(options)
      open.push(c)
      const results = []
      for (const [, call] of METHODS) results.push(await call(c).catch((e: Error) => e.message))
      await sleep(300)
      for (const [, call] of METHODS) results.push(await call(c).catch((e: Error) => e.message))
      expect(leaks(JSON.stringify(results))).toEqual([])
      expect(leaks(JSON.stringify(c.stats()))).toEqual([])
      expect(leaks(c.metrics())).toEqual([])
    }
    expect(lines.length).toBeGreaterThan(0)
    expect(leaks(lines.join('\n'))).toEqual([])
  })

  it('the default stderr logger too', async () => {
    const port = await freePort()
    const written: string[] = []
    const original = process.stderr.write.bind(process.stderr)
    process.stderr.write = ((chunk: string | Uint8Array) => {
      written.push(String(chunk))
      return true
    }) as typeof process.stderr.write
    try {
      const c = new CacheService({ url: `redis://user:${encodeURIComponent(PASSWORD)}@127.0.0.1:${port}`, commandTimeoutMs: 100 })
      open.push(c)
      await c.get('k')
      await sleep(200)
      await c.set('k', 1)
    } finally {
      process.stderr.write = original
    }
    expect(written.join('')).toContain('@medianest/native-cache')
    expect(leaks(written.join(''))).toEqual([])
  })
})
