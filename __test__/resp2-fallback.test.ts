// A server without HELLO (Redis 5): a proxy in front of a real server answers
// HELLO as Redis 5 does; the instance falls back to RESP2 (new connect path, db from the URL).
// Fails (never connects) with the fallback in link.rs turned off.
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { createServer, connect, type Server, type Socket } from 'node:net'
import Redis from 'ioredis'
import { CacheService } from '../index.js'
import { startRedis, stopRedis, eventually, type RedisProcess } from './helpers/redis'

let server: RedisProcess
let raw: Redis
let proxy: Server
let proxyPort = 0
let hellos = 0
const sockets = new Set<Socket>()

/** Length of the RESP array of bulk strings at the start of `buf`, and its first word; null if incomplete. */
function firstCommand(buf: Buffer): { len: number; name: string } | null {
  const text = buf.toString('latin1')
  let i = text.indexOf('\r\n')
  if (text[0] !== '*' || i < 0) return null
  const n = Number(text.slice(1, i))
  let pos = i + 2
  let name = ''
  for (let a = 0; a < n; a++) {
    const e = text.indexOf('\r\n', pos)
    if (e < 0) return null
    const l = Number(text.slice(pos + 1, e))
    const s = e + 2
    if (text.length < s + l + 2) return null
    if (a === 0) name = text.slice(s, s + l)
    pos = s + l + 2
  }
  return { len: pos, name }
}

beforeAll(async () => {
  server = await startRedis()
  raw = new Redis(server.port, '127.0.0.1')
  proxy = createServer((client) => {
    const up = connect(server.port, '127.0.0.1')
    sockets.add(client)
    sockets.add(up)
    let pending: Buffer | null = Buffer.alloc(0)
    client.on('data', (chunk: Buffer) => {
      if (pending === null) return void up.write(chunk)
      pending = Buffer.concat([pending, chunk])
      for (;;) {
        const cmd = firstCommand(pending)
        if (!cmd) return
        if (cmd.name.toUpperCase() === 'HELLO') {
          hellos++
          client.write('-ERR unknown command `HELLO`, with args beginning with: `3`, \r\n')
          pending = pending.subarray(cmd.len)
          continue
        }
        up.write(pending)
        pending = null
        return
      }
    })
    up.on('data', (c) => client.write(c))
    const end = () => {
      client.destroy()
      up.destroy()
    }
    client.on('close', end)
    up.on('close', end)
    client.on('error', end)
    up.on('error', end)
  })
  await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', () => r()))
  proxyPort = (proxy.address() as { port: number }).port
})
afterAll(async () => {
  for (const s of sockets) s.destroy()
  proxy?.close()
  raw?.disconnect()
  await stopRedis(server)
})

describe('a RESP2-only server', () => {
  it('connects without L1, says so once, and serves calls', async () => {
    const warns: string[] = []
    const cache = new CacheService({
      url: `redis://127.0.0.1:${proxyPort}/2`,
      logger: { error: (m: string) => warns.push(`error ${m}`), warn: (m: string) => warns.push(m), info: () => {}, debug: () => {} },
    })
    expect(await eventually(() => cache.ping(), 5000, 50)).toBe(true)
    await cache.set('r2:k', { a: 1 }, 60)
    for (let i = 0; i < 5; i++) expect(await cache.get('r2:k')).toEqual({ a: 1 })
    const db2 = new Redis({ port: server.port, host: '127.0.0.1', db: 2 })
    expect(await db2.get('r2:k')).toBe('{"a":1}')
    db2.disconnect()
    const list = String(await raw.call('CLIENT', 'LIST')).split('\n').filter((l) => / db=2 /.test(l))
    expect(hellos).toBeGreaterThan(0)
    expect(list.every((l) => l.trim().endsWith(' resp=2'))).toBe(true)
    expect(warns.filter((w) => /RESP2/.test(w))).toHaveLength(1)
    await cache.close()
  })
})
