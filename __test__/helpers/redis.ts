// Real redis-server processes for the tests: each on a free loopback port,
// with nothing saved to disk, stopped when the test is done.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process'
import { createServer, connect } from 'node:net'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export function redisServerBinary(): string {
  const bin = process.env.REDIS_SERVER_BIN ?? 'redis-server'
  try {
    execFileSync(bin, ['--version'], { stdio: 'ignore' })
  } catch {
    throw new Error(`redis-server not found (looked for ${bin}); install it or set REDIS_SERVER_BIN`)
  }
  return bin
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer()
    srv.unref()
    srv.on('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address()
      const port = typeof addr === 'object' && addr ? addr.port : 0
      srv.close(() => resolve(port))
    })
  })
}

export function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1')
    s.once('connect', () => {
      s.destroy()
      resolve(true)
    })
    s.once('error', () => resolve(false))
  })
}

export interface RedisProcess {
  port: number
  url: string
  /** Starts the server again on the same port (after stop or kill). */
  start(): Promise<void>
  /** Graceful stop; data is lost (nothing is saved). */
  stop(): Promise<void>
  /** Sends a signal: SIGKILL, SIGSTOP, SIGCONT. */
  signal(sig: NodeJS.Signals): void
}

export interface StartRedisOptions {
  /**
   * Serve TLS only: the chosen port becomes `--tls-port` and the plain port is
   * off (`--port 0`); `url` is then `rediss://`. The certificate arguments
   * (`--tls-cert-file`, …) go in `extraArgs`.
   */
  tlsOnly?: boolean
}

export async function startRedis(
  extraArgs: string[] = [],
  fixedPort?: number,
  options: StartRedisOptions = {},
): Promise<RedisProcess> {
  const bin = redisServerBinary()
  const dir = mkdtempSync(join(tmpdir(), 'native-cache-redis-'))
  const port = fixedPort ?? (await freePort())
  let child: ChildProcess | null = null
  let exited: Promise<void> = Promise.resolve()
  /** Set when a kill was sent: start() first waits for that process to be gone. */
  let dying: Promise<void> | null = null

  const running = () => child !== null && child.exitCode === null && child.signalCode === null

  async function start(): Promise<void> {
    if (dying) await dying
    dying = null
    if (running()) return
    for (let attempt = 0; attempt < 50; attempt++) {
      const portArgs = options.tlsOnly ? ['--port', '0', '--tls-port', String(port)] : ['--port', String(port)]
      child = spawn(
        bin,
        [...portArgs, '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, ...extraArgs],
        { stdio: 'ignore' },
      )
      const proc = child
      let gone = false
      exited = new Promise<void>((r) =>
        proc.once('exit', () => {
          gone = true
          r()
        }),
      )
      for (let i = 0; i < 100 && !gone; i++) {
        if ((await canConnect(port)) && !gone) return
        await new Promise((r) => setTimeout(r, 20))
      }
      proc.kill('SIGKILL')
      await new Promise((r) => setTimeout(r, 100))
    }
    throw new Error(`redis-server did not start on port ${port}`)
  }

  async function stop(): Promise<void> {
    const proc = child
    child = null
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return
    proc.kill('SIGCONT')
    proc.kill('SIGKILL')
    await exited
  }

  await start()
  return {
    port,
    url: `${options.tlsOnly ? 'rediss' : 'redis'}://127.0.0.1:${port}`,
    start,
    stop: async () => {
      await stop()
    },
    signal(sig) {
      if (sig === 'SIGKILL' || sig === 'SIGTERM') {
        dying = exited
        child?.kill('SIGCONT')
      }
      child?.kill(sig)
    },
    // Cleanup of the temp dir when the process is finally stopped.
    ...{ [Symbol.for('dir')]: dir },
  } as RedisProcess
}

export async function stopRedis(r: RedisProcess | undefined): Promise<void> {
  if (!r) return
  await r.stop()
  const dir = (r as unknown as Record<symbol, string>)[Symbol.for('dir')]
  if (dir) rmSync(dir, { recursive: true, force: true })
}

/** Polls `check` until it returns true or `ms` pass; returns whether it did. */
export async function eventually(check: () => boolean | Promise<boolean>, ms = 2000, every = 5): Promise<boolean> {
  const end = Date.now() + ms
  for (;;) {
    if (await check()) return true
    if (Date.now() > end) return false
    await new Promise((r) => setTimeout(r, every))
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
