#!/usr/bin/env bash
# ctest bench_suite_smoke: runs the suite at its smoke size (seconds) into a temporary
# directory beside the build, then checks that results.json and report.md were written and
# that every engine produced a result for every workload. No timing is asserted. fio is
# skipped when it is not installed.
# Usage: smoke_test.sh path/to/bench_suite
set -euo pipefail

bin=$1
tmp=$(mktemp -d "${PWD}/bench-suite-smoke.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

fio_args=()
if ! command -v fio >/dev/null 2>&1; then
  echo "smoke: fio not installed; running without device figures"
  fio_args=(--no-fio)
fi

# The driver exits non-zero when any run failed.
"$bin" --smoke --out "$tmp/out" --data "$tmp/data" "${fio_args[@]}"

json=$tmp/out/results.json
md=$tmp/out/report.md
test -s "$json" || { echo "smoke: $json missing"; exit 1; }
test -s "$md" || { echo "smoke: $md missing"; exit 1; }
test -s "$tmp/out/runs.jsonl" || { echo "smoke: runs.jsonl missing"; exit 1; }

workloads=(fillseq fillrandom overwrite readrandom readseq seekrandom readwhilewriting
           smallwrites ycsb-a ycsb-b ycsb-c ycsb-d ycsb-e ycsb-f)
for w in "${workloads[@]}"; do
  grep -q "^### ${w}\$" "$md" || { echo "smoke: report.md has no section for $w"; exit 1; }
done
for e in eloqstore rocksdb lmdb; do
  # Every run record is "engine", "workload", "repetition", "ok" on consecutive lines.
  for w in "${workloads[@]}"; do
    if ! grep -A3 "\"engine\": \"$e\"" "$json" | grep -A2 "\"workload\": \"$w\"" |
      grep -q '"ok": true'; then
      echo "smoke: no successful $w run for $e in results.json"
      exit 1
    fi
  done
  grep -q "^| $e | [0-9]" "$md" || { echo "smoke: report.md has no figures for $e"; exit 1; }
done
# Reads of existing keys must find them: a "found nothing" note means an engine lost data.
if grep -q "found nothing" "$md"; then
  grep "found nothing" "$md"
  exit 1
fi
echo "smoke: results.json and report.md complete for eloqstore, rocksdb and lmdb"
