#!/usr/bin/env bash
# Build the sigproxy image with podman (no Docker engine, no registry) and smoke-test it.
#
#   sudo bash docker/build-and-smoke.sh          # on a fresh Debian 12 machine, as root
#
# 1. installs podman, runc, debootstrap, curl when missing;
# 2. writes its own containers.conf/storage.conf (runc, not crun; default_ulimits; host network by
#    default; cgroupfs) under $WORK and points podman at them — the host's config is not touched;
# 3. makes the two base images locally: `debootstrap --variant=minbase` → a builder (gcc, cmake
#    and the host's Rust toolchain) and a distroless/cc-like runtime (only libc6's and libgcc-s1's
#    files, the CA bundle, a passwd with uid 65532), both via `podman import`;
# 4. `podman build --pull=never --format docker --network=host` with the host CA bundle mounted,
#    so cargo reaches the crate registry from inside the build;
# 5. runs the image with --network=host only (bridge networking is never used) read-only, no
#    capabilities, and checks: /healthz and /readyz, an unsigned request proxied to a tiny
#    upstream on 127.0.0.1, a signed one (identity headers reach the upstream, forged ones do
#    not), a 401 JSON rejection, the process uid (65532, not root) and a clean SIGTERM stop.
#
# Environment: IMAGE (default localhost/sigproxy:dev), WORK (default /var/tmp/sigproxy-image:
# rootfs, storage and caches; keep it between runs for speed), DEBIAN_MIRROR (default: the mirror
# this machine's apt already uses for the suite, see apt_mirror below), STORAGE_DRIVER (overlay,
# falls back to vfs when overlay cannot mount), KEEP_IMAGE=0 to remove the image after.
#
#   bash docker/build-and-smoke.sh --print-mirror   # print the mirror debootstrap would use; exit
set -euo pipefail
cd "$(dirname "$0")/.."
IMAGE=${IMAGE:-localhost/sigproxy:dev}
WORK=${WORK:-/var/tmp/sigproxy-image}
SUITE=bookworm
T0=$(date +%s)

log() { printf '\n== [%4ss] %s\n' "$(($(date +%s) - T0))" "$*" >&2; }
die() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }

# The Debian mirror this machine's apt already uses, read from its sources ($APT_ETC, default
# /etc/apt): deb822 `*.sources` stanzas and one-line `sources.list` / `*.list` entries, skipping
# `deb-src`, `Enabled: no` stanzas and non-http(s) URIs. First choice: an entry whose suites
# include $1 itself; second: one for a plain release (`trixie`, not `trixie-security`), as a Debian
# mirror carries every release; in file order. Prints nothing when no entry qualifies.
apt_mirror() {
  local suite=$1 etc=${APT_ETC:-/etc/apt} files=() f
  [ -f "$etc/sources.list" ] && files+=("$etc/sources.list")
  for f in "$etc"/sources.list.d/*.list "$etc"/sources.list.d/*.sources; do
    [ -f "$f" ] && files+=("$f")
  done
  [ ${#files[@]} -gt 0 ] || return 0
  awk -v suite="$suite" '
    function rank(uri, s) {
      if (uri !~ /^https?:\/\//) return
      if (s == suite) print 1, uri
      else if (s ~ /^[a-z]+$/) print 2, uri
    }
    function flush(   n, u, m, s, i, j) {
      if (types ~ /(^|[ \t])deb([ \t]|$)/ && tolower(enabled) !~ /^[ \t]*no[ \t]*$/) {
        n = split(uris, u, /[ \t]+/); m = split(suites, s, /[ \t]+/)
        for (i = 1; i <= n; i++) for (j = 1; j <= m; j++) if (u[i] != "" && s[j] != "") rank(u[i], s[j])
      }
      types = ""; uris = ""; suites = ""; enabled = ""; field = ""
    }
    FNR == 1 { flush(); deb822 = (FILENAME ~ /\.sources$/) }
    /^[ \t]*#/ { next }
    !deb822 {
      if ($1 != "deb") next
      i = 2
      if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
      if (i + 1 <= NF) rank($i, $(i + 1))
      next
    }
    /^[ \t]*$/ { flush(); next }
    /^[ \t]/ {
      if (field == "uris") uris = uris " " $0
      else if (field == "suites") suites = suites " " $0
      else if (field == "types") types = types " " $0
      next
    }
    {
      field = tolower(substr($0, 1, index($0, ":") - 1)); value = substr($0, index($0, ":") + 1)
      if (field == "types") types = value
      else if (field == "uris") uris = value
      else if (field == "suites") suites = value
      else if (field == "enabled") enabled = value
    }
    END { flush() }
  ' "${files[@]}" | sort -s -n -k1,1 | awk 'NR == 1 { print $2 }'
}

if [ -z "${DEBIAN_MIRROR:-}" ]; then
  DEBIAN_MIRROR=$(apt_mirror "$SUITE")
  MIRROR_FROM="this machine's apt sources (${APT_ETC:-/etc/apt})"
  if [ -z "$DEBIAN_MIRROR" ]; then
    DEBIAN_MIRROR=http://deb.debian.org/debian
    MIRROR_FROM="Debian's default: no apt source on this machine serves $SUITE or a release"
  fi
else
  MIRROR_FROM="DEBIAN_MIRROR"
fi
if [ "${1:-}" = --print-mirror ]; then
  echo "$DEBIAN_MIRROR"
  exit 0
fi

[ "$(id -u)" = 0 ] || die "run as root (podman import/build with a rootful store)"

# --- 1. tools -------------------------------------------------------------------------------
need=()
for t in podman:podman runc:runc debootstrap:debootstrap curl:curl; do
  command -v "${t%%:*}" >/dev/null || need+=("${t#*:}")
done
if [ ${#need[@]} -gt 0 ]; then
  log "apt-get install ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
command -v cargo >/dev/null || die "the Rust toolchain (cargo, rustc) must be on PATH: it is copied into the builder image"

log "Debian mirror $DEBIAN_MIRROR (from $MIRROR_FROM)"

# --- 2. podman configuration (ours only) ------------------------------------------------------
mkdir -p "$WORK/conf"
cat >"$WORK/conf/containers.conf" <<'EOF'
[containers]
# This machine's default hard limits cannot be raised (no CAP_SYS_RESOURCE); ask for what it has.
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
# Host networking only: bridge networking routes to private addresses, which are off limits.
netns = "host"

[engine]
# crun fails on these machines; runc works.
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
write_storage_conf() {
  cat >"$WORK/conf/storage.conf" <<EOF
[storage]
driver = "$1"
graphroot = "$WORK/storage-$1"
runroot = "$WORK/run-$1"
EOF
}
DRIVER=${STORAGE_DRIVER:-overlay}
write_storage_conf "$DRIVER"
export CONTAINERS_CONF="$WORK/conf/containers.conf"
export CONTAINERS_STORAGE_CONF="$WORK/conf/storage.conf"
podman info --format '{{.Store.GraphDriverName}} {{.Host.OCIRuntime.Name}}' >/dev/null \
  || die "podman info failed with driver $DRIVER"

# --- 3. base images ---------------------------------------------------------------------------
SYSROOT=$(rustc --print sysroot)
RUSTV=$(rustc --version | awk '{print $2}')
BUILDER=localhost/sigproxy-builder:$SUITE-rust$RUSTV
RUNTIME=localhost/sigproxy-cc:$SUITE

rootfs() {
  local dir=$WORK/rootfs-$SUITE
  if [ ! -f "$dir/.complete" ]; then
    log "debootstrap --variant=minbase $SUITE from $DEBIAN_MIRROR"
    rm -rf "$dir"
    debootstrap --variant=minbase \
      --include=ca-certificates,gcc,libc6-dev,make,cmake,pkg-config \
      "$SUITE" "$dir" "$DEBIAN_MIRROR" >"$WORK/debootstrap.log" 2>&1 \
      || { tail -20 "$WORK/debootstrap.log"; die "debootstrap failed"; }
    rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/*
    touch "$dir/.complete"
  fi
  echo "$dir"
}

import_builder() {
  local fs=$1 stage=$WORK/builder-stage
  log "import $BUILDER (minbase + gcc/cmake + Rust $RUSTV from $SYSROOT)"
  rm -rf "$stage" && mkdir -p "$stage"
  # The rootfs stays pristine (the cc image is cut from it): the toolchain is appended to the
  # same tar under usr/local/rust with --transform instead of being copied into the rootfs.
  tar -C "$fs" --exclude=./.complete -cf "$stage/rootfs.tar" .
  # The toolchain's top-level entries (bin, lib, libexec, …), docs (share/) left out.
  local parts=() e
  for e in "$SYSROOT"/* "$SYSROOT"/.[!.]*; do
    [ -e "$e" ] && [ "${e##*/}" != share ] && parts+=("${e##*/}")
  done
  tar -C "$SYSROOT" --transform 's,^,usr/local/rust/,' -rf "$stage/rootfs.tar" "${parts[@]}"
  podman import -q \
    --change 'ENV PATH=/usr/local/rust/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV CARGO_HOME=/usr/local/cargo' \
    --change 'WORKDIR /' \
    "$stage/rootfs.tar" "$BUILDER" >/dev/null
  rm -rf "$stage"
}

import_runtime() {
  local fs=$1 stage=$WORK/cc-stage
  log "import $RUNTIME (distroless/cc-like: libc6 + libgcc-s1 files, CA bundle, uid 65532)"
  rm -rf "$stage" && mkdir -p "$stage"/{etc,tmp,home/nonroot,usr/bin,usr/sbin,usr/lib,usr/lib64}
  chmod 1777 "$stage/tmp"
  ln -s usr/bin "$stage/bin"; ln -s usr/sbin "$stage/sbin"
  ln -s usr/lib "$stage/lib"; ln -s usr/lib64 "$stage/lib64"
  # Package file lists, mapped onto the merged /usr; directories are created by tar as needed.
  cat "$fs"/var/lib/dpkg/info/libc6:amd64.list "$fs"/var/lib/dpkg/info/libgcc-s1:amd64.list \
    | grep -vE '^/usr/share/(doc|lintian|locale)|/gconv/' \
    | sed -E 's,^/(lib|lib64|bin|sbin)/,/usr/\1/,; s,^/,,' \
    | while read -r p; do [ -d "$fs/$p" ] || echo "$p"; done >"$stage/.files"
  tar -C "$fs" -cf - -T "$stage/.files" | tar -C "$stage" -xf -
  rm "$stage/.files"
  mkdir -p "$stage/etc/ssl/certs"
  cp "$fs/etc/ssl/certs/ca-certificates.crt" "$stage/etc/ssl/certs/"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$stage/etc/passwd"
  printf 'root:x:0:\nnonroot:x:65532:\n' >"$stage/etc/group"
  printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$stage/etc/nsswitch.conf"
  chown 65532:65532 "$stage/home/nonroot"
  tar -C "$stage" -cf - . | podman import -q --change 'USER 65532:65532' --change 'WORKDIR /home/nonroot' - "$RUNTIME" >/dev/null
  rm -rf "$stage"
}

if ! podman image exists "$BUILDER" || ! podman image exists "$RUNTIME"; then
  FS=$(rootfs)
  podman image exists "$BUILDER" || import_builder "$FS"
  # Overlay inside some containers imports fine and fails at the first mount: probe a real run.
  if ! podman run --rm --network=host "$BUILDER" true 2>"$WORK/probe.log"; then
    [ "$DRIVER" = vfs ] && { cat "$WORK/probe.log"; die "podman cannot run containers here"; }
    log "storage driver $DRIVER cannot run containers ($(tail -1 "$WORK/probe.log")); using vfs"
    DRIVER=vfs; write_storage_conf vfs
    import_builder "$FS"
    podman run --rm --network=host "$BUILDER" true || die "podman cannot run containers (vfs)"
  fi
  podman image exists "$RUNTIME" || import_runtime "$FS"
fi
log "storage driver: $(podman info --format '{{.Store.GraphDriverName}}'), runtime: $(podman info --format '{{.Host.OCIRuntime.Name}}')"

# --- 4. build ---------------------------------------------------------------------------------
# A clean context with only what the Dockerfile copies (mtimes kept: the layer cache hits).
CTX=$WORK/context
rm -rf "$CTX" && mkdir -p "$CTX/docker"
cp -a Cargo.toml Cargo.lock .cargo src benches "$CTX/"
cp -a docker/Dockerfile docker/policy.yaml "$CTX/docker/"
CA=/etc/ssl/certs/ca-certificates.crt
[ -f "$CA" ] || die "no host CA bundle at $CA"
log "podman build $IMAGE"
TB=$(date +%s)
podman build --pull=never --format docker --network=host \
  -v "$CA:/etc/ssl/certs/ca-certificates.crt:ro" \
  --build-arg "BUILDER_IMAGE=$BUILDER" --build-arg "RUNTIME_IMAGE=$RUNTIME" \
  -f "$CTX/docker/Dockerfile" -t "$IMAGE" "$CTX" >"$WORK/build.log" 2>&1 \
  || { tail -40 "$WORK/build.log"; die "podman build failed (log: $WORK/build.log)"; }
log "built in $(($(date +%s) - TB)) s; image size $(podman image inspect -f '{{.Size}}' "$IMAGE" | awk '{printf "%.1f MB", $1/1e6}')"
podman image inspect -f '{{.Config.User}}' "$IMAGE" | grep -qx '65532:65532' || die "image USER is not 65532:65532"

# --- 5. smoke test ----------------------------------------------------------------------------
SMOKE=$(mktemp -d "$WORK/smoke.XXXXXX")
NAME=sigproxy-smoke-$$
UP_PID=
cleanup() {
  podman rm -f -t 0 "$NAME" >/dev/null 2>&1 || true
  if [ -n "$UP_PID" ]; then kill "$UP_PID" 2>/dev/null || true; fi
  rm -rf "$SMOKE"
  if [ "${KEEP_IMAGE:-1}" = 0 ]; then podman rmi -f "$IMAGE" >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
P_PROXY=$(free_port); P_ADMIN=$(free_port); P_UP=$(free_port)

# The stand-in legacy backend: answers every request with what it was told (path, identity).
cat >"$SMOKE/upstream.py" <<'EOF'
import json, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class H(BaseHTTPRequestHandler):
    def reply(self):
        n = int(self.headers.get("content-length") or 0)
        self.rfile.read(n)
        # Every spelling (case, "_" for "-") of the identity headers counts as seen.
        seen = {k.lower(): v for k, v in self.headers.items()
                if k.lower().replace("_", "-").startswith("x-datafold")}
        body = json.dumps({"backend": "legacy", "path": self.path, "identity": seen}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    do_GET = do_POST = do_PUT = do_DELETE = reply
    def log_message(self, *a): pass
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
EOF
python3 "$SMOKE/upstream.py" "$P_UP" &
UP_PID=$!

mkdir -p "$SMOKE/keys" "$SMOKE/config"
chmod 0777 "$SMOKE/keys"   # keygen runs as uid 65532 in the container
podman run --rm --network=host --user 65532:65532 -v "$SMOKE/keys:/keys" "$IMAGE" \
  keygen --key-id smoke-v1 --client-id smoke-client --out /keys >"$SMOKE/keygen.out" \
  || die "keygen in the container failed"
PUB=$(tr -d '\n' <"$SMOKE/keys/smoke-v1.pub")
cat >"$SMOKE/config/policy.yaml" <<EOF
mode: hybrid
listen: "127.0.0.1:$P_PROXY"
upstream: "127.0.0.1:$P_UP"
admin_listen: "127.0.0.1:$P_ADMIN"
shutdown_grace_seconds: 5
keys:
  - key_id: smoke-v1
    client_id: smoke-client
    public_key: "$PUB"
routes:
  - { path_prefix: /admin/, mode: required }
EOF

log "run $IMAGE (--network=host --read-only --cap-drop=ALL) proxy :$P_PROXY admin :$P_ADMIN upstream :$P_UP"
podman run -d --name "$NAME" --network=host --read-only --cap-drop=ALL \
  --security-opt=no-new-privileges \
  -v "$SMOKE/config:/etc/sigproxy/config:ro" "$IMAGE" >/dev/null
ok=
for _ in $(seq 1 60); do
  if curl -fsS -o /dev/null "http://127.0.0.1:$P_ADMIN/healthz" 2>/dev/null; then ok=1; break; fi
  [ "$(podman inspect -f '{{.State.Running}}' "$NAME")" = true ] || break
  sleep 0.5
done
[ -n "$ok" ] || { podman logs "$NAME" | tail -20; die "/healthz did not answer 200 within 30 s"; }
echo "ok /healthz"
# Live is not ready: /readyz is 503 until the proxy listener serves (a probe retries; so do we).
ok=
for _ in $(seq 1 60); do
  if curl -fsS -o /dev/null "http://127.0.0.1:$P_ADMIN/readyz" 2>/dev/null; then ok=1; break; fi
  sleep 0.5
done
[ -n "$ok" ] || { curl -sS "http://127.0.0.1:$P_ADMIN/readyz"; echo; podman logs "$NAME" | tail -20; die "/readyz not 200 within 30 s"; }
echo "ok /readyz"
# (to a file first: `curl | grep -q` fails under pipefail when grep stops reading early)
curl -fsS -o "$SMOKE/metrics.txt" "http://127.0.0.1:$P_ADMIN/metrics" || die "/metrics not 200"
grep -q '^datafold_requests_total' "$SMOKE/metrics.txt" || die "/metrics has no datafold_requests_total"
echo "ok /metrics"

# Unsigned, with a forged identity header: passes as legacy, the forgery never reaches the backend.
R=$(curl -fsS -H 'X-DataFold-Client-Id: admin' -H 'x_datafold_client_id: admin' "http://127.0.0.1:$P_PROXY/hello?x=1")
echo "$R" | grep -q '"path": "/hello?x=1"' || die "unsigned request not proxied: $R"
echo "$R" | grep -q '"admin"' && die "forged identity header reached the backend: $R"
echo "$R" | grep -qi '"x-datafold-auth-method": "legacy"' || die "no auth method legacy: $R"
echo "ok unsigned request proxied as legacy, forged identity dropped"

# Signed with the key made above: identity headers set from the verification.
S=$(podman run --rm --network=host -v "$SMOKE/keys:/keys:ro" "$IMAGE" \
  sign --key /keys/smoke-v1.key --key-id smoke-v1 -X POST -H 'Content-Type: application/json' \
  -d '{"n":1}' --send "http://127.0.0.1:$P_PROXY/api/items") || die "signed request failed: $S"
echo "$S" | grep -q 'smoke-client' || die "signed request: backend did not see the client id: $S"
echo "ok signed request verified, identity forwarded"

# Required route, unsigned: a 401 JSON rejection that never reaches the backend.
code=$(curl -sS -o "$SMOKE/401.json" -w '%{http_code}' "http://127.0.0.1:$P_PROXY/admin/x")
[ "$code" = 401 ] || die "required route unsigned: status $code, want 401"
grep -q '"code":"SIGNATURE_MISSING"' "$SMOKE/401.json" || die "401 body: $(cat "$SMOKE/401.json")"
echo "ok 401 SIGNATURE_MISSING on a required route"

PID=$(podman inspect -f '{{.State.Pid}}' "$NAME")
uid=$(awk '/^Uid:/ {print $2}' "/proc/$PID/status")
[ "$uid" = 65532 ] || die "process uid is $uid, want 65532"
echo "ok process uid $uid (non-root), root filesystem read-only"

TS=$(date +%s)
podman stop -t 20 "$NAME" >/dev/null
rc=$(podman inspect -f '{{.State.ExitCode}}' "$NAME")
[ "$rc" = 0 ] || { podman logs "$NAME" | tail -20; die "exit code after SIGTERM: $rc (137 = killed)"; }
podman logs "$NAME" 2>&1 | grep -qiE 'panic|thread .* panicked' && die "panic in the container log"
echo "ok clean stop on SIGTERM in $(($(date +%s) - TS)) s, exit code 0"

log "PASS: $IMAGE built and smoke-tested"
