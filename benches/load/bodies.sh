#!/usr/bin/env bash
# Large bodies through sigproxy (issue 19: "bodies still stream at full speed") — a benchmark, not
# a test: nothing asserts.
#
#   benches/load/bodies.sh          # from the repository root; prints a Markdown table
#
# sigproxy (mode hybrid, 1 worker) in front of sink.py (answers 200 once it has read the body):
# an unsigned POST of UNSIGNED_MIB MiB (streamed through) UNSIGNED_COUNT times, and a signed POST
# of SIGNED_MIB MiB (read whole, Content-Digest checked, verified, then sent on) SIGNED_COUNT times,
# each on one keep-alive connection (bodies.py); per request the wall time (first byte sent ->
# answer read) and sigproxy's CPU over the batch. Every build (SIGPROXY, EXTRA_SIGPROXY as in
# run.sh) once per round, ROUNDS rounds, medians: compare builds within one run.
#
# Knobs: ROUNDS=3, UNSIGNED_MIB=100, UNSIGNED_COUNT=3, SIGNED_MIB=10, SIGNED_COUNT=5,
# EXTRA_SIGPROXY="name=/path;...", SIGPROXY, SIGPROXY_NO_BUILD, BOOST=1, KEEP=1 (lib.sh). Needs
# python3 with `cryptography` (as run.sh). About 10 s per build per round.
set -euo pipefail

ROUNDS=${ROUNDS:-3}
UNSIGNED_MIB=${UNSIGNED_MIB:-100}
UNSIGNED_COUNT=${UNSIGNED_COUNT:-3}
SIGNED_MIB=${SIGNED_MIB:-10}
SIGNED_COUNT=${SIGNED_COUNT:-5}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HERE=$ROOT/benches/load
# shellcheck source=benches/load/lib.sh
. "$HERE/lib.sh"

python3 -c 'import cryptography' 2>/dev/null || { echo "python3 with the cryptography module is needed" >&2; exit 1; }
build
boost
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

UP=$(free_port); SP=$(free_port); ADM=$(free_port)
# The upstream reads each body whole before it answers (sink.py; nginx `return 200` answers first).
python3 "$HERE/sink.py" "$UP" &
PIDS+=($!)
wait_port "$UP"
(cd "$T" && "$SIGPROXY" keygen --key-id bench-v1 --client-id bench >"$T/keys.yaml" 2>/dev/null)
SIGNED_BYTES=$((SIGNED_MIB * 1048576))
# One nonce per signed request of the whole run: every build and round gets its own slice.
BUILDS=$((1 + $(extra_sigproxies | wc -l)))
python3 "$HERE/presign.py" "$T/bench-v1.key" bench-v1 "127.0.0.1:$SP" POST /api/upload \
  "$SIGNED_BYTES" $((SIGNED_COUNT * ROUNDS * BUILDS)) "$(date +%s)" b "$T/all.reqs"
export SIG_MAX_BODY=$((SIGNED_BYTES + 1048576))

CASES=()
declare -A UMIBS SMIBS UCPU SCPU BAD
slice=0
# one NAME BIN: a fresh sigproxy, the unsigned batch, the signed batch.
one() {
  local name=$1 bin=$2 c0 c1 c2 out
  [[ " ${CASES[*]} " == *" $name "* ]] || CASES+=("$name")
  # The signed requests of this build and round: their own nonces (a slice of all.reqs).
  python3 - "$T/all.reqs" "$T/slice.reqs" $((slice * SIGNED_COUNT)) "$SIGNED_COUNT" <<'PY'
import sys
reqs = [r for r in open(sys.argv[1], "rb").read().split(b"\r\n\r\n") if r.strip()]
start, n = int(sys.argv[3]), int(sys.argv[4])
open(sys.argv[2], "wb").write(b"".join(r + b"\r\n\r\n" for r in reqs[start : start + n]))
PY
  cp "$T/all.reqs.body" "$T/slice.reqs.body"
  slice=$((slice + 1))
  SP_BIN=$bin start_sigproxy hybrid
  c0=$(cpu_ticks "$SPID")
  out=$(python3 "$HERE/bodies.py" "$SP" unsigned $((UNSIGNED_MIB * 1048576)) "$UNSIGNED_COUNT")
  c1=$(cpu_ticks "$SPID")
  read -r u_mibs u_bad < <(python3 -c 'import json,sys,statistics as st; d=json.loads(sys.argv[1]); print(round(st.median(d["bytes"] / s / 1048576 for s in d["seconds"]), 1), sum(x // 100 != 2 for x in d["status"]))' "$out")
  out=$(python3 "$HERE/bodies.py" "$SP" signed "$T/slice.reqs" "$SIGNED_COUNT")
  c2=$(cpu_ticks "$SPID")
  read -r s_mibs s_bad < <(python3 -c 'import json,sys,statistics as st; d=json.loads(sys.argv[1]); print(round(st.median(d["bytes"] / s / 1048576 for s in d["seconds"]), 1), sum(x // 100 != 2 for x in d["status"]))' "$out")
  stop_sigproxy
  UMIBS[$name]="${UMIBS[$name]:-} $u_mibs"; SMIBS[$name]="${SMIBS[$name]:-} $s_mibs"
  UCPU[$name]="${UCPU[$name]:-} $(awk -v t=$((c1 - c0)) -v k="$TCK" -v n="$UNSIGNED_COUNT" -v m="$UNSIGNED_MIB" 'BEGIN {printf "%.2f", t / k * 1000 / (n * m)}')"
  SCPU[$name]="${SCPU[$name]:-} $(awk -v t=$((c2 - c1)) -v k="$TCK" -v n="$SIGNED_COUNT" -v m="$SIGNED_MIB" 'BEGIN {printf "%.2f", t / k * 1000 / (n * m)}')"
  BAD[$name]=$(( ${BAD[$name]:-0} + u_bad + s_bad ))
  echo "$name: unsigned $u_mibs MiB/s, signed $s_mibs MiB/s, non-2xx $((u_bad + s_bad))" >&2
}
median() { tr ' ' '\n' | awk 'NF' | sort -g | awk '{v[NR] = $1} END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

for _ in $(seq "$ROUNDS"); do
  one sigproxy "$SIGPROXY"
  while IFS=$'\t' read -r name bin; do one "$name" "$bin"; done < <(extra_sigproxies)
done

echo "Large bodies through sigproxy hybrid (1 worker) to sink.py, $ROUNDS round(s), medians;"
echo "$(date -u '+%Y-%m-%d %H:%M UTC'); sigproxy binary $SIGPROXY_SRC ($(sha256sum "$SIGPROXY" | cut -c1-12), checkout"
echo "$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null)); load average $LOAD_START at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end; priority boost: $(boosted):"
echo
echo "| build | unsigned ${UNSIGNED_MIB} MiB POST, MiB/s | each round | CPU ms per MiB | signed ${SIGNED_MIB} MiB POST, MiB/s | each round | CPU ms per MiB | non-2xx |"
echo "|---|---|---|---|---|---|---|---|"
for c in "${CASES[@]}"; do
  echo "| $c | **$(echo "${UMIBS[$c]}" | median)** | $(echo "${UMIBS[$c]}" | sed 's/^ //; s/ / · /g') | $(echo "${UCPU[$c]}" | median) | **$(echo "${SMIBS[$c]}" | median)** | $(echo "${SMIBS[$c]}" | sed 's/^ //; s/ / · /g') | $(echo "${SCPU[$c]}" | median) | ${BAD[$c]} |"
done
