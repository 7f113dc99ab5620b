// One redis-server for the whole suite, on a free loopback port; test files
// take a database each (see `db` in their setup) so they do not see each other.
import { startRedis, stopRedis, type RedisProcess } from './redis'

let server: RedisProcess | undefined

// Typed inline: importing vitest/node's types would drag in untyped dependencies.
export async function setup({ provide }: { provide: (key: 'redisPort', value: number) => void }) {
  server = await startRedis()
  provide('redisPort', server.port)
}

export async function teardown() {
  await stopRedis(server)
}

declare module 'vitest' {
  export interface ProvidedContext {
    redisPort: number
  }
}
