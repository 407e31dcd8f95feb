#!/usr/bin/env bash
# sigproxy memory soak — a benchmark, not a test: nothing asserts, CI never runs it.
#
#   benches/load/soak.sh           # from the repository root; ~12 minutes with the defaults
#   DURATION=120 benches/load/soak.sh
#
# sigproxy `required` (memory replay store, threads: 1) in front of nginx `return 200`, driven by
# loadgen at a constant RATE for DURATION seconds with pre-signed requests whose nonces never repeat.
# Every SAMPLE seconds it reads sigproxy's VmRSS (/proc/<pid>/status) and the replay store's size
# (admin /status, replay.entries), then reports RSS at start and end, the RSS slope (KiB/min,
# least squares over the second half, and over the last quarter) and the remembered nonces.
#
# A nonce is remembered for max_age + skew seconds, so at a steady rate the store holds about
# RATE x (MAX_AGE + SKEW) nonces once the first MAX_AGE + SKEW seconds have passed (70 s with the
# defaults), well inside the soak: the second half should be flat if nothing leaks. Requests are
# signed in CHUNK-second batches, each batch's `created` the second it is due to be sent, so every
# signature is at most CHUNK s old when it arrives (MAX_AGE must exceed CHUNK plus any start delay).
#
# Then (NONCE_TEST=1) it runs tests/replay_memory.rs, which measures the memory store's RSS per
# nonce at 1 million nonces (goal ≤ 64 B) in a process of its own.
#
# Knobs: DURATION=600, RATE=1000 (req/s), CONNS=16, WARMUP=5, SAMPLE=10, MAX_AGE=60, SKEW=10,
# CHUNK=10, NONCE_TEST=1, KEEP=1 (keep the temp dir: samples, loadgen output), SIGPROXY, LOADGEN,
# SIGPROXY_NO_BUILD as in run.sh. Writes the summary to stdout (and $T/summary.md).
set -euo pipefail

DURATION=${DURATION:-600}
RATE=${RATE:-1000}
CONNS=${CONNS:-16}
WARMUP=${WARMUP:-5}
SAMPLE=${SAMPLE:-10}
MAX_AGE=${MAX_AGE:-60}
SKEW=${SKEW:-10}
CHUNK=${CHUNK:-10}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HERE=$ROOT/benches/load
# shellcheck source=benches/load/lib.sh
. "$HERE/lib.sh"

if [ "$DURATION" -lt 20 ] || [ "$DURATION" -gt 3600 ]; then echo "DURATION must be 20..3600 s" >&2; exit 1; fi
[ "$MAX_AGE" -gt "$CHUNK" ] || { echo "MAX_AGE must exceed CHUNK" >&2; exit 1; }
need nginx || { apt-get update -qq && apt-get install -y -qq nginx-light >/dev/null; }
python3 -c 'import cryptography' 2>/dev/null || { echo "python3 with the cryptography module is needed" >&2; exit 1; }
build

UP=$(free_port); SP=$(free_port); ADM=$(free_port)
nginx_upstream "$UP"; wait_port "$UP"
(cd "$T" && "$SIGPROXY" keygen --key-id soak-v1 --client-id soak >"$T/keys.yaml" 2>/dev/null)

# --- pre-sign: one batch per CHUNK seconds of schedule, batch k created at T0 + k*CHUNK.
TOTAL_S=$((WARMUP + DURATION))
CHUNKS=$(((TOTAL_S + CHUNK - 1) / CHUNK + 1))
PER=$((RATE * CHUNK))
# T0 is when loadgen starts; leave time to sign (~5k signatures/s per core on a busy machine).
T0=$(($(date +%s) + CHUNKS * PER / (5000 * $(nproc)) + 5))
echo "pre-signing $((CHUNKS * PER)) requests ($CHUNKS batches)..." >&2
signers=()
for k in $(seq 0 $((CHUNKS - 1))); do
  python3 "$HERE/presign.py" "$T/soak-v1.key" soak-v1 "127.0.0.1:$SP" GET '/api/item?x=1' 0 "$PER" \
    $((T0 + k * CHUNK)) "$(printf 's%04d-' "$k")" "$T/part-$(printf '%04d' "$k").reqs" &
  signers+=($!)
  # one signer per CPU at a time (a bare `wait` would also wait for nginx)
  if [ "${#signers[@]}" -ge "$(nproc)" ]; then wait "${signers[@]}"; signers=(); fi
done
if [ "${#signers[@]}" -gt 0 ]; then wait "${signers[@]}"; fi
cat "$T"/part-*.reqs >"$T/soak.reqs"
rm -f "$T"/part-*

SIG_MAX_AGE=$MAX_AGE SIG_SKEW=$SKEW start_sigproxy required
entries() {
  python3 - "$ADM" <<'EOF' 2>/dev/null || echo -
import json, sys, urllib.request
with urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/status", timeout=2) as r:
    print(json.load(r)["replay"]["entries"])
EOF
}
RSS_IDLE=$(rss_kib "$SPID")

now=$(date +%s)
if [ "$now" -lt "$T0" ]; then sleep $((T0 - now)); fi
LATE=$(($(date +%s) - T0))
[ $((LATE + CHUNK)) -lt "$MAX_AGE" ] || { echo "signing overran by ${LATE}s: signatures would be too old" >&2; exit 1; }

# --- sampler: t (s since loadgen start), VmRSS KiB, replay entries. Bounded by its count.
sampler() {
  local start=$1
  for _ in $(seq $((TOTAL_S / SAMPLE + 2))); do
    printf '%s %s %s\n' $(($(date +%s) - start)) "$(rss_kib "$SPID")" "$(entries)"
    sleep "$SAMPLE"
  done
}
sampler "$(date +%s)" >"$T/samples.txt" &
SAMPLER=$!
PIDS+=("$SAMPLER")
echo "soak: $RATE req/s for ${DURATION}s (+${WARMUP}s warm-up), sampling every ${SAMPLE}s..." >&2
"$LOADGEN" --addr "127.0.0.1:$SP" --rate "$RATE" --connections "$CONNS" --duration "$DURATION" \
  --warmup "$WARMUP" --requests "$T/soak.reqs" >"$T/loadgen.json" 2>"$T/loadgen.err" \
  || { cat "$T/loadgen.err" >&2; exit 1; }
kill "$SAMPLER" 2>/dev/null || true
wait "$SAMPLER" 2>/dev/null || true
RSS_END=$(rss_kib "$SPID"); ENT_END=$(entries)
stop_sigproxy

# Least-squares slope of RSS (KiB/min) over the samples from second $1 on: the second half of the
# measured window, and its last quarter (a one-time step, such as a hash table doubling, dominates
# the first but not the second).
slope() {
  awk -v h="$1" '$1 >= h && $2 != "" {n++; sx+=$1; sy+=$2; sxx+=$1*$1; sxy+=$1*$2}
    END {d = n*sxx - sx*sx; if (n < 3 || d == 0) print "n/a"; else printf "%.1f", (n*sxy - sx*sy) / d * 60}' "$T/samples.txt"
}
SLOPE=$(slope $((WARMUP + DURATION / 2)))
SLOPE_Q=$(slope $((WARMUP + DURATION * 3 / 4)))
RSS_START=$(awk -v w="$WARMUP" '$1 >= w {print $2; exit}' "$T/samples.txt")
RSS_MAX=$(awk 'm < $2 {m = $2} END {print m}' "$T/samples.txt")
read -r -a lg < <(json_fields "$T/loadgen.json" achieved_rps requests p50_us p99_us max_us non_2xx errors unsent wraps)

NONCE_LINES=""
if [ "${NONCE_TEST:-1}" != 0 ]; then
  NONCE_LINES=$( (cd "$ROOT" && cargo test -q --release --test replay_memory -- --nocapture 2>&1) \
    | grep -E 'bytes per (held )?nonce|test result' || true)
fi

{
  echo "soak $(date -u '+%Y-%m-%d %H:%M UTC'), sigproxy $("$SIGPROXY" --version 2>/dev/null | awk '{print $2}') ($(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null)), $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "required, memory replay store, threads 1; max_age ${MAX_AGE}s + skew ${SKEW}s: expected plateau ≈ $((RATE * (MAX_AGE + SKEW))) nonces"
  echo "loadgen: offered $RATE req/s x ${DURATION}s, achieved ${lg[0]}, ${lg[1]} measured, p50 ${lg[2]} µs, p99 ${lg[3]} µs, max ${lg[4]} µs, non-2xx ${lg[5]}, errors ${lg[6]}, unsent ${lg[7]}, wraps ${lg[8]}"
  echo "RSS KiB: idle $RSS_IDLE, after warm-up $RSS_START, end $RSS_END, max $RSS_MAX; slope over the second half $SLOPE KiB/min, over the last quarter $SLOPE_Q KiB/min"
  echo "replay entries at the end: $ENT_END"
  echo "samples (s, VmRSS KiB, entries): $(awk '{printf "%s%s/%s/%s", (NR > 1 ? ", " : ""), $1, $2, $3}' "$T/samples.txt")"
  if [ -n "$NONCE_LINES" ]; then echo "tests/replay_memory.rs: $(echo "$NONCE_LINES" | paste -sd ';' -)"; fi
} | tee "$T/summary.md"
