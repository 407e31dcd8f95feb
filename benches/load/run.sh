#!/usr/bin/env bash
# sigproxy load harness — a benchmark, not a test: nothing here asserts timings, and CI never runs it.
#
#   benches/load/run.sh            # from the repository root; writes benches/RESULTS.md
#
# One machine, one worker each, wrk over 127.0.0.1 only, ROUNDS rounds (every case once per round,
# in the same order, so a load change on the machine hits every case alike); reported: medians.
#   a  direct        wrk -> nginx `return 200` (1 worker, its own config in a temp dir)
#   b  nginx proxy   wrk -> nginx plain keep-alive reverse proxy -> a
#   b  HAProxy       wrk -> HAProxy (Debian), 1 thread, keep-alive, `http-reuse always` -> a
#   b  Pingora floor wrk -> a minimal Pingora 0.9 `ProxyHttp` with only `upstream_peer`, mimalloc
#                    (benches/load/floor.rs, `--example floor`) -> a: the engine's own cost
#   b  floor + compute  the floor with COMPUTE_ITERS steps of plain compute per request (~38 µs)
#   c  off           wrk -> sigproxy mode off -> a
#   d  hybrid        wrk -> sigproxy mode hybrid, unsigned GETs -> a
#   e  required      wrk -> sigproxy mode required, every GET signed with a fresh nonce -> a
#   f  POST 1K/64K   signed POSTs with a Content-Digest'd body, through nginx-proxy and sigproxy required
#   e  + Redis       the signed GETs with `replay.store: redis` on a local redis-server (if installed)
# then, open loop at a constant rate (loadgen, benches/load/loadgen.rs, not wrk): the floor,
# sigproxy off, nginx and HAProxy all at half of the floor's wrk req/s (the "p99 at half the floor's
# saturation" goal), and sigproxy required, the floor and sigproxy off at half of the signed
# case's wrk req/s (the signed path's extra cost at one rate); ROUNDS rounds, medians.
# Every case also counts the machine's inter-processor interrupts (/proc/interrupts RES + CAL) and
# the proxy's context switches (all its threads), per request.
# Then the bare Ed25519 verify_strict (criterion, same run) for the signed-path ratio.
# Reported: requests/s, p50/p99 latency (wrk --latency), and the proxy's CPU µs per request:
# utime+stime deltas of the proxy process from /proc/<pid>/stat (nginx: its worker) over the
# measured run, divided by the requests wrk completed. Signed requests are pre-signed by
# presign.py (checked byte for byte against `sigproxy sign --emit-request` first) and cycled
# by cycle.lua, so the client spends no time signing.
#
# More rows in the same run (for a second build or a lean request path):
#   EXTRA_PROXIES="name|command with {LISTEN} and {UPSTREAM};name2|..."   passthrough rows "b name"
#   EXTRA_SIGPROXY="name=/path/to/sigproxy;name2=/path2"                  rows "c name off" and
#                                                                         "e name required, signed GET"
#   FLOOR_ARGS="--l4-read-buffer 4096"      arguments for the floor (listener buffer sizes)
#   SIGPROXY_EXTRA_POLICY="yaml lines"      more policy for every sigproxy instance
#
# Knobs (environment): ROUNDS=3, DURATION=5 (s per case), WARMUP=1 (s, unsigned GETs, not
# measured), CONNS=32 (wrk -c, loadgen --connections), HALF_RATE (req/s of the open-loop
# comparison; default half of the floor's median wrk req/s), HALF=0 skips the open-loop phase,
# COMPUTE_ITERS=14000 (0 drops the floor + compute row), POSTS=0 skips the POST rows, REDIS=0
# the Redis row, VERIFY_BENCH=0 the criterion verify,
# BOOST=1 (this session's scheduler autogroup at nice -20 while it runs: see lib.sh),
# KEEP=1 (keep the temp dir: configs, logs, wrk outputs), SIGPROXY, LOADGEN, FLOOR (binaries;
# built with `cargo build --release` unless SIGPROXY_NO_BUILD=1; honours CARGO_TARGET_DIR),
# OUT=benches/RESULTS.md. Needs wrk, nginx, haproxy, python3 with `cryptography`; installs wrk,
# nginx-light and haproxy with apt-get when missing. Takes about ROUNDS x 80 s + ROUNDS x 35 s
# (open loop) + ~40 s pre-signing + ~15 s verify bench: ~6.5 minutes with the defaults, both CPUs.
# Shared functions: lib.sh.
set -euo pipefail

DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
CONNS=${CONNS:-32}
ROUNDS=${ROUNDS:-3}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HERE=$ROOT/benches/load
OUT=${OUT:-$ROOT/benches/RESULTS.md}
# shellcheck source=benches/load/lib.sh
. "$HERE/lib.sh"

if ! need wrk || ! need nginx || ! need haproxy; then
  apt-get update -qq && apt-get install -y -qq wrk nginx-light haproxy >/dev/null
fi
python3 -c 'import cryptography' 2>/dev/null || { echo "python3 with the cryptography module is needed" >&2; exit 1; }
build
boost
STARTED=$(date -u '+%Y-%m-%d %H:%M UTC'); T_START=$(date +%s); LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

UP=$(free_port); NPX=$(free_port); HAP=$(free_port); FLP=$(free_port); XP=$(free_port)
SP=$(free_port); ADM=$(free_port)

# --- the persistent servers: nginx upstream and proxy, HAProxy, the Pingora floor.
nginx_upstream "$UP"
nginx_proxy proxy "$NPX"
wait_port "$UP"; wait_port "$NPX"
start_haproxy "$HAP"
start_proxy_cmd floor "$FLP" "$(floor_cmd)"; FLOOR_PID=$PROXY_PID
# The floor again with a verify-sized computation per request (COMPUTE_ITERS steps of a one-register
# shift/xor/multiply chain, ~38 µs here; 0 leaves the row out): what ~40 µs of plain compute costs
# inside a proxy under load, against what it costs alone (`floor --calibrate`, each round).
COMPUTE_ITERS=${COMPUTE_ITERS:-14000}
if [ "$COMPUTE_ITERS" != 0 ]; then
  FCP=$(free_port)
  start_proxy_cmd floor-compute "$FCP" "$(floor_cmd) --compute-iters $COMPUTE_ITERS"; FLOORC_PID=$PROXY_PID
fi

# --- keys and pre-signed requests.
(cd "$T" && "$SIGPROXY" keygen --key-id bench-v1 --client-id bench >"$T/keys.yaml" 2>/dev/null)
KEY=$T/bench-v1.key
AUTH=127.0.0.1:$SP
# self-check: presign.py must build exactly what `sigproxy sign` builds (GET and POST).
python3 "$HERE/presign.py" "$KEY" bench-v1 "$AUTH" GET '/api/item?x=1' 0 1 1700000000 selfcheck "$T/chk.get"
"$SIGPROXY" sign --key "$KEY" --key-id bench-v1 --created 1700000000 --nonce selfcheck \
  --emit-request "$T/ref.get" "http://$AUTH/api/item?x=1" >/dev/null
cmp -s "$T/chk.get" "$T/ref.get" || { echo "presign.py drifted from sigproxy sign (GET)" >&2; exit 1; }
python3 "$HERE/presign.py" "$KEY" bench-v1 "$AUTH" POST /api/upload 1024 1 1700000000 selfcheck "$T/chk.post"
"$SIGPROXY" sign --key "$KEY" --key-id bench-v1 -X POST -H 'Content-Type: application/octet-stream' \
  -d "@$T/chk.post.body" --created 1700000000 --nonce selfcheck --emit-request "$T/ref.post" \
  "http://$AUTH/api/upload" >/dev/null
cat "$T/chk.post" "$T/chk.post.body" | cmp -s - "$T/ref.post" \
  || { echo "presign.py drifted from sigproxy sign (POST)" >&2; exit 1; }

NOW=$(date +%s)
# Enough distinct nonces for a fast proxy: 25k requests/s for a whole case (wraps are reported as
# non-2xx). Every round runs a fresh sigproxy (and a fresh Redis), so the files are reused.
N=$((DURATION * 25000))
echo "pre-signing requests..." >&2
python3 "$HERE/presign.py" "$KEY" bench-v1 "$AUTH" GET '/api/item?x=1' 0 "$N" "$NOW" g "$T/get.reqs" & g1=$!
if [ "${POSTS:-1}" != 0 ]; then
  python3 "$HERE/presign.py" "$KEY" bench-v1 "$AUTH" POST /api/upload 1024 "$N" "$NOW" a "$T/post1k.reqs" & g2=$!
  python3 "$HERE/presign.py" "$KEY" bench-v1 "$AUTH" POST /api/upload 65536 "$N" "$NOW" b "$T/post64k.reqs" & g3=$!
  wait "$g2" "$g3"
fi
wait "$g1"

# --- per-round measurements, kept per case; medians at the end.
CASES=()                      # case names in first-seen order
declare -A SEEN CPU RPS P50 P99 REQS NON2XX FAILED IPI CSW CALIB
per_req() { awk -v d="$1" -v n="$2" 'BEGIN {printf "%.2f", d / n}'; } # count, requests
us() { # wrk latency (e.g. 578.00us, 1.53ms, 2.00s) -> µs
  awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) print n; else if (v ~ /ms$/) print n * 1000; else if (v ~ /s$/) print n * 1e6; else print n }'
}
record() { # case key value...: appends " value" to ARR[case]
  local arr=$1 name=$2 v=$3
  local -n a=$arr
  a[$name]="${a[$name]:-} $v"
}
measure() { # case-name, proxy-pid ("-" for none), port, [reqs-file [body-file]]
  local name=$1 pid=$2 port=$3 script=() wo="$T/wrk-${#CASES[@]}-$RANDOM.txt"
  if [ -z "${SEEN[$name]:-}" ]; then SEEN[$name]=1; CASES+=("$name"); fi
  if [ $# -ge 4 ]; then script=(-s "$HERE/cycle.lua" -- "$4" ${5:+"$5"}); fi
  wrk -t1 -c"$CONNS" -d"${WARMUP}s" "http://127.0.0.1:$port/api/warmup" >/dev/null 2>&1 || true
  local t0=0 t1=0 i0 i1 c0=0 c1=0
  [ "$pid" != - ] && { t0=$(cpu_ticks "$pid"); c0=$(ctxsw "$pid"); }
  i0=$(ipis)
  wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency "http://127.0.0.1:$port/api/item?x=1" "${script[@]}" >"$wo" 2>&1 || true
  i1=$(ipis)
  [ "$pid" != - ] && { t1=$(cpu_ticks "$pid"); c1=$(ctxsw "$pid"); }
  local reqs rps p50 p99 non2xx cpu
  reqs=$(awk '/requests in/ {print $1}' "$wo")
  if [ -z "$reqs" ] || [ "$reqs" = 0 ]; then
    # wrk printed no result (it has, rarely, exited silently): this round has no value for the
    # case, the medians use the others, and the table counts the failure.
    record FAILED "$name" 1
    record CPU "$name" -; record RPS "$name" -; record P50 "$name" -; record P99 "$name" -
    record IPI "$name" -; record CSW "$name" -
    echo "[$ROUND] $name: wrk gave no result ($(head -c 200 "$wo" | tr '\n' ' '))" >&2
    return 0
  fi
  rps=$(awk '/^Requests\/sec/ {printf "%.0f", $2}' "$wo")
  p50=$(us "$(awk '$1=="50%" {print $2}' "$wo")")
  p99=$(us "$(awk '$1=="99%" {print $2}' "$wo")")
  non2xx=$(awk '/Non-2xx/ {print $5}' "$wo"); non2xx=${non2xx:-0}
  if [ "$pid" = - ]; then cpu=-; else
    cpu=$(awk -v d=$((t1 - t0)) -v n="$reqs" -v hz="$TCK" 'BEGIN {printf "%.1f", d * 1e6 / hz / n}')
  fi
  record CPU "$name" "$cpu"; record RPS "$name" "$rps"; record P50 "$name" "$p50"; record P99 "$name" "$p99"
  record REQS "$name" "$reqs"; record NON2XX "$name" "$non2xx"
  record IPI "$name" "$(per_req $((i1 - i0)) "$reqs")"
  if [ "$pid" = - ]; then record CSW "$name" -; else record CSW "$name" "$(per_req $((c1 - c0)) "$reqs")"; fi
  echo "[$ROUND] $name: ${rps} req/s p50 ${p50}µs p99 ${p99}µs cpu ${cpu} µs/req non-2xx $non2xx" >&2
}
median() { tr ' ' '\n' | awk 'NF && $1 != "-"' | sort -g | awk '{v[NR] = $1} END { if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else { m = (v[NR / 2] + v[NR / 2 + 1]) / 2; if (m == int(m)) print m; else printf "%.1f\n", m } }'; }
total() { tr ' ' '\n' | awk 'NF {s += $1} END {print s + 0}'; }
range() { tr ' ' '\n' | awk 'NF' | sort -g | awk 'NR == 1 {lo = $1} {hi = $1} END { if (lo == "-" || NR < 2) print "-"; else print lo "–" hi }'; }
med() { local -n a=$1; echo "${a[$2]:-}" | median; }

GET_RQ="e sigproxy required, signed GET"
OFF_ROW="c sigproxy off"
FLOOR_ROW="b Pingora floor (pingora-proxy, only upstream_peer, mimalloc)"
FLOORC_ROW="b Pingora floor + ${COMPUTE_ITERS} compute steps per request"
REDIS_ROW="e sigproxy required + Redis replay store, signed GET"
REDIS_OK=""
if [ "${REDIS:-1}" != 0 ] && need redis-server; then REDIS_OK=1; fi

for ROUND in $(seq "$ROUNDS"); do
  measure "a direct (nginx return 200)" "$(nginx_worker upstream)" "$UP"
  measure "b nginx proxy" "$(nginx_worker proxy)" "$NPX"
  measure "b HAProxy (1 thread, http-reuse always)" "$HPID" "$HAP"
  measure "$FLOOR_ROW" "$FLOOR_PID" "$FLP"
  if [ "$COMPUTE_ITERS" != 0 ]; then
    measure "$FLOORC_ROW" "$FLOORC_PID" "$FCP"
    record CALIB "$FLOORC_ROW" "$("$FLOOR" --calibrate --compute-iters "$COMPUTE_ITERS")"
  fi
  while IFS=$'\t' read -r name cmd; do
    start_proxy_cmd "$name" "$XP" "$cmd"
    measure "b $name" "$PROXY_PID" "$XP"
    stop_pid "$PROXY_PID" "$XP"
  done < <(extra_proxies)
  if [ "${POSTS:-1}" != 0 ]; then
    measure "f nginx proxy, POST 1 KiB (unsigned headers ignored)" "$(nginx_worker proxy)" "$NPX" "$T/post1k.reqs" "$T/post1k.reqs.body"
    measure "f nginx proxy, POST 64 KiB" "$(nginx_worker proxy)" "$NPX" "$T/post64k.reqs" "$T/post64k.reqs.body"
  fi
  start_sigproxy off;      measure "$OFF_ROW" "$SPID" "$SP"; stop_sigproxy
  start_sigproxy hybrid;   measure "d sigproxy hybrid, unsigned" "$SPID" "$SP"; stop_sigproxy
  start_sigproxy required
  measure "$GET_RQ" "$SPID" "$SP" "$T/get.reqs"
  if [ "${POSTS:-1}" != 0 ]; then
    measure "f sigproxy required, signed POST 1 KiB" "$SPID" "$SP" "$T/post1k.reqs" "$T/post1k.reqs.body"
    measure "f sigproxy required, signed POST 64 KiB" "$SPID" "$SP" "$T/post64k.reqs" "$T/post64k.reqs.body"
  fi
  stop_sigproxy
  while IFS=$'\t' read -r name bin; do
    SP_BIN=$bin start_sigproxy off; measure "c $name off" "$SPID" "$SP"; stop_sigproxy
    SP_BIN=$bin start_sigproxy required; measure "e $name required, signed GET" "$SPID" "$SP" "$T/get.reqs"; stop_sigproxy
  done < <(extra_sigproxies)
  # The same signed GETs with the replay store on a fresh local redis-server (issue 7): one
  # SET NX PX round trip per request; a fresh Redis has seen none of the nonces.
  if [ -n "$REDIS_OK" ]; then
    RP=$(free_port)
    redis-server --port "$RP" --bind 127.0.0.1 --save '' --appendonly no >"$T/redis-$ROUND.log" 2>&1 &
    RPID=$!; PIDS+=("$RPID")
    wait_port "$RP"
    start_sigproxy required "replay: { store: redis, redis_url: \"redis://127.0.0.1:$RP/0\" }"
    measure "$REDIS_ROW" "$SPID" "$SP" "$T/get.reqs"
    stop_sigproxy
    stop_pid "$RPID"
  fi
done
T_WRK=$(date +%s)

# --- open loop at a constant rate: wrk above is closed-loop (a slow response delays the next
# request, so its p99 hides stalls). loadgen (benches/load/loadgen.rs) sends on a fixed schedule and
# counts each latency from the request's scheduled time. Common rate: half the floor's saturation.
HCASES=()
declare -A HSEEN HP50 HP90 HP99 HP999 HMAX HCPU HACH HBAD HLAG HIPI HCSW HRATE
half() { # case-name, proxy-pid, port, rate, [reqs-file]
  local name=$1 pid=$2 port=$3 rate=$4 lo src=(--path '/api/item?x=1')
  if [ -z "${HSEEN[$name]:-}" ]; then HSEEN[$name]=1; HCASES+=("$name"); fi
  lo="$T/loadgen-$ROUND-${#HCASES[@]}-$RANDOM.json"
  if [ $# -ge 5 ]; then src=(--requests "$5"); fi
  local t0 t1 lg cpu i0 i1 c0 c1
  HRATE[$name]=$rate
  t0=$(cpu_ticks "$pid"); c0=$(ctxsw "$pid"); i0=$(ipis)
  "$LOADGEN" --addr "127.0.0.1:$port" --rate "$rate" --connections "$CONNS" --duration "$DURATION" \
    --warmup "$WARMUP" "${src[@]}" >"$lo" 2>"$lo.err" || { cat "$lo.err" >&2; exit 1; }
  i1=$(ipis); t1=$(cpu_ticks "$pid"); c1=$(ctxsw "$pid")
  read -r -a lg < <(json_fields "$lo" achieved_rps p50_us p90_us p99_us p999_us max_us non_2xx errors unsent responses_total send_lag_p99_us)
  cpu=$(awk -v d=$((t1 - t0)) -v n="${lg[9]}" -v hz="$TCK" 'BEGIN {printf "%.1f", d * 1e6 / hz / n}')
  record HACH "$name" "${lg[0]}"; record HP50 "$name" "${lg[1]}"; record HP90 "$name" "${lg[2]}"
  record HP99 "$name" "${lg[3]}"; record HP999 "$name" "${lg[4]}"; record HMAX "$name" "${lg[5]}"
  record HCPU "$name" "$cpu"; record HBAD "$name" $((lg[6] + lg[7] + lg[8])); record HLAG "$name" "${lg[10]}"
  record HIPI "$name" "$(per_req $((i1 - i0)) "${lg[9]}")"; record HCSW "$name" "$(per_req $((c1 - c0)) "${lg[9]}")"
  echo "[$ROUND] $name @ $rate/s: p50 ${lg[1]} p99 ${lg[3]} max ${lg[5]} µs, non-2xx+errors+unsent $((lg[6] + lg[7] + lg[8]))" >&2
}
halfrate() { awk -v r="$1" 'BEGIN {printf "%d", r / 2}'; }
COMMON=${HALF_RATE:-$(halfrate "$(med RPS "$FLOOR_ROW")")}
REQ_HALF=$(halfrate "$(med RPS "$GET_RQ")")
HF="b Pingora floor @ ½ floor's saturation"
HC="c sigproxy off @ ½ floor's saturation"
HS="e sigproxy required, signed GET @ ½ own saturation"
# The floor and off again at the signed case's rate: a proxy's CPU per request depends on its
# rate (fewer requests per wakeup, more wakeups of the other CPU per request), so the signed
# path's extra cost is also taken against the floor at the same rate.
HFS="b Pingora floor @ ½ signed saturation"
HCS="c sigproxy off @ ½ signed saturation"
if [ "${HALF:-1}" != 0 ]; then
  for ROUND in $(seq "$ROUNDS"); do
    half "$HF" "$FLOOR_PID" "$FLP" "$COMMON"
    half "$HFS" "$FLOOR_PID" "$FLP" "$REQ_HALF"
    start_sigproxy off; half "$HC" "$SPID" "$SP" "$COMMON"; half "$HCS" "$SPID" "$SP" "$REQ_HALF"; stop_sigproxy
    half "b nginx proxy @ ½ floor's saturation" "$(nginx_worker proxy)" "$NPX" "$COMMON"
    half "b HAProxy @ ½ floor's saturation" "$HPID" "$HAP" "$COMMON"
    while IFS=$'\t' read -r name bin; do
      SP_BIN=$bin start_sigproxy off; half "c $name off @ ½ floor's saturation" "$SPID" "$SP" "$COMMON"; stop_sigproxy
    done < <(extra_sigproxies)
    # a fresh instance: its replay store has seen none of get.reqs's nonces
    start_sigproxy required
    half "$HS" "$SPID" "$SP" "$REQ_HALF" "$T/get.reqs"
    stop_sigproxy
  done
fi
T_HALF=$(date +%s)

# --- bare Ed25519 verify_strict in the same run (criterion, benches/verify.rs, ~5 s; the bench
# binary is built on first use). VERIFY_BENCH=0 skips it and leaves that ratio open.
VERIFY_NS=""
if [ "${VERIFY_BENCH:-1}" != 0 ]; then
  touch "$T/verify.stamp"
  (cd "$ROOT" && nice -n "${BUILD_NICE:-10}" cargo bench -q --bench verify --no-run >"$T/verify-build.txt" 2>&1) || true
  (cd "$ROOT" && cargo bench -q --bench verify -- bare_ed25519_verify_strict \
    --warm-up-time 1 --measurement-time 4 >"$T/verify-bench.txt" 2>&1) || true
  f=$TARGET_DIR/criterion/verify/bare_ed25519_verify_strict/new/estimates.json
  if [ -f "$f" ] && [ "$f" -nt "$T/verify.stamp" ]; then
    VERIFY_NS=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["median"]["point_estimate"])' "$f")
  fi
fi
T_END=$(date +%s)

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || a == "" || b == "" || b == 0) print "n/a"; else printf "%.2f", a / b }'; }
# Per-round ratios a/b of CPU µs/req, as "lo–hi" over the rounds.
round_ratios() {
  local -a x y; read -r -a x <<<"${CPU[$1]}"; read -r -a y <<<"${CPU[$2]}"
  local i out=""
  for i in "${!x[@]}"; do out+=" $(ratio "${x[$i]}" "${y[$i]:-}")"; done
  echo "$out" | tr ' ' '\n' | grep -v 'n/a' | range
}
OFF=$(med CPU "$OFF_ROW"); FLOORC=$(med CPU "$FLOOR_ROW"); NGX=$(med CPU "b nginx proxy")
HAPC=$(med CPU "b HAProxy (1 thread, http-reuse always)"); REQ=$(med CPU "$GET_RQ")
{
  echo "# sigproxy load results"
  echo
  echo "Written by \`benches/load/run.sh\` on $STARTED (took $(((T_END - T_START) / 60)) min $(((T_END - T_START) % 60)) s:"
  echo "wrk rounds $((T_WRK - T_START)) s, open loop $((T_HALF - T_WRK)) s, verify bench $((T_END - T_HALF)) s)."
  echo "$ROUNDS rounds, each case once per round in the order below; wrk -t1 -c$CONNS, ${DURATION} s per case after"
  echo "${WARMUP} s of warm-up; every server 1 worker; 127.0.0.1. Medians over the rounds."
  echo
  echo "Machine: $(nproc) CPUs, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo), kernel $(uname -r);"
  echo "load average at the start $LOAD_START, at the end $(cut -d' ' -f1-3 /proc/loadavg); priority boost (BOOST=1): $(boosted)."
  echo "sigproxy $("$SIGPROXY" --version 2>/dev/null | awk '{print $2}') (binary $SIGPROXY_SRC, sha256 $(sha256sum "$SIGPROXY" | cut -c1-12); checkout $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null)$(cd "$ROOT" && git diff --quiet HEAD 2>/dev/null || echo " with uncommitted changes")), $(nginx -v 2>&1 | sed 's/.*: //'), $(haproxy -v 2>&1 | head -1 | awk '{print "HAProxy", $3}'), Pingora 0.9 floor${FLOOR_ARGS:+ ($FLOOR_ARGS)}, $(wrk --version 2>&1 | head -1 | awk '{print $1, $2}')."
  [ -n "${SIGPROXY_EXTRA_POLICY:-}" ] && echo "Extra policy for every sigproxy: \`$(echo "$SIGPROXY_EXTRA_POLICY" | tr '\n' ' ')\`."
  echo
  echo "| case | req/s | p50 µs | p99 µs | proxy CPU µs/req | CPU µs/req, each round | IPIs/req | proxy ctx sw/req | requests (all rounds) | non-2xx |"
  echo "|---|---|---|---|---|---|---|---|---|---|"
  for c in "${CASES[@]}"; do
    failed=""; [ -n "${FAILED[$c]:-}" ] && failed=" ($(echo "${FAILED[$c]}" | total) round(s) without a wrk result)"
    echo "| $c$failed | $(med RPS "$c") | $(med P50 "$c") | $(med P99 "$c") | **$(med CPU "$c")** | $(echo "${CPU[$c]:-}" | sed 's/^ //; s/ / · /g') | $(med IPI "$c") | $(med CSW "$c") | $(echo "${REQS[$c]:-}" | total) | $(echo "${NON2XX[$c]:-}" | total) |"
  done
  echo
  echo "CPU µs/req counts the whole proxy process (all threads; for nginx its one worker) in"
  echo "1/$TCK s ticks, divided by the requests wrk completed; for \`a\` it is the upstream nginx itself."
  echo "IPIs/req: rescheduling and function-call interrupts the whole machine took (/proc/interrupts),"
  echo "per request; ctx sw/req: the proxy's threads' context switches, voluntary and not, per request."
  echo
  echo "## Goals (issue 14), ratios from this run"
  echo
  echo "| goal | value (median of the rounds) | per round | target |"
  echo "|---|---|---|---|"
  echo "| passthrough CPU: sigproxy off / Pingora floor | **$(ratio "$OFF" "$FLOORC")** ($OFF / $FLOORC µs) | $(round_ratios "$OFF_ROW" "$FLOOR_ROW") | ≤ 1.05 |"
  if [ -n "$VERIFY_NS" ]; then
    V=$(awk -v n="$VERIFY_NS" 'BEGIN {printf "%.1f", n / 1000}')
    SX=$(awk -v a="$REQ" -v b="$FLOORC" 'BEGIN {printf "%.1f", a - b}')
    echo "| signed GET CPU over the floor / bare verify_strict (criterion median, same run): (signed − floor) / verify | **$(ratio "$SX" "$V")** ($REQ − $FLOORC = $SX µs; verify $V µs) | | ≤ 1.15 |"
    SO=$(awk -v a="$REQ" -v b="$OFF" 'BEGIN {printf "%.1f", a - b}')
    echo "| (for reference) signed extra over off / verify: (signed − off) / verify | $(ratio "$SO" "$V") ($SO / $V µs) | | |"
    if [ "${HALF:-1}" != 0 ]; then
      HREQ=$(med HCPU "$HS"); HFL=$(med HCPU "$HFS"); HOF=$(med HCPU "$HCS")
      SXE=$(awk -v a="$HREQ" -v b="$HFL" 'BEGIN {printf "%.1f", a - b}')
      SOE=$(awk -v a="$HREQ" -v b="$HOF" 'BEGIN {printf "%.1f", a - b}')
      echo "| the same at one rate, open loop, all three at $REQ_HALF req/s (half the signed saturation): (signed − floor) / verify | **$(ratio "$SXE" "$V")** ($HREQ − $HFL = $SXE µs) | | ≤ 1.15 |"
      echo "| (for reference) at one rate: (signed − off) / verify | $(ratio "$SOE" "$V") ($HREQ − $HOF = $SOE µs) | | |"
    fi
  else
    echo "| signed GET CPU over the floor | $(awk -v a="$REQ" -v b="$FLOORC" 'BEGIN {printf "%.1f", a - b}') µs (bare verify not measured: VERIFY_BENCH=0 or the bench failed) | | ≤ 1.15× verify |"
  fi
  if [ "${HALF:-1}" != 0 ]; then
    kept=$(awk -v a="$(med HACH "$HC")" -v r="$COMMON" 'BEGIN { if (a < 0.98 * r) printf "; sigproxy off kept up with only %d of %d req/s: overloaded", a, r }')
    echo "| p99 at half the floor's saturation, open loop: sigproxy off / floor, both at $COMMON req/s | **$(ratio "$(med HP99 "$HC")" "$(med HP99 "$HF")")** ($(med HP99 "$HC") / $(med HP99 "$HF") µs$kept) | | ≤ 1.5 |"
  fi
  if [ "$COMPUTE_ITERS" != 0 ]; then
    CA=$(med CALIB "$FLOORC_ROW"); FCC=$(med CPU "$FLOORC_ROW")
    FCX=$(awk -v a="$FCC" -v b="$FLOORC" 'BEGIN {printf "%.1f", a - b}')
    echo "| (for reference) plain compute in the floor: (floor + $COMPUTE_ITERS compute steps − floor) / those steps alone | $(ratio "$FCX" "$CA") ($FCC − $FLOORC = $FCX µs; alone $CA µs, each round: $(echo "${CALIB[$FLOORC_ROW]}" | sed 's/^ //; s/ / · /g')) | | |"
  fi
  echo "| (for reference) floor / nginx proxy, CPU | $(ratio "$FLOORC" "$NGX") ($FLOORC / $NGX µs) | $(round_ratios "$FLOOR_ROW" "b nginx proxy") | |"
  echo "| (for reference) floor / HAProxy, CPU | $(ratio "$FLOORC" "$HAPC") ($FLOORC / $HAPC µs) | | |"
  echo "| (issue 6, for reference) sigproxy off / nginx proxy, CPU | $(ratio "$OFF" "$NGX") ($OFF / $NGX µs) | $(round_ratios "$OFF_ROW" "b nginx proxy") | ≤ 1.0 (issue 6) |"
  while IFS=$'\t' read -r name _; do
    echo "| $name off / floor, CPU | $(ratio "$(med CPU "c $name off")" "$FLOORC") | $(round_ratios "c $name off" "$FLOOR_ROW") | ≤ 1.05 |"
    if [ -n "$VERIFY_NS" ]; then
      echo "| $name (signed − floor) / verify (the verify_strict above, built from this checkout) | $(ratio "$(awk -v a="$(med CPU "e $name required, signed GET")" -v b="$FLOORC" 'BEGIN {print a - b}')" "$V") | | ≤ 1.15 |"
    fi
  done < <(extra_sigproxies)
  while IFS=$'\t' read -r name _; do
    echo "| $name / floor, CPU | $(ratio "$(med CPU "b $name")" "$FLOORC") | $(round_ratios "b $name" "$FLOOR_ROW") | |"
  done < <(extra_proxies)
  if [ -n "$REDIS_OK" ]; then
    echo "| Redis replay store, signed GET: extra CPU µs/req over the memory store | $(awk -v a="$(med CPU "$REDIS_ROW")" -v b="$REQ" 'BEGIN {printf "%.1f", a - b}') µs | | (issue 7: measured, no target) |"
  fi
  echo
  if [ "${HALF:-1}" != 0 ]; then
    echo "### Open loop (loadgen, constant rate), medians of $ROUNDS rounds"
    echo
    echo "\`loadgen --rate R --connections $CONNS\`, ${DURATION} s after ${WARMUP} s at the same rate. Latency (µs) is counted"
    echo "from each request's scheduled send time (coordinated omission corrected); saturation is the wrk"
    echo "req/s above. \"gen lag p99\": scheduled time → write, the generator's own or a busy connection's delay."
    echo
    echo "| case | offered req/s | achieved | p50 | p90 | p99 | p99 each round | p99.9 | max | proxy CPU µs/req | IPIs/req | proxy ctx sw/req | non-2xx+errors+unsent | gen lag p99 |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    for c in "${HCASES[@]}"; do
      echo "| $c | ${HRATE[$c]} | $(med HACH "$c") | $(med HP50 "$c") | $(med HP90 "$c") | **$(med HP99 "$c")** | $(echo "${HP99[$c]}" | sed 's/^ //; s/ / · /g') | $(med HP999 "$c") | $(med HMAX "$c") | $(med HCPU "$c") | $(med HIPI "$c") | $(med HCSW "$c") | $(echo "${HBAD[$c]}" | total) | $(med HLAG "$c") |"
    done
    echo
  fi
  echo "The machine is shared (see the load average): compare ratios within one run, not absolute"
  echo "numbers across runs. CPU µs/req is less sensitive to a busy machine than req/s or latency;"
  echo "instruction counts (benches/load/instructions.sh) less still."
  # hand-written notes below the marker survive a re-run
  if [ -f "$OUT" ] && grep -q '^<!-- notes -->' "$OUT"; then
    echo; sed -n '/^<!-- notes -->/,$p' "$OUT"
  fi
} >"$OUT.tmp"
mv "$OUT.tmp" "$OUT"
echo "wrote $OUT" >&2
