import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    dir: '__test__',
    include: ['**/*.test.ts'],
    exclude: ['**/node_modules/**', 'consumer/**'],
    globalSetup: ['__test__/helpers/global-setup.ts'],
    // Native addons are safest in child processes; the consumer test covers threads.
    pool: 'forks',
    testTimeout: 30_000,
    hookTimeout: 60_000,
  },
})
