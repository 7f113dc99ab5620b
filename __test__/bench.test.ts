// The benchmark still works: its CI-sized form runs every workload on every
// contender and writes its table and JSON. Nothing here is about speed.
import { describe, it, expect } from 'vitest'
import { spawn, spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'

const root = join(__dirname, '..')

/** Runs a command without blocking this worker's event loop (vitest's RPC times out after 60 s of a blocked loop). */
function run(args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, { cwd: root })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    const timer = setTimeout(() => child.kill('SIGKILL'), 600_000)
    child.on('close', (status) => {
      clearTimeout(timer)
      resolve({ status, stdout, stderr })
    })
  })
}

describe('benchmark, quick form', () => {
  it('produces the full table and a results file', async () => {
    const tsc = spawnSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', 'benchmark/original'], { cwd: root, encoding: 'utf8' })
    expect(tsc.status, tsc.stdout + tsc.stderr).toBe(0)
    const r = await run(['benchmark/run.mjs', '--quick'])
    expect(r.status, r.stderr.slice(-2000)).toBe(0)
    for (const w of ['W1', 'W2', 'W3', 'W4', 'W5', 'W6', 'W7', 'W8', 'W9', 'W12']) expect(r.stdout).toContain(`| ${w} `)
    for (const c of ['native', 'native-noL1', 'baseline', 'bentocache', 'node-redis-csc', 'lru-cache']) expect(r.stdout).toContain(c)
    expect(r.stdout).not.toMatch(/error:/)
    const file = /written: (\S+\.json)/.exec(r.stderr)?.[1]
    expect(file).toBeTruthy()
    const json = JSON.parse(readFileSync(file!, 'utf8'))
    expect(Object.keys(json.table)).toHaveLength(9)
    expect(json.table.W6.native.median).toBe(1)
    // W12: every contender's calls answered every key (a call with a null is reported, not timed).
    for (const c of ['native', 'native-noL1', 'baseline']) expect(json.table.W12[c].median, c).toBeGreaterThan(0)
    // W10/W11 (reduced sizes): every contender answered every caller with the right value.
    for (const w of ['W10', 'W11']) expect(r.stdout).toContain(`| ${w} `)
    const { W10, W11 } = json.fleet
    for (const c of ['native+lock', 'native', 'bentocache', 'baseline']) {
      expect(W10.contenders[c].callers, c).toBe(400)
      expect(W10.contenders[c].wrong, c).toBe(0)
    }
    expect(W10.contenders['native+lock'].runs).toBe(1)
    expect(W10.contenders.baseline.runs).toBe(400)
    for (const c of ['native', 'bentocache']) expect(W11.contenders[c].stale, c).toBe(W11.contenders[c].callers)
    expect(W11.contenders.baseline.fresh).toBe(W11.contenders.baseline.callers)
  }, 620_000)
})
