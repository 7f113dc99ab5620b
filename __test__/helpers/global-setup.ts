// One redis-server for the whole suite, on a free loopback port; test files
// take a database each (see `db` in their setup) so they do not see each other.
import type { GlobalSetupContext } from 'vitest/node'
import { startRedis, stopRedis, type RedisProcess } from './redis'

let server: RedisProcess | undefined

export async function setup({ provide }: GlobalSetupContext) {
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
