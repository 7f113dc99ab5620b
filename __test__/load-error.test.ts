// Issue 12: on a platform without a binary, importing the package fails with an
// error that names the platform, the package expected and what to do (native.js),
// not the loader's bare "Cannot find native binding". Each case imports a copy of
// the main package as published (no *.node, no Cargo.toml) in a child process;
// a preload can make that child look like another machine (CPU, or musl libc).
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { spawnSync } from 'node:child_process'
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'

const root = resolve(__dirname, '..')
const NAME = '@medianest/native-cache'

// FAKE_ARCH: process.arch; FAKE_MUSL: binding.js reads /usr/bin/ldd, native.js the process report.
const PRELOAD = `
const fs = require('node:fs')
if (process.env.FAKE_ARCH) Object.defineProperty(process, 'arch', { value: process.env.FAKE_ARCH })
if (process.env.FAKE_MUSL) {
  const read = fs.readFileSync
  fs.readFileSync = function (file, ...rest) {
    return file === '/usr/bin/ldd' ? 'musl libc (x86_64)' : read.call(this, file, ...rest)
  }
  const getReport = process.report.getReport.bind(process.report)
  process.report.getReport = () => {
    const report = getReport()
    delete report.header.glibcVersionRuntime
    return report
  }
}
`
const IMPORT = `
try {
  require(process.argv[1])
  console.log(JSON.stringify({ loaded: true }))
} catch (e) {
  console.log(JSON.stringify({ code: e.code, message: e.message, cause: e.cause && String(e.cause.message) }))
}
`

interface Outcome {
  loaded?: boolean
  code?: string
  message?: string
  cause?: string
}

let dir: string
let preload: string

/** A copy of the main package's published files in `name`, without any binary. */
function packageCopy(name: string): string {
  const pkg = join(dir, name, 'node_modules', '@medianest', 'native-cache')
  mkdirSync(pkg, { recursive: true })
  for (const f of ['index.js', 'native.js', 'binding.js', 'package.json']) copyFileSync(join(root, f), join(pkg, f))
  return pkg
}

function importIn(pkg: string, env: Record<string, string> = {}): Outcome {
  const child = spawnSync(process.execPath, ['-r', preload, '-e', IMPORT, join(pkg, 'index.js')], {
    env: { ...process.env, NAPI_RS_NATIVE_LIBRARY_PATH: '', ...env },
    encoding: 'utf8',
    timeout: 20_000,
  })
  expect(child.status, child.stderr).toBe(0)
  return JSON.parse(child.stdout.trim().split('\n').pop()!)
}

beforeAll(() => {
  // Outside the repository, so nothing resolves from its node_modules.
  dir = mkdtempSync(join(tmpdir(), 'native-cache-load-'))
  preload = join(dir, 'preload.cjs')
  writeFileSync(preload, PRELOAD)
})
afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true })
})

/** This machine in the packages' naming (what native.js should name). */
const arch = process.arch
const here =
  process.platform === 'linux'
    ? `linux-${arch}-${(process.report.getReport() as { header: { glibcVersionRuntime?: string } }).header.glibcVersionRuntime ? 'gnu' : 'musl'}`
    : process.platform === 'win32'
      ? `win32-${arch}-msvc`
      : `${process.platform}-${arch}`
const published = ['linux-x64-gnu', 'linux-arm64-gnu', 'linux-x64-musl', 'linux-arm64-musl', 'darwin-x64', 'darwin-arm64', 'win32-x64-msvc']

describe('no binary for this platform', () => {
  it.runIf(published.includes(here))('a published platform whose package is missing (--omit=optional): names it and says to reinstall', () => {
    const out = importIn(packageCopy('missing'))
    expect(out.code).toBe('ERR_NATIVE_CACHE_NO_BINARY')
    expect(out.message).toContain(`no native binary for ${here}`)
    expect(out.message).toContain(`${NAME}-${here} is not installed`)
    expect(out.message).toContain('--omit=optional')
    expect(out.cause).toMatch(/Cannot find native binding/)
  })

  it.runIf(process.platform === 'linux' && (arch === 'x64' || arch === 'arm64'))(
    'Alpine (musl faked) with the glibc package only, as in a node_modules copied from glibc: names the musl package',
    () => {
      const pkg = packageCopy('musl')
      const gnu = join(dir, 'musl', 'node_modules', '@medianest', `native-cache-linux-${arch}-gnu`)
      mkdirSync(gnu, { recursive: true })
      writeFileSync(join(gnu, 'package.json'), JSON.stringify({ name: `${NAME}-linux-${arch}-gnu`, version: '0.1.0' }))
      const out = importIn(pkg, { FAKE_MUSL: '1' })
      expect(out.code).toBe('ERR_NATIVE_CACHE_NO_BINARY')
      expect(out.message).toContain(`no native binary for linux-${arch}-musl`)
      expect(out.message).toContain(`${NAME}-linux-${arch}-musl is not installed`)
    },
  )

  it.runIf(process.platform === 'linux')('a platform nothing is published for: names it, lists the published ones, says build from source', () => {
    const out = importIn(packageCopy('riscv'), { FAKE_ARCH: 'riscv64' })
    expect(out.code).toBe('ERR_NATIVE_CACHE_NO_BINARY')
    expect(out.message).toMatch(/No prebuilt binary is published for linux-riscv64-(gnu|musl)/)
    expect(out.message).toContain(`published: ${published.join(', ')}`)
    expect(out.message).toContain('npm run build')
  })

  it.runIf(published.includes(here))(
    'the platform package is installed but its binary does not load: says so and keeps the loader error as cause',
    () => {
      const pkg = packageCopy('broken')
      const platformPkg = join(dir, 'broken', 'node_modules', '@medianest', `native-cache-${here}`)
      mkdirSync(platformPkg, { recursive: true })
      writeFileSync(
        join(platformPkg, 'package.json'),
        JSON.stringify({ name: `${NAME}-${here}`, version: '0.1.0', main: `native-cache.${here}.node` }),
      )
      writeFileSync(join(platformPkg, `native-cache.${here}.node`), 'not a shared library')
      const out = importIn(pkg)
      expect(out.code).toBe('ERR_NATIVE_CACHE_NO_BINARY')
      expect(out.message).toContain(`${NAME}-${here} is installed but its binary failed to load`)
      expect(out.cause).toMatch(/Cannot find native binding/)
    },
  )

  it('a source checkout without a build: says to run npm run build', () => {
    const pkg = packageCopy('checkout')
    writeFileSync(join(pkg, 'Cargo.toml'), '')
    const out = importIn(pkg, { FAKE_ARCH: 'riscv64' })
    expect(out.code).toBe('ERR_NATIVE_CACHE_NO_BINARY')
    expect(out.message).toContain('This is a source checkout: run `npm run build`')
  })

  it('this platform, with its binary present, loads', () => {
    const out = importIn(root)
    expect(out).toEqual({ loaded: true })
  })
})
