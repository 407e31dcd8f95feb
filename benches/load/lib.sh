# shellcheck shell=bash
# Shared by run.sh and soak.sh (sourced, not run): tools, ports, the temp dir and its cleanup,
# nginx (upstream / plain proxy) and sigproxy start/stop. 127.0.0.1 only, every wait bounded.
# Expects ROOT and HERE set; sets TARGET_DIR, SIGPROXY, LOADGEN, T, PIDS, TCK.

TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
SIGPROXY=${SIGPROXY:-$TARGET_DIR/release/sigproxy}
LOADGEN=${LOADGEN:-$TARGET_DIR/release/examples/loadgen}
# shellcheck disable=SC2034 # used by the scripts that source this
TCK=$(getconf CLK_TCK)

need() { command -v "$1" >/dev/null 2>&1; }
# Builds sigproxy and the loadgen example (release) unless SIGPROXY_NO_BUILD is set, then runs
# private copies: a target dir shared with other checkouts may be rebuilt from other code mid-run.
build() {
  if [ -z "${SIGPROXY_NO_BUILD:-}" ]; then
    (cd "$ROOT" && cargo build --release --bin sigproxy --example loadgen)
  fi
  [ -x "$SIGPROXY" ] || { echo "no sigproxy binary at $SIGPROXY (set SIGPROXY or CARGO_TARGET_DIR)" >&2; exit 1; }
  [ -x "$LOADGEN" ] || { echo "no loadgen binary at $LOADGEN (set LOADGEN or CARGO_TARGET_DIR)" >&2; exit 1; }
  cp "$SIGPROXY" "$T/sigproxy.bin"; cp "$LOADGEN" "$T/loadgen.bin"
  SIGPROXY=$T/sigproxy.bin; LOADGEN=$T/loadgen.bin
}

T=$(mktemp -d /tmp/sigproxy-load.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ -n "${KEEP:-}" ]; then echo "kept $T" >&2; else rm -rf "$T"; fi
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { # bounded: 10 s
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nothing listens on 127.0.0.1:$1" >&2; exit 1
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

# --- nginx: 1 worker, loopback only, its own config and temp paths under $T/<name>.
nginx_conf() { # name, server block
  mkdir -p "$T/$1"
  cat >"$T/$1/nginx.conf" <<EOF
worker_processes 1;
daemon off;
master_process on;
pid $T/$1/nginx.pid;
error_log $T/$1/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 10000000;
  keepalive_timeout 120s;
  client_max_body_size 10m;
  client_body_buffer_size 128k;  # keep 64 KiB bodies in memory, as sigproxy does
  client_body_temp_path $T/$1/body;
  proxy_temp_path $T/$1/proxy;
  fastcgi_temp_path $T/$1/fcgi;
  uwsgi_temp_path $T/$1/uwsgi;
  scgi_temp_path $T/$1/scgi;
  $2
}
EOF
  nginx -p "$T/$1" -c "$T/$1/nginx.conf" >"$T/$1/out.log" 2>&1 &
  PIDS+=($!)
}
nginx_upstream() { # port: the trivial upstream, `return 200 "ok\n"`
  nginx_conf upstream "server { listen 127.0.0.1:$1; location / { return 200 \"ok\\n\"; } }"
}
nginx_worker() { # the worker of the nginx whose master is $1 (the master sits idle)
  pgrep -P "$(cat "$T/$1/nginx.pid")" | head -1
}

# --- sigproxy, one instance at a time on $SP (admin $ADM) in front of $UP, threads: 1, audit lines
# to /dev/null. Keys from $T/keys.yaml. SIG_MAX_AGE / SIG_SKEW set the signature window.
sigproxy_config() { # mode [extra policy YAML]: writes $T/sigproxy-<mode>.yaml
  cat >"$T/sigproxy-$1.yaml" <<EOF
${2:-}
mode: $1
listen: "127.0.0.1:$SP"
admin_listen: "127.0.0.1:$ADM"
upstream: "127.0.0.1:$UP"
threads: 1
shutdown_grace_seconds: 0
signature:
  max_age_seconds: ${SIG_MAX_AGE:-3600}
  clock_skew_seconds: ${SIG_SKEW:-30}
$(cat "$T/keys.yaml")
EOF
}
start_sigproxy() { # mode [extra policy YAML]
  sigproxy_config "$@"
  "$SIGPROXY" run --config "$T/sigproxy-$1.yaml" >/dev/null 2>"$T/sigproxy-$1.err" &
  SPID=$!
  PIDS+=("$SPID")
  wait_port "$SP"
}
stop_sigproxy() {
  kill "$SPID" 2>/dev/null || true
  wait "$SPID" 2>/dev/null || true
  for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$SP") 2>/dev/null || return 0; sleep 0.1; done
}

# Fields of a flat JSON object (loadgen's output line), space-separated: json_fields FILE KEY...
json_fields() {
  python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(*(d[k] for k in sys.argv[2:]))' "$@"
}
