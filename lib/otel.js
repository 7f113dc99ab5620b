'use strict'

// OpenTelemetry bridge: the families of `metrics()` as instruments of a
// `Meter`, read from one snapshot per collection. `@opentelemetry/api` is an
// optional peer dependency, required only when no meter is given.
//
// Names: node-redis' client-side-caching names where it has them (there is no
// OpenTelemetry cache convention yet, semantic-conventions #1747); the rest
// `native_cache.<family>` (the Prometheus name with its prefix turned into a
// namespace and `_total` dropped, as OpenTelemetry names counters).
// node-redis' `redis.client.csc.network_saved` (bytes not fetched) is not
// counted here, so it is not reported. Invalidation-latency samples also go
// to a histogram, one recording per sample, read at each collection.

/** Families reported under node-redis' names: [instrument, attributes added]. */
const CSC = {
  native_cache_l1_hits_total: ['redis.client.csc.requests', { 'redis.client.csc.result': 'hit' }],
  native_cache_l1_misses_total: ['redis.client.csc.requests', { 'redis.client.csc.result': 'miss' }],
  native_cache_l1_evictions_total: ['redis.client.csc.evictions', { 'redis.client.csc.reason': 'full' }],
  native_cache_invalidations_total: ['redis.client.csc.evictions', { 'redis.client.csc.reason': 'invalidation' }],
  native_cache_l1_entries: ['redis.client.csc.items', {}],
}
const HISTOGRAM = 'native_cache.invalidation.duration'
/** Latencies run from under a millisecond (same host) to seconds (a stalled link). */
const HISTOGRAM_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5]
const UNITS = {
  'redis.client.csc.requests': '{request}',
  'redis.client.csc.evictions': '{eviction}',
  'redis.client.csc.items': '{item}',
}

/** The OpenTelemetry instrument name and unit of a sample of `metrics()`, and the attributes it adds. */
function instrumentOf(sampleName) {
  const csc = CSC[sampleName]
  if (csc !== undefined) return { name: csc[0], unit: UNITS[csc[0]], attributes: csc[1] }
  let name = sampleName.replace(/^native_cache_/, 'native_cache.').replace(/_total$/, '')
  let unit
  if (name.includes('_seconds')) {
    name = name.replace('_seconds', '').replace(/_(sum|count)$/, '.$1')
    unit = name.endsWith('.count') ? '{sample}' : 's'
  } else if (name.endsWith('bytes')) unit = 'By'
  return { name, unit, attributes: {} }
}

/** The meter given, else one of the global MeterProvider (`@opentelemetry/api`, required now). */
function meterOrGlobal(meter) {
  if (meter !== undefined && meter !== null) return meter
  let api
  try {
    api = require('@opentelemetry/api')
  } catch (e) {
    const err = new Error('registerOpenTelemetry needs a Meter, or @opentelemetry/api for the global one: npm install @opentelemetry/api')
    err.cause = e
    throw err
  }
  return api.metrics.getMeter('@medianest/native-cache')
}

/**
 * Registers instruments for every family `families()` (the instance's
 * `metricFamilies()`, or null once it is closed) reports, each point carrying
 * `cache.name` = `name`, and the latency histogram fed by `samples(seen)`
 * (`invalidationSamples`, or null once closed). Returns a function that stops the reporting.
 */
function registerOpenTelemetry(meter, name, families, samples) {
  meter = meterOrGlobal(meter)
  if (
    typeof meter.addBatchObservableCallback !== 'function' ||
    typeof meter.createObservableCounter !== 'function' ||
    typeof meter.createHistogram !== 'function'
  ) {
    throw new TypeError('registerOpenTelemetry: meter must be an OpenTelemetry Meter (@opentelemetry/api 1.3 or later)')
  }
  const first = families()
  if (first === null) throw new Error('registerOpenTelemetry: the cache is closed')
  const instruments = new Map()
  for (const f of first) {
    for (const s of f.samples) {
      const { name: id, unit } = instrumentOf(s.name)
      if (instruments.has(id)) continue
      const options = { description: f.help, unit }
      // Counters are cumulative since the instance started; a summary's quantiles are gauges, its _sum/_count counters.
      const counter = f.kind === 'counter' || (f.kind === 'summary' && s.name !== f.name)
      instruments.set(id, counter ? meter.createObservableCounter(id, options) : meter.createObservableGauge(id, options))
    }
  }
  const observables = [...instruments.values()]
  const histogram = meter.createHistogram(HISTOGRAM, {
    description: 'Time from sending a write to a key this instance tracks to its invalidation push being applied (one probe about a second).',
    unit: 's',
    advice: { explicitBucketBoundaries: HISTOGRAM_BUCKETS },
  })
  const own = { 'cache.name': name }
  let seen = 0
  const callback = (result) => {
    const snapshot = families()
    if (snapshot === null) return
    // Samples since the last collection, recorded now (the window keeps the latest 64: about a minute).
    const latest = samples(seen)
    if (latest !== null) {
      for (const s of latest.seconds) histogram.record(s, own)
      seen = latest.count
    }
    for (const f of snapshot) {
      for (const s of f.samples) {
        // NaN: no sample yet (a summary before its first probe): nothing to report.
        if (Number.isNaN(s.value)) continue
        const { name: id, attributes } = instrumentOf(s.name)
        const instrument = instruments.get(id)
        if (instrument !== undefined) result.observe(instrument, s.value, { ...own, ...attributes, ...s.labels })
      }
    }
  }
  meter.addBatchObservableCallback(callback, observables)
  // Once only: close() calls it too, after the application may have.
  let registered = true
  return () => {
    if (registered) meter.removeBatchObservableCallback(callback, observables)
    registered = false
  }
}

module.exports = { registerOpenTelemetry, instrumentOf, HISTOGRAM }
