#!/usr/bin/env bash
# Prepare tests/interop for `cargo test --test interop`: a Python venv with PyPI
# http-message-signatures and node_modules with npm http-message-signatures, at the pinned versions.
# Idempotent and quiet: reinstalls only when requirements.txt / package-lock.json change.
# Needs python3 and node/npm; installs python3-venv with apt-get when venv is unavailable (Debian).
set -euo pipefail
cd "$(dirname "$0")"
PY="${PYTHON:-python3}"

command -v "$PY" >/dev/null || { echo "setup.sh: $PY not found" >&2; exit 1; }
command -v node >/dev/null && command -v npm >/dev/null || { echo "setup.sh: node/npm not found" >&2; exit 1; }

# Debian's python3 ships without ensurepip; `python3 -m venv` then fails.
if [ ! -x .venv/bin/python ] && ! "$PY" -c 'import ensurepip, venv' >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "setup.sh: installing python3-venv" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq python3-venv >/dev/null 2>&1 \
      || { apt-get update -qq >/dev/null && apt-get install -y -qq python3-venv >/dev/null; }
  else
    echo "setup.sh: python venv/ensurepip missing; install python3-venv" >&2
    exit 1
  fi
fi

stamp() { sha256sum "$1" | cut -d' ' -f1; }

want="$(stamp requirements.txt)"
if [ ! -x .venv/bin/python ] || [ "$(cat .venv/.sigproxy-stamp 2>/dev/null)" != "$want" ]; then
  rm -rf .venv
  "$PY" -m venv .venv
  .venv/bin/python -m pip install -q --disable-pip-version-check -r requirements.txt
  echo "$want" > .venv/.sigproxy-stamp
fi

want="$(stamp package-lock.json)"
if [ "$(cat node_modules/.sigproxy-stamp 2>/dev/null)" != "$want" ]; then
  npm ci --silent --no-audit --no-fund >/dev/null 2>&1 || npm ci --no-audit --no-fund
  echo "$want" > node_modules/.sigproxy-stamp
fi
