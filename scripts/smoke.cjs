'use strict'
// A smoke test for a binary run where vitest cannot run (an arm64 Node under
// qemu, whose child processes this machine cannot start): loads the package
// through its loader, checks that the binary for the running Node was chosen,
// and has two instances answer against a Redis it starts on a free loopback
// port and stops (benchmark/redis-server.mjs). Prints "N passed, N failed";
// exits 1 on a failure.
//   scripts/cross.sh node linux-arm64-musl scripts/smoke.cjs
const { basename, join } = require('node:path')

const root = join(__dirname, '..')
const glibc = Boolean(process.report.getReport().header.glibcVersionRuntime)
const here = `${process.platform}-${process.arch}${process.platform === 'linux' ? (glibc ? '-gnu' : '-musl') : ''}`
const results = []

async function check(name, fn) {
  try {
    await fn()
    results.push(true)
    console.log(`  ok   ${name}`)
  } catch (error) {
    results.push(false)
    console.log(`  FAIL ${name}: ${error.stack ?? error}`)
  }
}

function equal(actual, expected) {
  const [a, e] = [JSON.stringify(actual), JSON.stringify(expected)]
  if (a !== e) throw new Error(`expected ${e}, got ${a}`)
}

async function main() {
  console.log(`smoke: Node ${process.version} ${here}`)
  const { CacheService } = require(root)
  const loaded = process.report.getReport().sharedObjects.filter((f) => /native-cache\.[^/]+\.node$/.test(f))
  await check(`the loader chose native-cache.${here}.node`, () => equal(loaded.map((f) => basename(f)), [`native-cache.${here}.node`]))

  const { startRedis } = await import('../benchmark/redis-server.mjs')
  const redis = await startRedis()
  const url = `${redis.url}/0`
  const [a, b] = [new CacheService({ url, logger: false }), new CacheService({ url, logger: false })]
  try {
    await check('ping', async () => equal(await a.ping(), true))
    await check('set, get', async () => {
      await a.set('smoke:1', { n: 1 }, 60)
      equal(await a.get('smoke:1'), { n: 1 })
    })
    await check('a repeated get is an L1 hit', async () => {
      const before = a.stats().local.hits
      await a.get('smoke:1')
      await a.get('smoke:1')
      if (a.stats().local.hits <= before) throw new Error(`L1 hits ${before} -> ${a.stats().local.hits}`)
    })
    await check("another instance's write is seen (L1 invalidated by tracking)", async () => {
      await b.set('smoke:1', { n: 2 }, 60)
      const deadline = Date.now() + 5000
      let seen
      while ((seen = await a.get('smoke:1'))?.n !== 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
      equal(seen, { n: 2 })
    })
    await check('getOrSet runs the factory once for concurrent callers', async () => {
      let runs = 0
      const factory = async () => {
        runs += 1
        await new Promise((r) => setTimeout(r, 50))
        return 'v'
      }
      const got = await Promise.all(Array.from({ length: 10 }, () => a.getOrSet('smoke:2', factory, 60)))
      equal([runs, got.every((v) => v === 'v')], [1, true])
    })
    await check('mset, mget, exists, ttl, del, invalidatePattern', async () => {
      await a.mset({ 'smoke:m1': 1, 'smoke:m2': 2 }, 60)
      equal(await a.mget(['smoke:m1', 'smoke:m2', 'smoke:none']), [1, 2, null])
      equal(await a.exists('smoke:m1'), true)
      const ttl = await a.ttl('smoke:m1')
      if (!(ttl > 0 && ttl <= 60)) throw new Error(`ttl ${ttl}`)
      await a.del('smoke:m1')
      equal(await a.exists('smoke:m1'), false)
      await a.invalidatePattern('smoke:*')
      equal(await b.mget(['smoke:1', 'smoke:2', 'smoke:m2']), [null, null, null])
    })
  } finally {
    await Promise.all([a.close(), b.close()])
    redis.stop()
  }
  const passed = results.filter(Boolean).length
  console.log(`${passed} passed, ${results.length - passed} failed`)
  process.exitCode = passed === results.length ? 0 : 1
}

main().catch((error) => {
  console.error(error)
  process.exitCode = 1
})
