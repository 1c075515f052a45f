#!/usr/bin/env bash
# Point reads at queue depths 1, 32 and 128 (index pages cached, data pages O_DIRECT) against
# fio's 4 KiB random reads (io_uring, direct) on the same data file, interleaved round by
# round so machine drift hits both alike; prints the medians and the ratios. fio runs twice:
# as is (one submission per read) and with batched submission and reaping
# (--iodepth_batch_submit/complete_max of min(16, depth)), which is closer to what the
# engine's ring does and so the stricter of the two.
# Usage: bench/engine_vs_fio.sh [build dir=build] [work dir=/tmp/eloqstore-evf] [keys=300000]
#                               [rounds=3]
set -euo pipefail
build=${1:-build}
dir=${2:-/tmp/eloqstore-evf}
keys=${3:-300000}
rounds=${4:-3}
bench="$build/bench/engine_bench"
command -v fio >/dev/null || { echo "fio is missing (scripts/install-deps.sh --bench)" >&2; exit 1; }
rm -rf "$dir"
"$bench" "$dir" "$keys" uring load >/dev/null
data=$(find "$dir" -name 'data_*' -size +1M | head -1)
declare -A fio_iops fiob_iops eng_iops
for ((r = 1; r <= rounds; r++)); do
  for qd in 1 32 128; do
    v=$(fio --name=rr --filename="$data" --readonly --rw=randread --bs=4k --ioengine=io_uring \
          --direct=1 --runtime=4 --time_based --iodepth="$qd" --output-format=terse 2>/dev/null |
        awk -F';' '{print $8}')
    fio_iops[$qd]+="$v "
    b=$((qd < 16 ? qd : 16))
    v=$(fio --name=rr --filename="$data" --readonly --rw=randread --bs=4k --ioengine=io_uring \
          --direct=1 --runtime=4 --time_based --iodepth="$qd" --iodepth_batch_submit="$b" \
          --iodepth_batch_complete_max="$b" --output-format=terse 2>/dev/null |
        awk -F';' '{print $8}')
    fiob_iops[$qd]+="$v "
  done
  while read -r qd ops; do
    eng_iops[$qd]+="$ops "
  done < <("$bench" "$dir" "$keys" uring qd | awk '/read  random, depth/ {print $4+0, $5}')
done
median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
printf '%-6s %12s %12s %12s %7s %9s   (rounds: %d, keys: %d)\n' depth 'fio IOPS' 'fio batched' \
  'eloqstore' ratio 'vs batch' "$rounds" "$keys"
for qd in 1 32 128; do
  f=$(echo "${fio_iops[$qd]}" | median)
  b=$(echo "${fiob_iops[$qd]}" | median)
  e=$(echo "${eng_iops[$qd]}" | median)
  awk -v qd="$qd" -v f="$f" -v b="$b" -v e="$e" \
    'BEGIN {printf "%-6s %12s %12s %12s %6.0f%% %8.0f%%\n", qd, f, b, e, 100 * e / f, 100 * e / b}'
done
rm -rf "$dir"
