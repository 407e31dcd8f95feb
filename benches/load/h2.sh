#!/usr/bin/env bash
# Signed traffic over HTTP/2 (h2c, prior knowledge) vs HTTP/1.1 through one sigproxy, in the same
# run: nginx upstream, sigproxy `mode: required` (threads: 1), the same signed GET, sent by h2load
# (Debian nghttp2-client; installed if missing) closed-loop with the same number of requests in
# flight — HTTP/1.1 as C connections x 1, HTTP/2 as C/M connections x M streams. Rounds alternate
# h1, h2, h1, h2 ... so drift hits both; reported are medians of throughput and of sigproxy CPU
# time per request, and their h2/h1 ratios. The signature has no nonce (`nonce: optional`): h2load
# repeats one request, so each is a full Ed25519 verification but no replay-store write (run.sh
# measures that part). 127.0.0.1 only; every wait bounded.
#
#   bash benches/load/h2.sh            # ROUNDS=3 REQUESTS=30000 INFLIGHT=32 STREAMS=8
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
# shellcheck source=lib.sh
. "$HERE/lib.sh"
ROUNDS=${ROUNDS:-3}
REQUESTS=${REQUESTS:-30000}
INFLIGHT=${INFLIGHT:-32}
STREAMS=${STREAMS:-8}

if ! need h2load; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq nghttp2-client >/dev/null 2>&1 \
    || { apt-get update -qq && apt-get install -y -qq nghttp2-client >/dev/null; }
fi
if [ -z "${SIGPROXY_NO_BUILD:-}" ]; then
  (cd "$ROOT" && cargo build --release --bin sigproxy)
fi
cp "$SIGPROXY" "$T/sigproxy.bin"
SIGPROXY=$T/sigproxy.bin

UP=$(free_port); SP=$(free_port); ADM=$(free_port)
nginx_upstream "$UP"
wait_port "$UP"
(cd "$T" && "$SIGPROXY" keygen --key-id bench-v1 --client-id bench >"$T/keys.yaml" 2>/dev/null)
sigproxy_config required
sed -i 's/^signature:$/signature:\n  nonce: optional/' "$T/sigproxy-required.yaml"
"$SIGPROXY" check-config "$T/sigproxy-required.yaml" >/dev/null
"$SIGPROXY" run --config "$T/sigproxy-required.yaml" >/dev/null 2>"$T/sigproxy-required.err" &
SPID=$!
PIDS+=("$SPID")
wait_port "$SP"

URL="http://127.0.0.1:$SP/bench?item=1"
"$SIGPROXY" sign --key "$T/bench-v1.key" --key-id bench-v1 --no-nonce \
  --emit-request "$T/req.http" "$URL" >/dev/null
hdr() { grep -i "^$1:" "$T/req.http" | head -1 | tr -d '\r'; }
SIG=$(hdr signature); SIGIN=$(hdr signature-input)
check=$(curl -s -o /dev/null -w '%{http_code}' --http2-prior-knowledge -H "$SIG" -H "$SIGIN" "$URL")
[ "$check" = 200 ] || { echo "the signed request is not accepted ($check)" >&2; cat "$T/sigproxy-required.err" >&2; exit 1; }

round() { # proto -> "rps cpu_us_per_req ok"
  local args
  if [ "$1" = h1 ]; then
    args=(--h1 -c "$INFLIGHT" -m 1)
  else
    args=(-c $((INFLIGHT / STREAMS)) -m "$STREAMS")
  fi
  local t0 t1
  t0=$(cpu_ticks "$SPID")
  timeout 300 h2load -n "$REQUESTS" -t 1 "${args[@]}" -H "$SIG" -H "$SIGIN" "$URL" >"$T/h2load-$1.out"
  t1=$(cpu_ticks "$SPID")
  python3 - "$T/h2load-$1.out" "$((t1 - t0))" "$TCK" "$REQUESTS" <<'PY'
import re, sys
out = open(sys.argv[1]).read()
ticks, tck, n = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rps = float(re.search(r"finished in [\d.]+m?s, ([\d.]+) req/s", out).group(1))
m = re.search(r"status codes: (\d+) 2xx", out)
ok = int(m.group(1)) if m else 0
print(f"{rps:.0f} {ticks / tck * 1e6 / n:.1f} {ok}")
PY
}

# Warm-up (not counted), then alternating rounds.
round h1 >/dev/null; round h2 >/dev/null
declare -a H1 H2
for i in $(seq "$ROUNDS"); do
  H1+=("$(round h1)"); H2+=("$(round h2)")
  echo "round $i: h1 ${H1[-1]}  h2 ${H2[-1]}  (req/s, sigproxy CPU µs/req, 2xx)" >&2
done
python3 - "$REQUESTS" "${H1[@]}" -- "${H2[@]}" <<'PY'
import json, statistics, sys
n = int(sys.argv[1]); rest = sys.argv[2:]; cut = rest.index("--")
parse = lambda xs: [tuple(float(v) for v in x.split()) for x in xs]
h1, h2 = parse(rest[:cut]), parse(rest[cut + 1:])
med = lambda xs, i: statistics.median(x[i] for x in xs)
bad = [x for x in h1 + h2 if x[2] != n]
print(json.dumps({
    "requests_per_round": n, "rounds": len(h1),
    "h1": {"rps": med(h1, 0), "cpu_us_per_req": med(h1, 1)},
    "h2": {"rps": med(h2, 0), "cpu_us_per_req": med(h2, 1)},
    "rps_ratio_h2_over_h1": round(statistics.median(b[0] / a[0] for a, b in zip(h1, h2)), 3),
    "cpu_ratio_h2_over_h1": round(statistics.median(b[1] / a[1] for a, b in zip(h1, h2)), 3),
    "non_2xx_rounds": len(bad),
}))
PY
