// npm test after the build: vitest, and cargo test beside it at the lowest CPU
// priority. Most vitest files wait on timers and servers, so the Rust tests'
// compile and run use the idle CPU instead of adding about 35 s after vitest;
// at nice 19 they take next to nothing from a test that is running. Both run
// through fail-on-panic.mjs; cargo's output is printed once vitest is done.
import { spawn, execFileSync } from 'node:child_process'

const failOnPanic = new URL('./fail-on-panic.mjs', import.meta.url).pathname
const host = /^host: (.+)$/m.exec(execFileSync('rustc', ['-vV'], { encoding: 'utf8' }))[1]
const cargo = ['cargo', 'test', '--release', '--target', host]
const low = process.platform === 'win32' ? cargo : ['nice', '-n', '19', ...cargo]

const rust = spawn(process.execPath, [failOnPanic, ...low], { stdio: ['ignore', 'pipe', 'pipe'] })
const rustOutput = []
rust.stdout.on('data', (c) => rustOutput.push(c))
rust.stderr.on('data', (c) => rustOutput.push(c))
const rustDone = new Promise((resolve) => rust.on('close', (code, signal) => resolve(code ?? (signal ? 1 : 0))))

const vitest = spawn(process.execPath, [failOnPanic, 'vitest', 'run', ...process.argv.slice(2)], { stdio: 'inherit', shell: process.platform === 'win32' })
const vitestCode = await new Promise((resolve) => vitest.on('close', (code, signal) => resolve(code ?? (signal ? 1 : 0))))

console.log(`\n=== ${low.join(' ')}${rust.exitCode === null ? ' (still running)' : ''}`)
const rustCode = await rustDone
process.stdout.write(Buffer.concat(rustOutput))
if (vitestCode !== 0) console.error(`npm test: vitest failed (exit ${vitestCode})`)
if (rustCode !== 0) console.error(`npm test: cargo test failed (exit ${rustCode})`)
process.exit(vitestCode || rustCode)
