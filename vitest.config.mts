import { defineConfig } from 'vitest/config'
import { BaseSequencer, type TestSpecification } from 'vitest/node'

/**
 * Files that keep both cores busy and assert no timing: the benchmark's quick
 * form, the soak, and the consumer project (npm pack, npm install, tsc, vitest).
 * They run first, two at a time; the rest run after them, two at a time too
 * (most of their time is spent waiting on timers and servers), but for ALONE.
 */
const HEAVY = ['**/bench.test.ts', '**/soak.test.ts', '**/consumer.test.ts']
/**
 * Files whose timing bounds missed (and passed again alone) while another file
 * ran beside them on the loaded development machine: each runs alone, last.
 */
const ALONE = ['cluster-faults', 'large-calls', 'late-send', 'store-hardening'].map((name) => `**/${name}.test.ts`)
const EXCLUDE = ['**/node_modules/**', 'consumer/**']
/**
 * The longest files of the "rest" group (15-45 s each), started first so that
 * none is left running by itself at the group's end. Without vitest's cache
 * (a fresh clone) files go largest first, which put these in the middle.
 */
const LONGEST = ['partition', 'no-stale-write-back', 'invalidation-latency', 'coherence', 'distributed-lock']

class LongestFirst extends BaseSequencer {
  async sort(files: TestSpecification[]) {
    const rank = (f: TestSpecification) => {
      const i = LONGEST.findIndex((name) => f.moduleId.endsWith(`/${name}.test.ts`))
      return i === -1 ? LONGEST.length : i
    }
    // Stable: the rest keep the base order (failed first, then longest as cached, or largest).
    return (await super.sort(files)).sort((a, b) => rank(a) - rank(b))
  }
}

export default defineConfig({
  test: {
    dir: '__test__',
    exclude: EXCLUDE,
    globalSetup: ['__test__/helpers/global-setup.ts'],
    sequence: { sequencer: LongestFirst },
    // Native addons are safest in child processes; the consumer test covers threads.
    pool: 'forks',
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // One pool serves every project (vitest 3.2 sizes it from the root config): two
    // files at a time, where the default on two cores is one. minWorkers too: with
    // the default minimum (one), a worker that finishes a file is not replaced
    // while the other still runs, and the queued files wait for that one.
    maxWorkers: 2,
    minWorkers: 2,
    projects: [
      {
        extends: true,
        test: { name: 'heavy', include: HEAVY, sequence: { groupOrder: 0 } },
      },
      {
        extends: true,
        test: { name: 'rest', include: ['**/*.test.ts'], exclude: [...EXCLUDE, ...HEAVY, ...ALONE], sequence: { groupOrder: 1 } },
      },
      ...ALONE.map((glob, i) => ({
        extends: true,
        test: { name: glob.slice(3, -8), include: [glob], sequence: { groupOrder: 2 + i } },
      })),
    ],
  },
})
