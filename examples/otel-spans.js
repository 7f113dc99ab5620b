'use strict'
// An OpenTelemetry span per cache operation, built from the
// `native-cache:operation` tracing channel: started on `start` (in the
// caller's active context, so it nests under the request's span), ended on
// `asyncEnd` with the tier that answered. Copy `traceCacheOperations` into an
// application that has an OpenTelemetry tracer; run this file to see it print
// the spans of a few calls (`node examples/otel-spans.js`).
const { tracingChannel } = require('node:diagnostics_channel')
const { context, SpanKind, SpanStatusCode } = require('@opentelemetry/api')

/** Subscribes `tracer` to the cache's operations; returns the unsubscribe function. */
function traceCacheOperations(tracer) {
  const channel = tracingChannel('native-cache:operation')
  const spans = new WeakMap()
  const handlers = {
    start(ctx) {
      const attributes = { 'cache.operation': ctx.method }
      if (ctx.key !== undefined) attributes['cache.key'] = String(ctx.key)
      if (ctx.keys !== undefined) attributes['cache.keys.count'] = ctx.keys.length
      if (ctx.pattern !== undefined) attributes['cache.pattern'] = ctx.pattern
      spans.set(ctx, tracer.startSpan(`cache ${ctx.method}`, { kind: SpanKind.CLIENT, attributes }, context.active()))
    },
    end() {},
    asyncStart() {},
    error(ctx) {
      spans.get(ctx)?.recordException(ctx.error)
    },
    asyncEnd(ctx) {
      const span = spans.get(ctx)
      if (span === undefined) return
      spans.delete(ctx)
      // 'memo' | 'l1' | 'redis' | 'miss' for reads, 'ok' for the rest, 'error' with ctx.code.
      span.setAttribute('cache.outcome', ctx.outcome ?? 'unknown')
      if (ctx.cached === false) span.setAttribute('cache.stored', false)
      if (ctx.coalesced) span.setAttribute('cache.coalesced', true)
      if (ctx.outcome === 'error') {
        span.setAttribute('error.type', ctx.code ?? ctx.error?.name ?? 'error')
        span.setStatus({ code: SpanStatusCode.ERROR, message: ctx.code })
      }
      span.end()
    },
  }
  channel.subscribe(handlers)
  return () => channel.unsubscribe(handlers)
}

module.exports = { traceCacheOperations }

if (require.main === module) {
  const { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } = require('@opentelemetry/sdk-trace-base')
  const { AsyncLocalStorageContextManager } = require('@opentelemetry/context-async-hooks')
  const { CacheService } = require('..')
  // What an OpenTelemetry Node SDK sets up: the active span follows async calls.
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable())
  const exporter = new InMemorySpanExporter()
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] })
  const tracer = provider.getTracer('native-cache-example')
  const stop = traceCacheOperations(tracer)
  const cache = new CacheService({ mode: 'memory' })
  ;(async () => {
    // A request span; the cache's spans are its children.
    await tracer.startActiveSpan('GET /status/:id', async (request) => {
      await cache.set('status:1', { up: true }, 60)
      await cache.get('status:1')
      await cache.get('status:2')
      await cache.getOrSet('status:3', async () => ({ up: false }), 60)
      request.end()
    })
    stop()
    await cache.close()
    const request = exporter.getFinishedSpans().find((s) => s.name === 'GET /status/:id')
    const spans = exporter
      .getFinishedSpans()
      .filter((s) => s.name.startsWith('cache '))
      .map((s) => ({
        name: s.name,
        key: s.attributes['cache.key'],
        outcome: s.attributes['cache.outcome'],
        child: s.parentSpanContext?.spanId === request.spanContext().spanId,
      }))
    console.log(JSON.stringify(spans))
  })()
}
