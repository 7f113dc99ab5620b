'use strict'

// prom-client bridge. prom-client is an optional peer dependency: required
// only when registerMetrics() is called. Per registry, one prom-client metric
// per family collects from every instance registered in it, each instance's
// samples labelled cache="<name>".
const bridged = new WeakMap()

/** The prom-client a registry is used with; a clear error when it is not installed. */
function promClient() {
  try {
    return require('prom-client')
  } catch (e) {
    const err = new Error('registerMetrics needs prom-client: npm install prom-client')
    err.cause = e
    throw err
  }
}

/** `families()` (a list, or null once closed) as a Map by name, taken once per turn: every family's collect of one scrape runs in the same turn. */
function snapshotPerTurn(families) {
  let snapshot = null
  return () => {
    if (snapshot === null) {
      const list = families()
      if (list === null) return null
      snapshot = new Map(list.map((f) => [f.name, f]))
      queueMicrotask(() => (snapshot = null))
    }
    return snapshot
  }
}

/** `collect` of one family: each live instance's samples with its label (snapshots shared within one scrape). */
function collector(caches, family) {
  return function collect() {
    this.reset()
    for (const [name, families] of caches) {
      const snapshot = families()
      if (snapshot === null) {
        caches.delete(name)
        continue
      }
      const f = snapshot.get(family)
      if (f === undefined) continue
      for (const s of f.samples) {
        if (this.type === 'counter') this.inc({ cache: name, ...s.labels }, s.value)
        else this.set({ cache: name, ...s.labels }, s.value)
      }
    }
  }
}

/** A summary whose quantiles the addon computed: prom-client's Summary computes its own, so this is a metric object of the shape prom-client's Registry reads. */
function summary(registry, caches, family) {
  const metric = {
    name: family.name,
    help: family.help,
    type: 'summary',
    aggregator: 'sum',
    async get() {
      const values = []
      for (const [name, families] of caches) {
        const f = families()?.get(family.name)
        for (const s of f?.samples ?? []) {
          const labels = { cache: name, ...s.labels }
          if (labels.quantile !== undefined) labels.quantile = Number(labels.quantile)
          values.push(s.name === family.name ? { labels, value: s.value } : { metricName: s.name, labels, value: s.value })
        }
      }
      return { name: family.name, help: family.help, type: 'summary', values, aggregator: 'sum' }
    },
    reset() {},
  }
  registry.registerMetric(metric)
}

function registerMetrics(registry, name, families) {
  const prom = promClient()
  registry ??= prom.register
  if (
    registry === null ||
    typeof registry !== 'object' ||
    typeof registry.registerMetric !== 'function' ||
    typeof registry.getSingleMetric !== 'function'
  ) {
    throw new TypeError('registerMetrics: registry must be a prom-client Registry')
  }
  let caches = bridged.get(registry)
  if (caches === undefined) bridged.set(registry, (caches = new Map()))
  // Families the registry lacks: all the first time, again after registry.clear().
  for (const f of families()?.values() ?? []) {
    if (registry.getSingleMetric(f.name) !== undefined) continue
    const labelNames = ['cache', ...new Set(f.samples.flatMap((s) => Object.keys(s.labels)))]
    const config = { name: f.name, help: f.help, labelNames, registers: [registry], collect: collector(caches, f.name) }
    if (f.kind === 'counter') new prom.Counter(config)
    else if (f.kind === 'gauge') new prom.Gauge(config)
    else summary(registry, caches, f)
  }
  const other = caches.get(name)
  if (other !== undefined && other !== families && other() !== null) {
    throw new Error(`registerMetrics: another instance is registered as cache="${name}" in this registry; give each a distinct options.name`)
  }
  caches.set(name, families)
}

module.exports = { registerMetrics, snapshotPerTurn }
