#!/usr/bin/env bash
# Bulk load (1000-byte values in durable batches of 20000) against fio's sequential write
# bandwidth (256 KiB blocks, queue depth 8, io_uring, direct, file preallocated as fio does by
# default, one fsync at the end) in the same directory, interleaved round by round so machine
# drift hits both alike; prints the medians and the ratio. A third column, durable_write_bench,
# is the device doing what the load asks of it and nothing else: the same bytes in batches of
# 20 MB (64 writes of 256 KiB in flight, as many as the engine keeps), each fdatasync'ed
# before the next starts (the engine acknowledges a batch only once it is durable; fio's
# figure syncs once at the end).
# Usage: bench/load_vs_fio.sh [build dir=build] [work dir=/tmp/eloqstore-lvf] [keys=1000000]
#                             [rounds=3]
set -euo pipefail
build=${1:-build}
dir=${2:-/tmp/eloqstore-lvf}
keys=${3:-1000000}
rounds=${4:-3}
bench="$build/bench/engine_bench"
command -v fio >/dev/null || { echo "fio is missing (scripts/install-deps.sh --bench)" >&2; exit 1; }
bytes=$((keys * 1000))
((bytes >= 1000000)) || { echo "keys must be at least 1000 (1 MB of values)" >&2; exit 1; }
fio_mbs="" eng_mbs="" dur_mbs=""
for ((r = 1; r <= rounds; r++)); do
  rm -rf "$dir" && mkdir -p "$dir"
  v=$(fio --name=sw --filename="$dir/fio.dat" --size="$bytes" --rw=write --bs=256k --iodepth=8 \
        --ioengine=io_uring --direct=1 --end_fsync=1 --output-format=terse 2>/dev/null |
      awk -F';' '{printf "%.1f", $48 * 1.024 / 1000}')  # write bandwidth, KiB/s -> MB/s
  fio_mbs+="$v "
  rm -rf "$dir" && mkdir -p "$dir"
  v=$("$build/bench/durable_write_bench" "$dir/durable.dat" $((bytes / 1000000)) 20 64 |
      awk '{print $4}')
  dur_mbs+="$v "
  rm -rf "$dir"
  e=$("$bench" "$dir" "$keys" uring load | awk '/load  batch  20000/ {print $(NF-5)}')
  eng_mbs+="$e "
done
rm -rf "$dir"
median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
f=$(echo "$fio_mbs" | median)
d=$(echo "$dur_mbs" | median)
e=$(echo "$eng_mbs" | median)
printf 'fio MB/s: %s  durable-per-batch MB/s: %s  eloqstore MB/s: %s  (rounds: %d, keys: %d)\n' \
  "$fio_mbs" "$dur_mbs" "$eng_mbs" "$rounds" "$keys"
awk -v f="$f" -v d="$d" -v e="$e" 'BEGIN {printf "median: fio %.0f MB/s, durable per batch %.0f MB/s, eloqstore %.0f MB/s = %.0f%% of fio, %.0f%% of durable per batch\n", f, d, e, 100 * e / f, 100 * e / d}'
