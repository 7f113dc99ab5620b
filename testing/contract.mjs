// Runs the behaviour checks (checks.mjs) against a service class: in 'memory'
// mode or on a Redis database it refuses to flush unless it is empty. Kept
// apart from vitest's describe/it so the package's own tests can run the same
// checks against deliberately broken services and see them fail.
import { randomUUID } from 'node:crypto'
import { checks } from './checks.mjs'

/**
 * Options that pin 'memory' mode and leave nothing to the environment: the
 * explicit address keeps REDIS_URL, REDIS_SENTINELS and REDIS_CLUSTER_NODES
 * from being read (they are never connected to, but a malformed one would throw).
 */
export function memoryOptions(options) {
  if (options !== undefined && (options === null || typeof options !== 'object' || Array.isArray(options))) {
    throw new TypeError('createTestCache: options must be an object')
  }
  if (options?.mode !== undefined && options.mode !== 'memory') {
    throw new TypeError(`createTestCache: a test cache is 'memory' mode only, got mode ${JSON.stringify(options.mode)}`)
  }
  return { host: 'localhost', port: 6379, db: 0, tls: false, ...options, mode: 'memory' }
}

/** The URL without its userinfo, for messages. */
function redact(url) {
  try {
    const u = new URL(url)
    return `${u.protocol}//${u.host}${u.pathname}`
  } catch {
    return '(a URL that does not parse)'
  }
}

async function connectRaw(url) {
  let Redis
  try {
    Redis = (await import('ioredis')).default
  } catch (err) {
    throw new Error('describeCacheContract: redisUrl needs the ioredis package, to read what the service stored (npm install -D ioredis)', {
      cause: err,
    })
  }
  const raw = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1, enableOfflineQueue: false, connectTimeout: 5_000 })
  raw.on('error', () => {})
  await raw.connect()
  return raw
}

/** The keys under `prefix`, found with SCAN (the prefix's glob characters escaped). */
async function keysUnder(raw, prefix) {
  const found = []
  const glob = `${prefix.replace(/[\\*?[\]]/g, '\\$&')}*`
  let cursor = '0'
  do {
    const [next, keys] = await raw.scan(cursor, 'MATCH', glob, 'COUNT', 1000)
    found.push(...keys)
    cursor = next
  } while (cursor !== '0')
  return found
}

/**
 * Runs the checks against a service class: `open` before them (refuses a
 * non-empty database), `start`/`finish` around each (a fresh instance and key
 * prefix; afterwards every instance closed and the prefix's keys deleted),
 * `close` after them. `describeCacheContract` maps it onto vitest's hooks.
 */
export class Harness {
  #Service
  #redisUrl
  #allowNonEmpty
  #extra
  #raw = null
  #prefix = ''
  #cache = null
  #created = []
  /** What the instances reported through `logger`, as [level, message]; null when the caller gave a logger. */
  #logs = null

  constructor(Service, { redisUrl, allowNonEmptyDatabase = false, options = {} } = {}) {
    if (typeof Service !== 'function') {
      throw new TypeError('describeCacheContract: pass the CacheService class (the one your cache.service module exports)')
    }
    if (redisUrl !== undefined && typeof redisUrl !== 'string') {
      throw new TypeError('describeCacheContract: redisUrl must be a redis:// or rediss:// URL')
    }
    this.#Service = Service
    this.#redisUrl = redisUrl
    this.#allowNonEmpty = allowNonEmptyDatabase
    this.#extra = options
    if (options.logger === undefined) {
      const logs = (this.#logs = [])
      const record = (level) => (message) => void logs.push([level, message])
      this.#extra = { ...options, logger: { error: record('error'), warn: record('warn'), info: record('info'), debug: record('debug') } }
    }
    this.mode = redisUrl === undefined ? 'memory' : 'redis'
    this.title = `CacheService contract ('${this.mode}' mode${redisUrl === undefined ? '' : ` on ${redact(redisUrl)}`})`
  }

  /** The checks that apply to this mode, each with `skipped` when it must not run (clear() on a database the contract does not own). */
  checks() {
    return checks
      .filter((c) => c.only === undefined || c.only === this.mode)
      .map((c) => ({ ...c, skipped: Boolean(c.clears && this.mode === 'redis' && this.#allowNonEmpty) }))
  }

  #create(own) {
    const base = this.mode === 'redis' ? { url: this.#redisUrl } : memoryOptions()
    return new this.#Service({ ...this.#extra, ...base, mode: this.mode, ...own })
  }

  async open() {
    if (this.mode === 'memory') return
    this.#raw = await connectRaw(this.#redisUrl)
    const size = await this.#raw.dbsize()
    if (size > 0 && !this.#allowNonEmpty) {
      this.#raw.disconnect()
      this.#raw = null
      throw new Error(
        `describeCacheContract: the database at ${redact(this.#redisUrl)} holds ${size} keys. The contract writes and ` +
          'deletes keys and calls clear() (FLUSHDB), so it runs only on an empty database: point redisUrl at an empty one, or ' +
          'pass allowNonEmptyDatabase: true to run every check except clear() (then only keys under its own prefix are touched)',
      )
    }
  }

  close() {
    this.#raw?.disconnect()
    this.#raw = null
  }

  start() {
    this.#prefix = `contract:${randomUUID().slice(0, 8)}:`
    this.#logs?.splice(0)
    this.#cache = this.#create()
  }

  async finish() {
    const instances = [this.#cache, ...this.#created.splice(0)]
    this.#cache = null
    await Promise.all(instances.map((c) => c?.close?.()))
    if (this.#raw) {
      const keys = await keysUnder(this.#raw, this.#prefix)
      if (keys.length > 0) await this.#raw.del(...keys)
    }
  }

  /** What a check's `run` gets (see `checks`). */
  context() {
    const raw = this.#raw
    const prefix = this.#prefix
    const redisUrl = this.#redisUrl
    return {
      cache: this.#cache,
      mode: this.mode,
      raw,
      logs: this.#logs,
      key: (name) => `${prefix}${name}`,
      create: (own) => {
        const c = this.#create(own)
        this.#created.push(c)
        return c
      },
      /** Keys in the database the contract did not write (0 in 'memory' mode). */
      baseKeys: async () => (raw ? (await raw.dbsize()) - (await keysUnder(raw, prefix)).length : 0),
      /** Throws unless the database holds only the contract's keys: clear() never flushes anyone else's. */
      beforeClear: async () => {
        if (!raw) return
        const size = await raw.dbsize()
        const ours = (await keysUnder(raw, prefix)).length
        if (size !== ours) {
          throw new Error(`describeCacheContract: refusing to call clear(): ${size - ours} keys the contract did not write appeared in ${redact(redisUrl)}`)
        }
      },
    }
  }
}
