#!/usr/bin/env bash
# A throw-away S3 server on 127.0.0.1 for the object-store tests: a one-node Ceph RADOS
# Gateway (monitor, one memstore OSD, radosgw; no manager, no cephx) from Debian packages.
# RGW honours If-None-Match / If-Match on PutObject, so term fencing is tested for real.
#
#   scripts/s3-server.sh install      apt-get the packages if missing (ceph-mon ceph-osd radosgw)
#   scripts/s3-server.sh start        a fresh cluster in $S3_DIR; prints the environment
#   scripts/s3-server.sh stop
#   scripts/s3-server.sh env          the environment of a running server
#   scripts/s3-server.sh run CMD...   install, start, run CMD with the environment, stop
#
# Environment printed / exported: S3_ENDPOINT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
# AWS_REGION. Settings: S3_DIR (/tmp/eloqstore-s3), S3_PORT (47480), S3_MON_PORT (46789).
#
# What it takes to run here (learned, see ../shared/tools/README.md): radosgw waits 300 s
# for its monitor unless `ms mon client mode = crc secure`; the monitor answers pool
# commands slowly unless the paxos propose interval is short; memstore keeps everything in
# memory, so each start builds the cluster from nothing (a second or two).
set -euo pipefail

S3_DIR=${S3_DIR:-/tmp/eloqstore-s3}
S3_PORT=${S3_PORT:-47480}
S3_MON_PORT=${S3_MON_PORT:-46789}
S3_KEY=${S3_KEY:-ELOQSTORETESTKEY}
S3_SECRET=${S3_SECRET:-eloqstore-test-secret-0123456789}
endpoint="http://127.0.0.1:${S3_PORT}"
daemons=(client.rgw osd.0 mon.a)

say() { echo "s3-server: $*" >&2; }

install_packages() {
  local missing=()
  for bin in ceph-mon:ceph-mon ceph-osd:ceph-osd radosgw:radosgw curl:curl; do
    command -v "${bin%%:*}" >/dev/null || missing+=("${bin#*:}")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  say "installing ${missing[*]}"
  "${sudo[@]}" apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
}

print_env() {
  printf 'export S3_ENDPOINT=%s\nexport AWS_ACCESS_KEY_ID=%s\n' "$endpoint" "$S3_KEY"
  printf 'export AWS_SECRET_ACCESS_KEY=%s\nexport AWS_REGION=us-east-1\n' "$S3_SECRET"
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
rgw frontends = beast endpoint=127.0.0.1:$S3_PORT
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

start_server() {
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
  run)
    shift
    install_packages
    start_server >/dev/null
    trap stop_server EXIT
    eval "$(print_env)"
    "$@"
    ;;
  *)
    echo "usage: $0 install|start|stop|env|run CMD..." >&2
    exit 2
    ;;
esac
