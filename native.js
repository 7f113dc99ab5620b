'use strict'

// Loads the addon built for the running Node: this machine's platform in
// napi-rs' naming (linux-x64-musl, darwin-arm64, ...), as a local
// native-cache.<platform>.node in a checkout, else the platform package
// @medianest/native-cache-<platform>. Linux's libc is asked of the running Node
// (its process report), not of the filesystem: napi-rs' generated loader
// (binding.js) reads /usr/bin/ldd first, which names the host's libc, so a
// musl Node on a glibc host (or the reverse) was handed the other binary.
// binding.js still loads what this file does not name (NAPI_RS_NATIVE_LIBRARY_PATH,
// other platforms); when nothing loads, its generic "Cannot find native binding"
// is rethrown as an error that names the platform, the package that should carry
// its binary, and what to do. There is no JavaScript fallback on purpose:
// README.md, "Platforms", says why.
const { existsSync } = require('node:fs')
const { join } = require('node:path')

module.exports = load()

function load() {
  const { name, napi } = require('./package.json')
  const here = platformName()
  const failures = []
  if (!process.env.NAPI_RS_NATIVE_LIBRARY_PATH) {
    for (const candidate of [join(__dirname, `${napi.binaryName}.${here}.node`), `${name}-${here}`]) {
      try {
        return require(candidate)
      } catch (error) {
        if (error.code !== 'MODULE_NOT_FOUND') failures.push(error)
      }
    }
  }
  try {
    return require('./binding.js')
  } catch (cause) {
    throw noBinaryError(cause, failures[0])
  }
}

function noBinaryError(cause, failure) {
  const { name, version, napi } = require('./package.json')
  const here = platformName()
  const supported = napi.targets.map(tripleToPlatform)
  const expected = `${name}-${here}`
  const build = 'build it from source: `npm run build` in a clone of this repository (Rust >= 1.89, see README.md)'
  let what
  if (existsSync(join(__dirname, 'Cargo.toml'))) {
    what = `This is a source checkout: run \`npm run build\` (Rust >= 1.89) to build ${napi.binaryName}.${here}.node.`
  } else if (!supported.includes(here)) {
    what = `No prebuilt binary is published for ${here} (published: ${supported.join(', ')}); ${build}.`
  } else if (!resolvable(expected)) {
    what =
      `${expected} is not installed. It is an optional dependency of ${name}@${version}: reinstall without ` +
      '`--omit=optional`/`--no-optional`, on this platform (a node_modules copied from another OS, CPU or libc ' +
      'lacks it; `npm ci` installs it from a lockfile written anywhere).'
  } else {
    what =
      `${expected} is installed but its binary failed to load (${failure ? `${failure.message.split('\n')[0]}; ` : ''}` +
      `see the cause below: an older glibc than the binary needs, or a version other than ${version}); ` +
      `reinstall it, or ${build}.`
  }
  const error = new Error(`${name}: no native binary for ${here} (Node ${process.version}). ${what}`)
  error.code = 'ERR_NATIVE_CACHE_NO_BINARY'
  error.cause = cause
  return error
}

/** This machine in napi-rs' package naming: linux-x64-musl, darwin-arm64, win32-x64-msvc, … */
function platformName() {
  const { platform, arch } = process
  if (platform === 'linux') return `${platform}-${arch}-${isGlibc() ? 'gnu' : 'musl'}`
  if (platform === 'win32') return `${platform}-${arch}-msvc`
  return `${platform}-${arch}`
}

/** The running Node's libc: its report names a glibc version only when glibc runs it. */
function isGlibc() {
  const { report } = process
  const excludeNetwork = report?.excludeNetwork
  try {
    // No network section: a report otherwise resolves the host's interfaces.
    report.excludeNetwork = true
    return Boolean(report.getReport().header.glibcVersionRuntime)
  } catch {
    return true
  } finally {
    if (report) report.excludeNetwork = excludeNetwork
  }
}

/** x86_64-unknown-linux-musl -> linux-x64-musl, aarch64-apple-darwin -> darwin-arm64. */
function tripleToPlatform(triple) {
  const [cpu, , system, abi] = triple.split('-')
  const arch = { x86_64: 'x64', aarch64: 'arm64', i686: 'ia32', armv7: 'arm' }[cpu] ?? cpu
  if (system === 'darwin') return `darwin-${arch}`
  if (system === 'windows') return `win32-${arch}-${abi}`
  return [system, arch, abi].filter(Boolean).join('-')
}

function resolvable(pkg) {
  try {
    require.resolve(`${pkg}/package.json`)
    return true
  } catch {
    return false
  }
}
