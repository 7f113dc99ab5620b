/** The ~1 KB service-status record the backend caches (id, name, status, uptime, an ISO date, ten checks). */
export function record(i) {
  return {
    id: `svc-${i}`,
    name: `media-service-${i}`,
    status: 'up',
    uptime: 99.97,
    lastCheckAt: new Date(1_700_000_000_000 + i * 1000).toISOString(),
    checks: Array.from({ length: 10 }, (_, j) => ({ name: `probe-${j}`, ok: true, latencyMs: 3 + j, region: 'eu-west' })),
  }
}
