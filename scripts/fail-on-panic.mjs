// Runs a command, passing its output through, and fails if any of it says
// "panicked": a Rust panic in a background task can print while every test
// still passes (issue 8), and that must fail the run.
import { spawn } from 'node:child_process'

const [cmd, ...args] = process.argv.slice(2)
if (!cmd) {
  console.error('usage: node scripts/fail-on-panic.mjs <command> [args…]')
  process.exit(2)
}
let panicked = false
// Keep a short tail across chunks so a word split between two writes is still seen.
const tails = { stdout: '', stderr: '' }
const child = spawn(cmd, args, { stdio: ['inherit', 'pipe', 'pipe'], shell: process.platform === 'win32' })
for (const name of ['stdout', 'stderr']) {
  child[name].on('data', (chunk) => {
    process[name].write(chunk)
    const text = tails[name] + chunk.toString('utf8')
    if (text.includes('panicked')) panicked = true
    tails[name] = text.slice(-16)
  })
}
child.on('close', (code, signal) => {
  if (panicked) {
    console.error('\nfail-on-panic: the output contains "panicked"; a Rust panic is a failure even when the tests pass')
    process.exit(1)
  }
  process.exit(code ?? (signal ? 1 : 0))
})
