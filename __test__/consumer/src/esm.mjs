// Plain ESM, no TypeScript: the package's named exports, as an .mjs file imports them.
import { CacheService, cacheService, CacheClosedError, TimeoutError } from '@medianest/native-cache'
import defaultExport from '@medianest/native-cache'

const cache = new CacheService({ mode: 'memory' })
await cache.set('esm', { ok: true }, 60)
const got = await cache.get('esm')
const made = await cache.getOrSet('esm:made', () => 42, 60)
const health = cache.health()
await cache.close()
const closed = await cache.get('esm').catch((e) => e instanceof CacheClosedError)
console.log(
  JSON.stringify({
    got,
    made,
    status: health.status,
    closed,
    singleton: cacheService instanceof CacheService,
    timeoutError: typeof TimeoutError === 'function',
    defaultHasClass: defaultExport.CacheService === CacheService,
  }),
)
