'use strict'

// Constructor options and their environment fallbacks, checked and turned
// into what the native half takes; and the secrets among them, so no message
// ever shows one (see lib/logging.js).
const { readFileSync } = require('node:fs')
const binding = require('../native.js')
const { describe } = require('./errors.js')
const { MAX_TTL_MS } = require('./args.js')
const { checkLogger } = require('./logging.js')

// Defaults live in Rust (src/options.rs) and are read from there.
const DEFAULT_TTL = binding.DEFAULT_TTL_SECONDS
const DEFAULT_MAX_BYTES = binding.DEFAULT_LOCAL_MAX_BYTES
const DEFAULT_MAX_TTL = binding.DEFAULT_LOCAL_MAX_TTL_SECONDS
const DEFAULT_TIMEOUT_MS = binding.DEFAULT_COMMAND_TIMEOUT_MS
/** Longest commandTimeoutMs (setTimeout's own limit) and local.maxTtl (ten years). */
const MAX_TIMEOUT_MS = 2 ** 31 - 1
const MAX_SETTING_SECONDS = 10 * 365 * 24 * 3600

function envString(env, name) {
  const v = env[name]
  return v === undefined || v === '' ? undefined : v
}

/** The URL from the environment: `REDIS_URL_FILE` (a Docker secret) when it names a file, else `REDIS_URL`. */
function envUrl(env) {
  const file = envString(env, 'REDIS_URL_FILE')
  if (file !== undefined) {
    let text
    try {
      text = readFileSync(file, 'utf8')
    } catch {
      text = undefined
    }
    if (text !== undefined && text.trim() !== '') return text.trim()
  }
  return envString(env, 'REDIS_URL')
}

/** PEM text from what Node's tls.connect takes: a string, a Buffer, or an array of them. */
function pem(value, name) {
  if (value === undefined || value === null) return undefined
  if (typeof value === 'string') {
    if (!value.includes('-----BEGIN ')) throw new TypeError(`${name} must be PEM text (-----BEGIN …), got ${describe(value)}`)
    return value
  }
  if (ArrayBuffer.isView(value)) return pem(Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('utf8'), name)
  if (Array.isArray(value)) return value.map((v, i) => pem(v, `${name}[${i}]`)).join('\n')
  throw new TypeError(`${name} must be PEM text, a Buffer or an array of them, got ${describe(value)}`)
}

/** `tls: true | { ca, cert, key, rejectUnauthorized, servername }` (or env REDIS_TLS) as the native options. */
function resolveTls(tls) {
  if (typeof tls === 'string') tls = ['true', '1', 'yes'].includes(tls.trim().toLowerCase())
  if (tls === undefined || tls === null || tls === false) return undefined
  if (tls === true) return {}
  if (typeof tls !== 'object' || Array.isArray(tls)) {
    throw new TypeError(`tls must be a boolean or { ca, cert, key, rejectUnauthorized, servername }, got ${describe(tls)}`)
  }
  const { rejectUnauthorized, servername } = tls
  if (rejectUnauthorized !== undefined && typeof rejectUnauthorized !== 'boolean') {
    throw new TypeError(`tls.rejectUnauthorized must be a boolean, got ${describe(rejectUnauthorized)}`)
  }
  const out = {
    ca: pem(tls.ca, 'tls.ca'),
    cert: pem(tls.cert, 'tls.cert'),
    key: pem(tls.key, 'tls.key'),
    rejectUnauthorized,
    servername: optionalString(servername, 'tls.servername'),
  }
  if ((out.cert === undefined) !== (out.key === undefined)) {
    throw new TypeError('tls.cert and tls.key must be given together')
  }
  return out
}

function positive(value, name) {
  if (typeof value !== 'number' || !(value > 0) || !Number.isFinite(value)) {
    throw new TypeError(`${name} must be a positive, finite number, got ${describe(value)}`)
  }
  return value
}

/** A positive number of at most `max` (beyond it, the native side's clock arithmetic would overflow). */
function positiveUpTo(value, name, max, unit) {
  positive(value, name)
  if (value > max) throw new TypeError(`${name} must be at most ${max} ${unit}, got ${describe(value)}`)
  return value
}

function integer(value, name, min, max) {
  const n = typeof value === 'string' && value.trim() !== '' ? Number(value) : value
  if (typeof n !== 'number' || !Number.isInteger(n) || n < min || n > max) {
    throw new TypeError(`${name} must be an integer from ${min} to ${max}, got ${describe(value)}`)
  }
  return n
}

function optionalString(value, name) {
  if (value === undefined || value === null) return undefined
  if (typeof value !== 'string') throw new TypeError(`${name} must be a string, got ${describe(value)}`)
  return value
}

/**
 * `sentinel: { sentinels, name, password }`, else env `REDIS_SENTINELS` (comma-separated) and
 * `REDIS_SENTINEL_NAME`, as the native options; undefined when Sentinel is not used.
 */
function resolveSentinel(sentinel, env) {
  if (sentinel === undefined || sentinel === null) {
    const list = envString(env, 'REDIS_SENTINELS')
    if (list === undefined) return undefined
    sentinel = { sentinels: list.split(',').map((s) => s.trim()).filter((s) => s !== ''), name: envString(env, 'REDIS_SENTINEL_NAME') }
  }
  if (typeof sentinel !== 'object' || Array.isArray(sentinel)) {
    throw new TypeError(`sentinel must be { sentinels, name, password }, got ${describe(sentinel)}`)
  }
  const { sentinels, name, password } = sentinel
  if (!Array.isArray(sentinels)) {
    throw new TypeError(`sentinel.sentinels must be an array of 'host:port' addresses, got ${describe(sentinels)}`)
  }
  sentinels.forEach((s, i) => {
    if (typeof s !== 'string') {
      throw new TypeError(`sentinel.sentinels[${i}] must be a 'host:port' string, got ${describe(s)}`)
    }
  })
  if (typeof name !== 'string') {
    throw new TypeError(`sentinel.name must name the master group (sentinel monitor <name>), got ${describe(name)}`)
  }
  return { sentinels: [...sentinels], name, password: optionalString(password, 'sentinel.password') }
}

/** `cluster: { nodes }` (or env REDIS_CLUSTER_NODES, comma-separated) as the seed node list. */
function resolveCluster(cluster) {
  if (cluster === undefined || cluster === null) return undefined
  if (typeof cluster !== 'object' || Array.isArray(cluster)) {
    throw new TypeError(`cluster must be { nodes: [...] }, got ${describe(cluster)}`)
  }
  const { nodes } = cluster
  if (!Array.isArray(nodes) || nodes.some((n) => typeof n !== 'string' || n === '')) {
    throw new TypeError(`cluster.nodes must be an array of URLs or host:port strings, got ${describe(nodes)}`)
  }
  if (nodes.length === 0) throw new TypeError('cluster.nodes must list at least one node')
  return nodes
}

/** Options plus environment fallbacks, checked; throws a TypeError naming the bad option. */
function resolveOptions(options, env) {
  if (options === undefined || options === null) options = {}
  else if (typeof options !== 'object' || Array.isArray(options)) {
    throw new TypeError(`options must be an object, got ${describe(options)}`)
  }
  const mode = options.mode ?? envString(env, 'CACHE_MODE') ?? 'redis'
  if (mode !== 'redis' && mode !== 'memory') {
    throw new TypeError(`mode must be 'redis' or 'memory', got ${describe(mode)}`)
  }
  // By presence: `cluster` and `sentinel` are two topologies, never one instance's.
  const given = (k) => options[k] !== undefined && options[k] !== null
  if (given('cluster') && given('sentinel')) {
    throw new TypeError('cluster and sentinel cannot be used together: give one of them')
  }
  // REDIS_SENTINELS applies only when no address is given explicitly.
  const explicitAddress = ['url', 'host', 'port'].some(given)
  const sentinel =
    given('cluster') || (!given('sentinel') && explicitAddress) ? undefined : resolveSentinel(options.sentinel, env)
  if (sentinel !== undefined && options.url !== undefined) {
    throw new TypeError('url cannot be used with sentinel: the sentinels name the master; give username, password, db and tls instead')
  }
  // Explicit connection options win over REDIS_URL; an explicit url wins over everything.
  const explicitParts = ['host', 'port', 'username', 'password', 'db', 'tls'].some((k) => options[k] !== undefined)
  const url = optionalString(options.url ?? (explicitParts || sentinel !== undefined ? undefined : envUrl(env)), 'url')
  const tls = resolveTls(options.tls ?? envString(env, 'REDIS_TLS'))
  const envNodes = explicitAddress || given('sentinel') ? undefined : envString(env, 'REDIS_CLUSTER_NODES')
  const clusterNodes = resolveCluster(options.cluster ?? (envNodes && { nodes: envNodes.split(',').map((n) => n.trim()).filter(Boolean) }))
  if (clusterNodes !== undefined && sentinel !== undefined) {
    throw new TypeError('REDIS_CLUSTER_NODES and REDIS_SENTINELS cannot be used together: set one of them')
  }
  let local = options.local
  if (local === undefined || local === true) local = {}
  if (local !== false && (typeof local !== 'object' || local === null || Array.isArray(local))) {
    throw new TypeError(`local must be false or { maxBytes, maxTtl }, got ${describe(local)}`)
  }
  let maxBytes = 0
  let maxTtl = DEFAULT_MAX_TTL
  if (local !== false) {
    maxBytes = local.maxBytes ?? DEFAULT_MAX_BYTES
    if (typeof maxBytes !== 'number' || !Number.isInteger(maxBytes) || maxBytes < 0) {
      throw new TypeError(`local.maxBytes must be a non-negative integer, got ${describe(maxBytes)}`)
    }
    maxTtl = positiveUpTo(local.maxTtl ?? DEFAULT_MAX_TTL, 'local.maxTtl', MAX_SETTING_SECONDS, 'seconds')
  }
  if (mode === 'memory' && maxBytes === 0) maxBytes = DEFAULT_MAX_BYTES
  const logger = checkLogger(options.logger, 'logger')
  return {
    native: {
      mode,
      url,
      host: optionalString(options.host ?? envString(env, 'REDIS_HOST'), 'host') ?? 'localhost',
      port: integer(options.port ?? envString(env, 'REDIS_PORT') ?? 6379, 'port', 1, 65535),
      username: optionalString(options.username ?? envString(env, 'REDIS_USERNAME'), 'username'),
      password: optionalString(options.password ?? envString(env, 'REDIS_PASSWORD'), 'password'),
      db: integer(options.db ?? envString(env, 'REDIS_DATABASE') ?? 0, 'db', 0, 2 ** 31 - 1),
      tls,
      sentinel,
      clusterNodes,
      localMaxBytes: maxBytes,
      localMaxTtlMs: maxTtl * 1000,
      commandTimeoutMs: positiveUpTo(options.commandTimeoutMs ?? DEFAULT_TIMEOUT_MS, 'commandTimeoutMs', MAX_TIMEOUT_MS, 'ms'),
    },
    secrets: secretsOf(url, options.password ?? envString(env, 'REDIS_PASSWORD'), sentinel?.password, clusterNodes),
    defaultTtlMs: Math.round(positiveUpTo(options.defaultTtl ?? DEFAULT_TTL, 'defaultTtl', MAX_TTL_MS / 1000, 'seconds') * 1000),
    logger,
  }
}

/**
 * The passwords among the options, as given and percent-decoded: each URL's
 * password part (up to its last `@`, as a raw password may hold `/` or `@`),
 * the password options.
 */
function secretsOf(url, password, sentinelPassword, clusterNodes) {
  const out = []
  const add = (s) => {
    if (typeof s !== 'string' || s === '') return
    out.push(s)
    try {
      const decoded = decodeURIComponent(s)
      if (decoded !== s) out.push(decoded)
    } catch {
      // Not percent-encoded text: the raw form is enough.
    }
  }
  for (const u of [url, ...(clusterNodes ?? [])]) {
    if (typeof u !== 'string') continue
    const scheme = u.indexOf('://')
    const at = u.lastIndexOf('@')
    if (scheme < 0 || at < scheme) continue
    const userinfo = u.slice(scheme + 3, at)
    const colon = userinfo.indexOf(':')
    add(colon < 0 ? userinfo : userinfo.slice(colon + 1))
  }
  add(password)
  add(sentinelPassword)
  return out
}

/** health() of the lazy singleton closed before its first use: it never connected, and never will. */
function closedUnused(env) {
  let topology = 'single'
  try {
    const n = resolveOptions(undefined, env).native
    topology = n.mode === 'memory' ? 'memory' : n.clusterNodes ? 'cluster' : n.sentinel ? 'sentinel' : 'single'
  } catch {
    // Options the instance would have rejected on first use: it is down either way.
  }
  return { status: 'down', redis: { connected: false, topology }, local: { serving: false, reason: 'closed' } }
}

module.exports = { resolveOptions, DEFAULT_TTL, closedUnused }
