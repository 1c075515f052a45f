#!/usr/bin/env bash
# A throw-away S3 server on 127.0.0.1 for the object-store tests, one of two kinds
# (S3_SERVER):
#   rgw     a one-node Ceph RADOS Gateway (monitor, one memstore OSD, radosgw; no manager, no
#           cephx) from Debian packages. RGW honours If-None-Match / If-Match on PutObject, so
#           term fencing is tested for real. The default.
#   s3rver  npm's s3rver, lighter, for the plain HTTP path (it ignores conditional puts).
#
#   scripts/s3-server.sh install      install what the server needs, if missing
#   scripts/s3-server.sh start        a fresh server in $S3_DIR; prints the environment
#   scripts/s3-server.sh stop
#   scripts/s3-server.sh env          the environment of a running server
#   scripts/s3-server.sh run CMD...   install, start, run CMD with the environment, stop
#   scripts/s3-server.sh with CMD...  run CMD with the environment of the running server
#
# Environment printed / exported: S3_ENDPOINT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
# AWS_REGION, S3_FLAVOR. Settings: S3_DIR (/tmp/eloqstore-<server>), S3_PORT (rgw 47480,
# s3rver 47481), S3_MON_PORT (46789), S3RVER_HOME (where npm installs s3rver:
# ~/.cache/eloqstore/s3rver).
#
# What it takes to run here (learned, see ../shared/tools/README.md): radosgw waits 300 s
# for its monitor unless `ms mon client mode = crc secure`; the monitor answers pool
# commands slowly unless the paxos propose interval is short; memstore keeps everything in
# memory, so each start builds the cluster from nothing (a second or two); without
# tcp_nodelay on the beast frontend every small response on a reused connection waits 40 ms
# for the client's delayed ACK (Nagle), so a GET of a small object took 44 ms instead of 1.4. s3rver 3.7.1 makes
# ListObjectsV2 continuation tokens with DES, which Node's OpenSSL 3 refuses (InternalError on
# every truncated listing) unless node runs with --openssl-legacy-provider.
set -euo pipefail

S3_SERVER=${S3_SERVER:-rgw}
case "$S3_SERVER" in
  rgw)
    S3_PORT=${S3_PORT:-47480}
    S3_KEY=ELOQSTORETESTKEY
    S3_SECRET=eloqstore-test-secret-0123456789
    ;;
  s3rver)
    S3_PORT=${S3_PORT:-47481}
    S3_KEY=S3RVER  # the only credentials s3rver knows
    S3_SECRET=S3RVER
    ;;
  *)
    echo "s3-server: S3_SERVER must be rgw or s3rver, not '$S3_SERVER'" >&2
    exit 2
    ;;
esac
S3_DIR=${S3_DIR:-/tmp/eloqstore-$S3_SERVER}
S3_MON_PORT=${S3_MON_PORT:-46789}
S3RVER_HOME=${S3RVER_HOME:-$HOME/.cache/eloqstore/s3rver}
S3RVER_VERSION=3.7.1
endpoint="http://127.0.0.1:${S3_PORT}"
daemons=(client.rgw osd.0 mon.a)  # stopped in this order
if [ "$S3_SERVER" = s3rver ]; then
  daemons=(s3rver)
fi

say() { echo "s3-server: $*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

install_s3rver() {
  [ -f "$S3RVER_HOME/node_modules/s3rver/bin/s3rver.js" ] && return 0
  if ! command -v npm >/dev/null; then
    say "installing nodejs npm"
    as_root apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends \
      nodejs npm curl >/dev/null
  fi
  say "installing s3rver@$S3RVER_VERSION into $S3RVER_HOME"
  mkdir -p "$S3RVER_HOME"
  npm install --prefix "$S3RVER_HOME" --no-audit --no-fund --loglevel=error \
    "s3rver@$S3RVER_VERSION" >/dev/null
}

install_packages() {
  if [ "$S3_SERVER" = s3rver ]; then
    install_s3rver
    return
  fi
  local missing=()
  for bin in ceph-mon:ceph-mon ceph-osd:ceph-osd radosgw:radosgw curl:curl; do
    command -v "${bin%%:*}" >/dev/null || missing+=("${bin#*:}")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  say "installing ${missing[*]}"
  as_root apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
}

print_env() {
  printf 'export S3_ENDPOINT=%s\nexport AWS_ACCESS_KEY_ID=%s\n' "$endpoint" "$S3_KEY"
  printf 'export AWS_SECRET_ACCESS_KEY=%s\nexport AWS_REGION=us-east-1\n' "$S3_SECRET"
  printf 'export S3_FLAVOR=%s\n' "$S3_SERVER"
}

alive() { [ -f "$S3_DIR/run/$1.pid" ] && kill -0 "$(cat "$S3_DIR/run/$1.pid")" 2>/dev/null; }
# Started (its pid file written) and gone since.
died() { [ -f "$S3_DIR/run/$1.pid" ] && ! kill -0 "$(cat "$S3_DIR/run/$1.pid")" 2>/dev/null; }

stop_server() {
  local d pid
  for d in "${daemons[@]}"; do
    alive "$d" || continue
    pid=$(cat "$S3_DIR/run/$d.pid")
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
}

write_conf() {
  cat >"$S3_DIR/ceph.conf" <<EOF
[global]
fsid = $1
mon host = v2:127.0.0.1:$S3_MON_PORT
mon initial members = a
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind ipv6 = false
ms bind msgr1 = false
auth cluster required = none
auth service required = none
auth client required = none
ms mon client mode = crc secure
paxos propose interval = 0.05
paxos min wait = 0.01
log file = $S3_DIR/log/\$name.log
admin socket = $S3_DIR/run/\$name.asok
pid file = $S3_DIR/run/\$name.pid
run dir = $S3_DIR/run
crash dir = $S3_DIR/crash
keyring = $S3_DIR/keyring
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon warn on pool no redundancy = false
mon data avail warn = 1
mon data avail crit = 1
[mon]
mon data = $S3_DIR/mon/\$id
[osd]
osd data = $S3_DIR/osd/\$id
osd objectstore = memstore
memstore device bytes = ${S3_STORE_BYTES:-4294967296}
[client.rgw]
rgw frontends = beast endpoint=127.0.0.1:$S3_PORT tcp_nodelay=1
rgw thread pool size = 64
rgw enable lc threads = false
rgw data = $S3_DIR/rgw
EOF
}

# The HTTP status of a signed GET of the service root.
signed_status() {
  curl -s -o /dev/null -m 5 -w '%{http_code}' --aws-sigv4 "aws:amz:us-east-1:s3" \
    -u "$S3_KEY:$S3_SECRET" -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "$endpoint/" || true
}

start_s3rver() {
  stop_server
  rm -rf "$S3_DIR"
  mkdir -p "$S3_DIR"/{data,run,log}
  node --openssl-legacy-provider "$S3RVER_HOME/node_modules/s3rver/bin/s3rver.js" \
    -d "$S3_DIR/data" -a 127.0.0.1 -p "$S3_PORT" --silent >"$S3_DIR/log/s3rver.log" 2>&1 &
  echo $! >"$S3_DIR/run/s3rver.pid"
  for _ in $(seq 120); do
    [ "$(signed_status)" = 200 ] && { print_env; return 0; }
    if died s3rver; then
      say "s3rver died: see $S3_DIR/log/s3rver.log"
      return 1
    fi
    sleep 0.25
  done
  say "s3rver does not answer: see $S3_DIR/log/s3rver.log"
  stop_server
  return 1
}

start_server() {
  if [ "$S3_SERVER" = s3rver ]; then
    start_s3rver
    return
  fi
  stop_server
  rm -rf "$S3_DIR"
  mkdir -p "$S3_DIR"/{mon/a,osd/0,log,run,rgw,crash}
  local fsid osd_uuid
  fsid=$(cat /proc/sys/kernel/random/uuid)
  osd_uuid=$(cat /proc/sys/kernel/random/uuid)
  write_conf "$fsid"
  export CEPH_CONF="$S3_DIR/ceph.conf"
  ceph-authtool --create-keyring "$S3_DIR/keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
  monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$S3_MON_PORT]" \
    "$S3_DIR/monmap" >/dev/null
  ceph-mon --mkfs -i a --monmap "$S3_DIR/monmap" --keyring "$S3_DIR/keyring"
  ceph-mon -i a
  timeout 60 ceph osd new "$osd_uuid" >/dev/null
  ceph-osd -i 0 --mkfs --osd-uuid "$osd_uuid" >"$S3_DIR/log/osd-mkfs.out" 2>&1
  ceph-osd -i 0 2>>"$S3_DIR/log/osd.out"
  radosgw -n client.rgw
  local up=""
  for _ in $(seq 480); do
    if [ "$(curl -s -o /dev/null -m 2 -w '%{http_code}' "$endpoint/" || true)" = 200 ]; then
      up=1
      break
    fi
    for d in "${daemons[@]}"; do
      if died "$d"; then
        say "$d died: see $S3_DIR/log"
        stop_server
        return 1
      fi
    done
    sleep 0.25
  done
  [ -n "$up" ] || { say "radosgw does not answer: see $S3_DIR/log"; stop_server; return 1; }
  timeout 60 radosgw-admin user create --uid=eloqstore --display-name=eloqstore \
    --access-key="$S3_KEY" --secret-key="$S3_SECRET" >"$S3_DIR/log/user.out" 2>&1
  for _ in $(seq 40); do
    [ "$(signed_status)" = 200 ] && { print_env; return 0; }
    sleep 0.25
  done
  say "signed requests fail: see $S3_DIR/log"
  stop_server
  return 1
}

case "${1:-}" in
  install) install_packages ;;
  start) install_packages && start_server ;;
  stop) stop_server ;;
  env) print_env ;;
  with)
    shift
    eval "$(print_env)"
    exec "$@"
    ;;
  run)
    shift
    install_packages
    start_server >/dev/null
    trap stop_server EXIT
    eval "$(print_env)"
    "$@"
    ;;
  *)
    echo "usage: $0 install|start|stop|env|run CMD...|with CMD..." >&2
    exit 2
    ;;
esac
