#!/usr/bin/env bash
# The one test command (README, .ci/run): installs what the tests need on a fresh Debian machine
# with the Rust toolchain — system packages, the Python and npm signers used for interop — then
# runs formatting and lint checks and every test. Safe to run again; it installs only what is
# missing.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n== %s\n' "$*"; }

# System packages: cmake (Pingora builds zlib-ng), python3-venv (interop signers),
# redis-server (shared replay store tests, also run as Sentinel and as a TLS server), redis-tools
# (redis-cli --cluster create for the Redis Cluster tests), openssl (certificates made at test
# time, s_client), curl (the HTTP/2 and TLS client of the protocol tests), nodejs/npm (interop
# signers).
need=()
command -v cmake >/dev/null || need+=(cmake)
command -v curl >/dev/null || need+=(curl)
command -v redis-server >/dev/null || need+=(redis-server)
command -v redis-cli >/dev/null || need+=(redis-tools)
command -v openssl >/dev/null || need+=(openssl)
command -v node >/dev/null || need+=(nodejs)
command -v npm >/dev/null || need+=(npm)
python3 -c 'import ensurepip, venv' 2>/dev/null || need+=(python3-venv)
if [ ${#need[@]} -gt 0 ]; then
  log "apt-get install ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need[@]}" >/dev/null
fi

if [ -x tests/interop/setup.sh ]; then
  log "interop signers (PyPI + npm http-message-signatures)"
  bash tests/interop/setup.sh
fi

log "cargo fmt --check"
cargo fmt --all -- --check

log "cargo clippy"
cargo clippy --all-targets --locked -- -D warnings

log "cargo build (binary used by the black-box tests)"
cargo build --locked --bins

log "cargo test"
cargo test --all-targets --locked --no-fail-fast

log "Helm chart, alert rules, dashboard, example policies (helm/test-chart.sh)"
SIGPROXY_BIN="${CARGO_TARGET_DIR:-$PWD/target}/debug/sigproxy" bash helm/test-chart.sh

# The container image: built with podman from local debootstrap bases and smoke-tested with
# --network=host. 15-25 min on a fresh 2-core machine, seconds when podman's cache is warm.
# SIGPROXY_IMAGE_SMOKE=0 skips it on a developer machine; CI always runs it.
if [ "${CI:-}" = true ] || [ "${SIGPROXY_IMAGE_SMOKE:-1}" = 1 ]; then
  log "container image build and smoke test (docker/build-and-smoke.sh)"
  bash docker/build-and-smoke.sh
fi

if [ -f fuzz/Cargo.toml ]; then
  # Same target dir as clippy above, so the dependencies' check artifacts are reused.
  log "fuzz targets compile"
  CARGO_TARGET_DIR="$PWD/target" cargo check --manifest-path fuzz/Cargo.toml --bins --quiet
fi
