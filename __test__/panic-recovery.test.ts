// A panic in a background task (the connection supervisor, the executor) must
// never leave an instance dead (issue 8): calls keep settling within
// commandTimeoutMs, the task is restarted with backoff (a task panicking on
// every run must not spin a core and flood stderr), and the logger is told
// once per burst which task failed and why. Panics are injected with the
// test-only NATIVE_CACHE_TEST_PANIC in a child process, whose stderr (with
// the panic messages) is captured here instead of reaching the suite output.
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { startRedis, stopRedis, type RedisProcess } from './helpers/redis'

const CHILD = join(__dirname, 'fixtures', 'panic-child.cjs')
const TIMEOUT_MS = 200
/** Scheduling slack on a shared 2-core machine. */
const MARGIN_MS = 250

let server: RedisProcess

beforeAll(async () => {
  server = await startRedis()
})

afterAll(async () => {
  await stopRedis(server)
})

interface Round {
  at: number
  ms: number
  ok: boolean
}
interface Run {
  rounds: Round[]
  logs: { level: string; message: string; code?: string }[]
  /** Panic messages the child printed on stderr. */
  panics: number
  stderrHead: string
}

/** Runs the child for `runMs` with NATIVE_CACHE_TEST_PANIC=`spec`, counting "panicked" lines as they stream. */
function run(spec: string, runMs: number): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CHILD, server.url, String(runMs), String(TIMEOUT_MS)], {
      env: { ...process.env, NATIVE_CACHE_TEST_PANIC: spec },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderrHead = ''
    let panics = 0
    let partial = ''
    const killer = setTimeout(() => child.kill('SIGKILL'), runMs + 20_000)
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString('utf8')))
    // Streamed, not buffered: without backoff a child prints hundreds of MB.
    child.stderr.on('data', (c: Buffer) => {
      const text = partial + c.toString('utf8')
      if (stderrHead.length < 2000) stderrHead += text.slice(0, 2000 - stderrHead.length)
      const lines = text.split('\n')
      partial = lines.pop() ?? ''
      for (const l of lines) if (l.includes('panicked')) panics++
    })
    child.on('error', reject)
    child.on('close', (code) => {
      clearTimeout(killer)
      if (partial.includes('panicked')) panics++
      const last = stdout.trim().split('\n').pop() ?? ''
      let out: { rounds?: Round[]; logs?: Run['logs']; childError?: string }
      try {
        out = JSON.parse(last)
      } catch {
        reject(new Error(`child exited with ${code} without a result; stderr starts: ${stderrHead.slice(0, 500)}`))
        return
      }
      if (out.childError !== undefined) reject(new Error(`the child threw: ${out.childError}`))
      else resolve({ rounds: out.rounds ?? [], logs: out.logs ?? [], panics, stderrHead })
    })
  })
}

/** Every set+get pair settled within the bound (plus slack). */
function expectSettledWithinBound(r: Run) {
  const slow = r.rounds.filter((x) => x.ms > TIMEOUT_MS + MARGIN_MS)
  expect(slow, `pairs slower than ${TIMEOUT_MS} + ${MARGIN_MS} ms`).toEqual([])
}

/** The logger got exactly one clear message about `task`'s panic, with its text. */
function expectToldOnce(r: Run, what: string, task: string) {
  const told = r.logs.filter((l) => l.message.includes(`${what} failed with a panic`))
  expect(told, `logger messages: ${JSON.stringify(r.logs.slice(0, 5))}`).toHaveLength(1)
  expect(told[0].level).toBe('error')
  expect(told[0].code).toBe('ERR_CACHE_UNAVAILABLE')
  expect(told[0].message).toContain(`NATIVE_CACHE_TEST_PANIC: test panic in the ${task}`)
  expect(told[0].message).toContain('restarting it')
}

describe.each([
  ['supervisor', 'Redis connection supervisor'],
  ['executor', 'Redis executor'],
])('the %s panics', (task, what) => {
  it('on its first 6 runs: calls settle within the bound while it is down, then the instance recovers', async () => {
    // With backoff the task is down for 10 + 20 + … + 320 = 630 ms, longer than the bound.
    const r = await run(`${task}:6`, 2500)
    expectSettledWithinBound(r)
    const firstOk = r.rounds.findIndex((x) => x.ok)
    expect(firstOk, 'no set/get round trip ever succeeded').not.toBe(-1)
    expect(firstOk, 'the first round trip succeeded: the task was never down').toBeGreaterThan(0)
    // Calls made while it was down failed (within the bound, checked above)…
    expect(r.rounds.slice(0, firstOk).every((x) => !x.ok)).toBe(true)
    expect(r.rounds[firstOk].at).toBeGreaterThan(400)
    // …and once it was back, every round trip worked.
    const after = r.rounds.slice(firstOk)
    expect(after.filter((x) => !x.ok)).toEqual([])
    expect(after.length).toBeGreaterThan(20)
    expect(r.panics, "panic messages on the child's stderr").toBe(6)
    expectToldOnce(r, what, task)
  })

  it('on every run: a bounded number of panics over 2 s, calls settle within the bound, the logger is told once', async () => {
    const r = await run(`${task}:always`, 2000)
    // 10 ms doubling to 1 s: about 8 runs in 2 s (without backoff: hundreds of thousands).
    expect(r.panics, "panic messages on the child's stderr").toBeGreaterThanOrEqual(3)
    expect(r.panics).toBeLessThanOrEqual(15)
    expect(r.rounds.length).toBeGreaterThan(20)
    expect(r.rounds.filter((x) => x.ok)).toEqual([])
    expectSettledWithinBound(r)
    expectToldOnce(r, what, task)
  })
})
