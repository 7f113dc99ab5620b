// The benchmark still works: its CI-sized form runs every workload on every
// contender and writes its table and JSON. Nothing here is about speed.
import { describe, it, expect } from 'vitest'
import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'

const root = join(__dirname, '..')

describe('benchmark, quick form', () => {
  it('produces the full table and a results file', () => {
    const tsc = spawnSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', 'benchmark/original'], { cwd: root, encoding: 'utf8' })
    expect(tsc.status, tsc.stdout + tsc.stderr).toBe(0)
    const r = spawnSync(process.execPath, ['benchmark/run.mjs', '--quick'], { cwd: root, encoding: 'utf8', timeout: 600_000 })
    expect(r.status, r.stderr.slice(-2000)).toBe(0)
    for (const w of ['W1', 'W2', 'W3', 'W4', 'W5', 'W6', 'W7', 'W8', 'W9']) expect(r.stdout).toContain(`| ${w} `)
    for (const c of ['native', 'native-noL1', 'baseline', 'bentocache', 'node-redis-csc', 'lru-cache']) expect(r.stdout).toContain(c)
    expect(r.stdout).not.toMatch(/error:/)
    const file = /written: (\S+\.json)/.exec(r.stderr)?.[1]
    expect(file).toBeTruthy()
    const json = JSON.parse(readFileSync(file!, 'utf8'))
    expect(Object.keys(json.table)).toHaveLength(8)
    expect(json.table.W6.native.median).toBe(1)
  }, 620_000)
})
