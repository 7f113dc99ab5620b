// The swap proof: the packed package, installed into a fresh project that
// stands in for the backend, type-checks strictly (moduleResolution nodenext,
// node16, bundler, and the backend's node10, every public type imported), is
// imported from plain ESM (.mjs), and runs its own vitest suite under the
// backend's pool settings (threads, one, isolate: false) and under forks: the swapped
// singleton, a controller test on `testCacheModule`, the backend's replacement
// cache test (examples/backend, the contract in both modes), and a broken
// service that must fail the contract.
import { describe, it, expect, beforeAll, afterAll, inject } from 'vitest'
import { execFileSync, spawnSync } from 'node:child_process'
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, mkdirSync } from 'node:fs'
import { join, resolve } from 'node:path'

const root = resolve(__dirname, '..')
const port = inject('redisPort')
const bin = (pkg: string, file: string) => join(root, 'node_modules', pkg, file)

const glibcRuntime = () => (process.report.getReport() as { header: { glibcVersionRuntime?: string } }).header.glibcVersionRuntime

function run(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = {}) {
  return execFileSync(cmd, args, {
    cwd,
    env: { ...process.env, ...env },
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    timeout: 180_000,
  })
}

describe('swap into a TypeScript backend', () => {
  let work: string
  let platform: string
  beforeAll(() => {
    // Inside the repo so the consumer finds vitest and typescript up the tree,
    // while the package itself resolves from the consumer's own node_modules.
    mkdirSync(join(root, '.tmp'), { recursive: true })
    work = mkdtempSync(join(root, '.tmp', 'consumer-'))
    // As published: the main package carries no binary; this platform's
    // package (npm/<platform>, filled as `napi artifacts` does) carries it.
    run('npm', ['pack', '--pack-destination', work], root)
    // The running Node's platform (as native.js names it): a checkout may hold
    // binaries of several (npm run build:musl, build:arm64).
    const { platform: os, arch } = process
    platform = os === 'linux' ? `linux-${arch}-${glibcRuntime() ? 'gnu' : 'musl'}` : os === 'win32' ? `win32-${arch}-msvc` : `${os}-${arch}`
    const binary = `native-cache.${platform}.node`
    cpSync(join(root, 'npm', platform), join(work, 'platform'), { recursive: true })
    cpSync(join(root, binary), join(work, 'platform', binary))
    run('npm', ['pack', '--pack-destination', work], join(work, 'platform'))
    const tarball = (prefix: string) => join(work, readdirSync(work).find((f) => f.startsWith(prefix) && f.endsWith('.tgz'))!)
    cpSync(join(root, '__test__', 'consumer'), join(work, 'app'), { recursive: true })
    // The replacement test the migration page hands the backend, run as written.
    cpSync(join(root, 'examples', 'backend', 'cache.service.test.ts'), join(work, 'app', 'test', 'backend.cache.service.test.ts'))
    // The platform package as an optional dependency, as the published package lists it:
    // npm then installs it only where its os, cpu and libc match.
    const install = ['install', '--no-audit', '--no-fund', '--strict-allow-scripts']
    run('npm', [...install, tarball('medianest-native-cache-0')], join(work, 'app'))
    run('npm', [...install, '--save-optional', tarball(`medianest-native-cache-${platform}-`)], join(work, 'app'))
  }, 240_000)
  afterAll(() => {
    rmSync(work, { recursive: true, force: true })
  })

  it('the main tarball carries the loader and the testing entry, the platform tarball the binary', () => {
    const files = readdirSync(join(work, 'app', 'node_modules', '@medianest', 'native-cache'))
    expect(files).toEqual(expect.arrayContaining(['index.js', 'index.d.ts', 'native.js', 'binding.js', 'package.json', 'testing']))
    expect(files.some((f) => f.endsWith('.node'))).toBe(false)
    const binaries = readdirSync(join(work, 'app', 'node_modules', '@medianest', `native-cache-${platform}`))
    expect(binaries).toContain(`native-cache.${platform}.node`)
  })

  // tsconfig.json is NodeNext; node16, bundler and the backend's node10 beside it.
  it.each(['tsconfig.json', 'tsconfig.node16.json', 'tsconfig.bundler.json', 'tsconfig.node10.json'])('type-checks with tsc --noEmit --strict (%s)', (config) => {
    const tsc = spawnSync(process.execPath, [bin('typescript', 'bin/tsc'), '-p', config], { cwd: join(work, 'app'), encoding: 'utf8' })
    expect(tsc.status, tsc.stdout + tsc.stderr).toBe(0)
  }, 120_000)

  it('imports the named exports from an .mjs file and runs them', () => {
    const out = run(process.execPath, ['src/esm.mjs'], join(work, 'app'))
    expect(JSON.parse(out)).toEqual({
      got: { ok: true },
      made: 42,
      status: 'ok',
      closed: true,
      singleton: true,
      timeoutError: true,
      defaultHasClass: true,
    })
  })

  for (const pool of ['threads', 'forks']) {
    it(`its vitest suite under pool: '${pool}': all passes but the broken service's one contract check`, () => {
      const report = join(work, `report-${pool}.json`)
      const r = spawnSync(
        process.execPath,
        [bin('vitest', 'vitest.mjs'), 'run', '--config', `vitest.${pool}.config.mts`, '--reporter=json', `--outputFile=${report}`],
        {
          cwd: join(work, 'app'),
          env: { ...process.env, REDIS_URL: `redis://127.0.0.1:${port}/6`, CACHE_CONTRACT_REDIS_URL: `redis://127.0.0.1:${port}/7` },
          encoding: 'utf8',
          timeout: 180_000,
        },
      )
      expect(r.error).toBeUndefined()
      const results: Array<{ name: string; assertionResults: Array<{ fullName: string; status: string }> }> = JSON.parse(
        readFileSync(report, 'utf8'),
      ).testResults
      const byFile = Object.fromEntries(
        results.map((f) => [f.name.replace(/.*\/test\//, ''), f.assertionResults.map((t) => `${t.status}: ${t.fullName}`)]),
      )
      const failed = Object.values(byFile).flat().filter((t) => !t.startsWith('passed'))
      expect(failed, r.stdout.slice(-3000) + r.stderr.slice(-3000)).toEqual([
        expect.stringMatching(/^failed: broken service getOrSet: a cached 0, false, empty string or empty array is a hit/),
      ])
      expect(r.status).not.toBe(0)
      expect(byFile['cache.service.test.ts']).toHaveLength(2)
      expect(byFile['dashboard.controller.test.ts']).toHaveLength(4)
      const example = byFile['backend.cache.service.test.ts']
      expect(example.filter((t) => t.includes("('memory' mode)")).length).toBeGreaterThan(20)
      expect(example.filter((t) => t.includes("('redis' mode on redis://127.0.0.1")).length).toBeGreaterThan(20)
      expect(example).toContain('passed: cache.service exports the native service and its singleton')
      expect(byFile['broken-service.contract.test.ts'].length).toBeGreaterThan(20)
    }, 200_000)
  }
})
