// The loader (native.js) loads the binary built for the running Node, asking
// that Node which libc runs it (process.report), not the filesystem: napi-rs'
// generated loader reads /usr/bin/ldd, which names the host's libc, and handed
// a musl Node on a glibc host the glibc binary. `npm run test:musl` runs this
// file under a musl Node on a glibc host; the second case fakes one here.
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { spawnSync } from 'node:child_process'
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { basename, join, resolve } from 'node:path'

const root = resolve(__dirname, '..')
const glibc = Boolean((process.report.getReport() as { header: { glibcVersionRuntime?: string } }).header.glibcVersionRuntime)
const here = `linux-${process.arch}-${glibc ? 'gnu' : 'musl'}`
const hostSaysGlibc = existsSync('/usr/bin/ldd') && !readFileSync('/usr/bin/ldd', 'utf8').includes('musl')

/** The native-cache binaries a Node has loaded after requiring `dir`/native.js (from its process report). */
function loadedBinaries(dir: string, preload?: string): string[] {
  const script = `require(${JSON.stringify(join(dir, 'native.js'))})
console.log(JSON.stringify(process.report.getReport().sharedObjects.filter((f) => /native-cache\\.[^/]+\\.node$/.test(f))))`
  const child = spawnSync(process.execPath, [...(preload ? ['-r', preload] : []), '-e', script], {
    env: { ...process.env, NAPI_RS_NATIVE_LIBRARY_PATH: '' },
    encoding: 'utf8',
    timeout: 20_000,
  })
  expect(child.status, child.stderr).toBe(0)
  return (JSON.parse(child.stdout.trim().split('\n').pop()!) as string[]).map((f) => basename(f))
}

describe.runIf(process.platform === 'linux' && existsSync(join(root, `native-cache.${here}.node`)))(
  "the loader asks the running Node for its libc, not the host's files",
  () => {
    let dir: string
    beforeAll(() => {
      dir = mkdtempSync(join(tmpdir(), 'native-cache-choice-'))
    })
    afterAll(() => {
      if (dir) rmSync(dir, { recursive: true, force: true })
    })

    it(`in this checkout, loads native-cache.${here}.node (the running Node's libc: ${glibc ? 'glibc' : 'musl'}; /usr/bin/ldd: ${hostSaysGlibc ? 'glibc' : 'musl or none'})`, () => {
      expect(loadedBinaries(root)).toEqual([`native-cache.${here}.node`])
    })

    it.runIf(hostSaysGlibc)('a Node whose report names no glibc, on a host whose ldd says glibc, loads the musl binary', () => {
      // Both names hold this machine's binary, so either would load: the name chosen shows the decision.
      for (const f of ['native.js', 'binding.js', 'package.json']) copyFileSync(join(root, f), join(dir, f))
      for (const libc of ['gnu', 'musl']) {
        copyFileSync(join(root, `native-cache.${here}.node`), join(dir, `native-cache.linux-${process.arch}-${libc}.node`))
      }
      const preload = join(dir, 'musl-report.cjs')
      writeFileSync(
        preload,
        `const getReport = process.report.getReport.bind(process.report)
process.report.getReport = () => {
  const report = getReport()
  delete report.header.glibcVersionRuntime
  return report
}`,
      )
      expect(loadedBinaries(dir, preload)).toEqual([`native-cache.linux-${process.arch}-musl.node`])
    })
  },
)
