// Issue 8, defect 7: a passing condition never turns L1 off for good. A NOAUTH
// reply (the server wants a password the instance does not have yet) is not
// "no RESP3", and a BUSY reply to CLIENT TRACKING (a long script running) is
// not "tracking refused": once the condition passes, the same instance serves
// from L1 again, coherently, by itself.
import { describe, it, expect, afterEach } from 'vitest'
import Redis from 'ioredis'
import { CacheService } from '../index.js'
import { startRedis, stopRedis, eventually, sleep, type RedisProcess } from './helpers/redis'

const TIMEOUT = 300
const MARGIN = 400

let server: RedisProcess | undefined
let cache: CacheService | undefined
const rawClients: Redis[] = []
afterEach(async () => {
  await cache?.close()
  cache = undefined
  for (const r of rawClients.splice(0)) r.disconnect()
  await stopRedis(server)
  server = undefined
})

function rawClient(port: number, password?: string) {
  const r = new Redis({ port, host: '127.0.0.1', password, maxRetriesPerRequest: 1 }).on('error', () => {})
  rawClients.push(r)
  return r
}

function recordingLogger() {
  const logs: string[] = []
  const push = (m: string) => logs.push(String(m))
  return { logs, logger: { error: push, warn: push, info: () => {}, debug: () => {} } }
}

/** L1 is serving: enabled, repeated gets are local hits, and another writer's change shows within 100 ms. */
async function l1Serving(c: CacheService, raw: Redis, key: string, logs: string[]) {
  const serving = await eventually(
    async () => {
      if (!(await c.ping())) return false
      await c.set(key, 'v1')
      if ((await c.get(key)) !== 'v1') return false
      const hits = c.stats().local.hits
      await c.get(key)
      await c.get(key)
      return c.stats().local.enabled && c.stats().local.hits >= hits + 2
    },
    10_000,
    100,
  )
  const s = c.stats()
  expect(
    serving,
    `L1 never served again: local.enabled=${s.local.enabled}, hits=${s.local.hits}; logger: ${JSON.stringify(logs.slice(-4))}`,
  ).toBe(true)
  await raw.set(key, JSON.stringify('v2'))
  const started = performance.now()
  expect(await eventually(async () => (await c.get(key)) === 'v2', 2000, 2)).toBe(true)
  expect(performance.now() - started).toBeLessThan(100)
}

describe('NOAUTH while the server wants a password, then the password is removed', () => {
  it('calls fail with failure results; after CONFIG SET requirepass "" the instance serves from L1 again', async () => {
    server = await startRedis(['--requirepass', 'secret'])
    const admin = rawClient(server.port, 'secret')
    const { logs, logger } = recordingLogger()
    cache = new CacheService({ url: server.url, commandTimeoutMs: TIMEOUT, local: { maxTtl: 3600 }, logger })
    const c = cache
    for (const [name, call, expected] of [
      ['ping', () => c.ping(), false],
      ['set', () => c.set('auth:k', 'must not land'), undefined],
      ['get', () => c.get('auth:k'), null],
      ['exists', () => c.exists('auth:k'), false],
    ] as Array<[string, () => Promise<unknown>, unknown]>) {
      const started = performance.now()
      expect(await call(), name).toEqual(expected)
      expect(performance.now() - started, name).toBeLessThan(TIMEOUT + MARGIN)
    }
    expect(await admin.exists('auth:k')).toBe(0)
    expect(await eventually(() => logs.length > 0, 2000, 20), 'the logger heard nothing').toBe(true)
    // Let the instance go through a few failed connection attempts first.
    await sleep(500)

    await admin.config('SET', 'requirepass', '')
    await l1Serving(c, admin, 'auth:k', logs)
  }, 30_000)
})

describe('BUSY while a long script runs, then SCRIPT KILL', () => {
  it('an instance created while the server answers BUSY serves from L1 once the script is killed', async () => {
    server = await startRedis(['--busy-reply-threshold', '50'])
    const scripted = rawClient(server.port)
    const admin = rawClient(server.port)
    const probe = rawClient(server.port)
    await Promise.all([scripted.ping(), admin.ping(), probe.ping()])
    // Never returns by itself; reads only, so SCRIPT KILL can stop it.
    const script = scripted
      .eval("local t = redis.call('TIME') while true do end", 0)
      .catch((e: Error) => e)
    // Wait until other clients get BUSY.
    const busy = await eventually(
      async () => {
        const r = await probe.get('x').catch((e: Error) => e)
        return r instanceof Error && /BUSY/.test(r.message)
      },
      3000,
      20,
    )
    expect(busy, 'the server never answered BUSY').toBe(true)

    const { logs, logger } = recordingLogger()
    cache = new CacheService({ url: server.url, commandTimeoutMs: TIMEOUT, local: { maxTtl: 3600 }, logger })
    const c = cache
    // Its connection attempts meet the busy server; calls still settle within the bound.
    for (let i = 0; i < 3; i++) {
      const started = performance.now()
      expect(await c.get('busy:k')).toBeNull()
      expect(performance.now() - started).toBeLessThan(TIMEOUT + MARGIN)
      await sleep(100)
    }

    await admin.script('KILL')
    expect(await script).toBeInstanceOf(Error)
    await l1Serving(c, admin, 'busy:k', logs)
  }, 30_000)
})
