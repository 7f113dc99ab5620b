// The swap proof: the packed package, installed into a fresh project that
// stands in for the backend, type-checks strictly and passes its own vitest
// suite under the backend's pool settings (threads, one, isolate: false) and
// under forks.
import { describe, it, expect, beforeAll, afterAll, inject } from 'vitest'
import { execFileSync } from 'node:child_process'
import { cpSync, mkdtempSync, readdirSync, rmSync, mkdirSync } from 'node:fs'
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
    // The platform package as an optional dependency, as the published package lists it:
    // npm then installs it only where its os, cpu and libc match.
    const install = ['install', '--no-audit', '--no-fund', '--strict-allow-scripts']
    run('npm', [...install, tarball('medianest-native-cache-0')], join(work, 'app'))
    run('npm', [...install, '--save-optional', tarball(`medianest-native-cache-${platform}-`)], join(work, 'app'))
  }, 240_000)
  afterAll(() => {
    rmSync(work, { recursive: true, force: true })
  })

  it('the main tarball carries the loader, the platform tarball the binary', () => {
    const files = readdirSync(join(work, 'app', 'node_modules', '@medianest', 'native-cache'))
    expect(files).toEqual(expect.arrayContaining(['index.js', 'index.d.ts', 'native.js', 'binding.js', 'package.json']))
    expect(files.some((f) => f.endsWith('.node'))).toBe(false)
    const binaries = readdirSync(join(work, 'app', 'node_modules', '@medianest', `native-cache-${platform}`))
    expect(binaries).toContain(`native-cache.${platform}.node`)
  })

  it('type-checks with tsc --noEmit --strict', () => {
    expect(() => run(process.execPath, [bin('typescript', 'bin/tsc'), '-p', 'tsconfig.json'], join(work, 'app'))).not.toThrow()
  })

  for (const pool of ['threads', 'forks']) {
    it(`its vitest suite passes under pool: '${pool}'`, () => {
      const out = run(process.execPath, [bin('vitest', 'vitest.mjs'), 'run', '--config', `vitest.${pool}.config.mts`], join(work, 'app'), {
        REDIS_URL: `redis://127.0.0.1:${port}/6`,
      })
      expect(out).toMatch(/2 passed/)
    }, 120_000)
  }
})
