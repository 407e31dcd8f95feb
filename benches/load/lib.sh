# shellcheck shell=bash
# Shared by run.sh, soak.sh, instructions.sh, perfstat.sh and idle.sh (sourced, not run): tools,
# ports, the temp dir and its cleanup, nginx (upstream / plain proxy), HAProxy, the Pingora floor
# (examples `floor`, `floor-sysalloc`), any other passthrough proxy, and sigproxy start/stop.
# 127.0.0.1 only, every wait bounded.
# Expects ROOT and HERE set; sets TARGET_DIR, SIGPROXY, LOADGEN, FLOOR, FLOOR_SYSALLOC, T, PIDS, TCK.

TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
SIGPROXY=${SIGPROXY:-$TARGET_DIR/release/sigproxy}
LOADGEN=${LOADGEN:-$TARGET_DIR/release/examples/loadgen}
FLOOR=${FLOOR:-$TARGET_DIR/release/examples/floor}
FLOOR_SYSALLOC=${FLOOR_SYSALLOC:-$TARGET_DIR/release/examples/floor-sysalloc}
# shellcheck disable=SC2034 # used by the scripts that source this
TCK=$(getconf CLK_TCK)

need() { command -v "$1" >/dev/null 2>&1; }
# Builds sigproxy and the loadgen, floor and floor-sysalloc examples (release, niced) unless
# SIGPROXY_NO_BUILD is set, then runs private copies: a target dir shared with other checkouts may
# be rebuilt from other code mid-run.
build() {
  if [ -z "${SIGPROXY_NO_BUILD:-}" ]; then
    (cd "$ROOT" && nice -n "${BUILD_NICE:-10}" cargo build --release --bin sigproxy \
      --example loadgen --example floor --example floor-sysalloc)
  fi
  local v b
  for v in SIGPROXY LOADGEN FLOOR FLOOR_SYSALLOC; do
    b=${!v}
    [ -x "$b" ] || { echo "no binary at $b (set $v or CARGO_TARGET_DIR)" >&2; exit 1; }
    cp "$b" "$T/$(basename "$b").bin"
    printf -v "${v}_SRC" '%s' "$b"
    printf -v "$v" '%s' "$T/$(basename "$b").bin"
  done
}

T=$(mktemp -d /tmp/sigproxy-load.XXXXXX)
PIDS=()
AUTOGROUP_WAS=""
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ -n "$AUTOGROUP_WAS" ]; then echo "$AUTOGROUP_WAS" >/proc/self/autogroup 2>/dev/null || true; fi
  if [ -n "${KEEP:-}" ]; then echo "kept $T" >&2; else rm -rf "$T"; fi
}
trap cleanup EXIT

# BOOST=1: for the duration of the script, give this session's scheduler autogroup nice -20. On a
# machine where other sessions build, the kernel's autogroups share the CPUs per session whatever
# a process's own nice, and the proxies under test got a fraction of a CPU. It takes CPU from the
# others while it runs (minutes): use it for the runs you quote. Restored on exit.
boost() {
  [ "${BOOST:-0}" = 1 ] || return 0
  local cur
  cur=$(awk '{print $NF}' /proc/self/autogroup 2>/dev/null) || return 0
  if echo -20 >/proc/self/autogroup 2>/dev/null; then
    AUTOGROUP_WAS=$cur
    echo "BOOST=1: autogroup nice -20 until the end (was $cur)" >&2
  fi
}
boosted() { [ -n "$AUTOGROUP_WAS" ] && echo "yes (autogroup nice −20)" || echo "no"; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { # bounded: 10 s
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nothing listens on 127.0.0.1:$1" >&2; exit 1
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# Inter-processor interrupts the whole machine has taken so far (rescheduling + function call: a
# wakeup of a task on the other CPU sends one; in a VM each one sent costs a VM exit).
ipis() { awk '$1 == "RES:" || $1 == "CAL:" {for (i = 2; i <= NF; i++) if ($i ~ /^[0-9]+$/) s += $i} END {print s + 0}' /proc/interrupts; }
# Context switches (voluntary + involuntary) of all of a process's threads so far.
ctxsw() { cat /proc/"$1"/task/*/status 2>/dev/null | awk '/ctxt_switches/ {s += $2} END {print s + 0}'; }
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
worker_rlimit_nofile ${NGINX_CONNECTIONS:-4096};
events { worker_connections ${NGINX_CONNECTIONS:-4096}; }
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
  local i
  for i in $(seq 50); do # bounded: 5 s for the master to write its pid file and fork
    [ -s "$T/$1/nginx.pid" ] && pgrep -P "$(cat "$T/$1/nginx.pid")" | head -1 && return 0
    sleep 0.1
  done
  echo "no nginx worker for $1" >&2; exit 1
}
nginx_proxy() { # name port: a plain keep-alive reverse proxy to $UP
  nginx_conf "$1" "upstream be { server 127.0.0.1:$UP; keepalive 64; }
  server { listen 127.0.0.1:$2; location / { proxy_pass http://be; proxy_http_version 1.1; proxy_set_header Connection \"\"; } }"
}

# --- HAProxy (Debian package): 1 thread, keep-alive both sides, `http-reuse always`, no logs.
# Sets HPID (one process, one thread).
start_haproxy() { # port
  mkdir -p "$T/haproxy"
  cat >"$T/haproxy/haproxy.cfg" <<EOF
global
  nbthread 1
  maxconn ${HAPROXY_MAXCONN:-4096}
defaults
  mode http
  timeout connect 5s
  timeout client 120s
  timeout server 120s
  timeout http-keep-alive 120s
  http-reuse always
frontend fe
  bind 127.0.0.1:$1
  default_backend be
backend be
  server up 127.0.0.1:$UP
EOF
  haproxy -db -f "$T/haproxy/haproxy.cfg" >"$T/haproxy/out.log" 2>&1 &
  HPID=$!
  PIDS+=("$HPID")
  wait_port "$1"
}

# --- any passthrough proxy given as a command line with {LISTEN} and {UPSTREAM} in it (the Pingora
# floor, a "lean" build, another proxy). Sets PROXY_PID.
start_proxy_cmd() { # name port command-template
  local name=$1 port=$2 cmd=$3
  cmd=${cmd//\{LISTEN\}/127.0.0.1:$port}
  cmd=${cmd//\{UPSTREAM\}/127.0.0.1:$UP}
  # shellcheck disable=SC2086 # the template is split into words on purpose
  $cmd >"$T/proxy-${name//[^A-Za-z0-9]/_}.log" 2>&1 &
  PROXY_PID=$!
  PIDS+=("$PROXY_PID")
  wait_port "$port"
}
stop_pid() { # pid [port]: stop a process we started; wait until it is gone and its port is free
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
  if [ -n "${2:-}" ]; then
    for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null || return 0; sleep 0.1; done
  fi
}
# The floor: FLOOR_ARGS go to it (e.g. "--l4-read-buffer 4096": the listener's buffer sizes).
floor_cmd() { echo "$FLOOR --listen {LISTEN} --upstream {UPSTREAM} ${FLOOR_ARGS:-}"; }
floor_sysalloc_cmd() { echo "$FLOOR_SYSALLOC --listen {LISTEN} --upstream {UPSTREAM} ${FLOOR_ARGS:-}"; }

# EXTRA_PROXIES="name|command with {LISTEN} {UPSTREAM};name2|command2": more passthrough rows.
# EXTRA_SIGPROXY="name=/path/to/sigproxy;name2=/path2": more sigproxy builds (off, signed rows).
extra_proxies() { # prints "name<TAB>command" lines
  local IFS=';' e
  for e in ${EXTRA_PROXIES:-}; do
    [ -n "$e" ] && printf '%s\t%s\n' "${e%%|*}" "${e#*|}"
  done
  return 0
}
extra_sigproxies() { # prints "name<TAB>binary" lines
  local IFS=';' e
  for e in ${EXTRA_SIGPROXY:-}; do
    [ -n "$e" ] && printf '%s\t%s\n' "${e%%=*}" "${e#*=}"
  done
  return 0
}

# --- sigproxy, one instance at a time on $SP (admin $ADM) in front of $UP, threads: 1, audit lines
# to /dev/null. Keys from $T/keys.yaml. SIG_MAX_AGE / SIG_SKEW set the signature window,
# SIG_MAX_BODY the signed-body limit (signature.max_body_bytes);
# SIGPROXY_EXTRA_POLICY is more policy YAML for every instance (e.g. listener settings).
sigproxy_config() { # mode [extra policy YAML]: writes $T/sigproxy-<mode>.yaml
  cat >"$T/sigproxy-$1.yaml" <<EOF
${2:-}
${SIGPROXY_EXTRA_POLICY:-}
mode: $1
listen: "127.0.0.1:$SP"
admin_listen: "127.0.0.1:$ADM"
upstream: "127.0.0.1:$UP"
threads: 1
shutdown_grace_seconds: 0
signature:
  max_age_seconds: ${SIG_MAX_AGE:-3600}
  clock_skew_seconds: ${SIG_SKEW:-30}
${SIG_MAX_BODY:+  max_body_bytes: $SIG_MAX_BODY}
$(cat "$T/keys.yaml")
EOF
}
# SP_BIN: the binary to run (default $SIGPROXY; run.sh sets it for EXTRA_SIGPROXY builds).
start_sigproxy() { # mode [extra policy YAML]
  sigproxy_config "$@"
  "${SP_BIN:-$SIGPROXY}" run --config "$T/sigproxy-$1.yaml" >/dev/null 2>"$T/sigproxy-$1.err" &
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
