#!/usr/bin/env bash
# The crash loop (tests/stress/crash_loop.cpp) on small file systems this script mounts and
# removes: a tmpfs and a loop-mounted ext4, each nearly full (a filler file leaves a few MiB),
# with some cycles run while the file system is remounted read-only. Writes that fail for want
# of space or on a read-only file system must change nothing; every acknowledged one must
# survive the kills.
#
# Usage: tests/stress/disk_modes.sh CRASH_LOOP [CYCLES=20] [REPORT_DIR]
# Needs root (mount); exits 77 (ctest: skipped) with a message where it cannot mount.
set -euo pipefail

bin=${1:?usage: disk_modes.sh CRASH_LOOP [CYCLES] [REPORT_DIR]}
cycles=${2:-20}
reports=${3:-}

if [[ $(id -u) != 0 ]]; then
  echo "disk_modes: skipped: mounting needs root"
  exit 77
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/disk_modes.XXXXXX")
mnt=$work/mnt
mkdir -p "$mnt"
# (A killed driver's io_uring lets go of its files a moment after the process is gone.)
unmount() {
  for _ in $(seq 100); do
    umount "$mnt" 2>/dev/null && return 0
    mountpoint -q "$mnt" || return 0
    sleep 0.1
  done
  echo "disk_modes: cannot unmount $mnt" >&2
  return 1
}
cleanup() {
  unmount || true
  rm -rf "$work"
}
trap cleanup EXIT

# run_on NAME FREE_MIB: the loop on the file system mounted at $mnt, a filler leaving FREE_MIB.
run_on() {
  local name=$1 free_mib=$2
  local avail
  avail=$(df --output=avail -B1 "$mnt" | tail -1)
  if ((avail > free_mib * 1024 * 1024)); then
    fallocate -l $((avail - free_mib * 1024 * 1024)) "$mnt/filler"
  fi
  echo "disk_modes: $name, $(df -h --output=avail "$mnt" | tail -1 | tr -d ' ') free"
  local report=()
  if [[ -n "$reports" ]]; then
    report=(--report "$reports/disk_modes_$name.txt")
  fi
  "$bin" run --cycles "$cycles" --cycles-per-run 5 --max-kill-ms 800 --dir "$work/logs-$name" \
    --store-root "$mnt/stores" --may-fail --remount-ro 0.25 --mountpoint "$mnt" "${report[@]}"
  rm -f "$mnt/filler"
}

if ! mount -t tmpfs -o size=32m tmpfs "$mnt" 2>"$work/err"; then
  echo "disk_modes: skipped: cannot mount a tmpfs: $(cat "$work/err")"
  exit 77
fi
run_on tmpfs 3
unmount

if ! command -v mkfs.ext4 >/dev/null; then
  echo "disk_modes: the ext4 part is skipped: no mkfs.ext4"
  exit 0
fi
truncate -s 64M "$work/ext4.img"
mkfs.ext4 -q -F -m 0 "$work/ext4.img"  # (no blocks reserved for root: the test runs as root)
if ! mount -o loop "$work/ext4.img" "$mnt" 2>"$work/err"; then
  echo "disk_modes: the ext4 part is skipped: cannot mount a loop device: $(cat "$work/err")"
  exit 0
fi
run_on ext4 3
echo "disk_modes: passed"
