#!/usr/bin/env bash
# Runs one fuzz target: first its regression inputs (tests/fuzz/regressions/<name>/: inputs
# that once broke it), then libFuzzer for a bounded time from the seed corpus.
#
# Usage: tests/fuzz/run.sh BINARY NAME SEEDS_DIR WORK_DIR SECONDS
# The corpus grows in WORK_DIR/corpus; an input that breaks the target is saved under
# WORK_DIR/artifacts/ (copy it into tests/fuzz/regressions/NAME/ once the bug is fixed).
set -euo pipefail
bin=$1 name=$2 seeds=$3 work=$4 seconds=$5
regressions=$(cd "$(dirname "$0")" && pwd)/regressions/${name}
mkdir -p "${work}/corpus" "${work}/artifacts"
# A UBSan report stops the run with a stack trace (also for code built without
# -fno-sanitize-recover).
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}

shopt -s nullglob
inputs=("${regressions}"/*)
if ((${#inputs[@]} > 0)); then
  echo "== ${name}: ${#inputs[@]} regression inputs"
  # (Files as arguments: libFuzzer runs each once and exits non-zero on the first failure.)
  "${bin}" "${inputs[@]}" > "${work}/regressions.log" 2>&1 || {
    tail -n 60 "${work}/regressions.log"
    exit 1
  }
fi

extra=()
if [[ "${name}" == page ]]; then
  extra=(-max_len=33000)  # a whole 32 KiB page and a key: the largest seed is shorter
fi

echo "== ${name}: fuzzing for ${seconds} s from $(ls "${seeds}" | wc -l) seeds"
rc=0
"${bin}" -max_total_time="${seconds}" -timeout=30 -rss_limit_mb=4096 -print_final_stats=1 "${extra[@]}" \
  -artifact_prefix="${work}/artifacts/" "${work}/corpus" "${seeds}" > "${work}/fuzz.log" 2>&1 || rc=$?
grep -E '^(#[0-9]+[[:space:]]+(INITED|DONE)|stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb))' \
  "${work}/fuzz.log" || true
echo "corpus: $(ls "${work}/corpus" | wc -l) inputs"
if ((rc != 0)); then
  grep -v -E "^#[0-9]+[[:space:]]+(NEW|REDUCE|pulse)" "${work}/fuzz.log" | tail -n 60
  echo "fuzz target ${name} failed (exit ${rc}); the input is in ${work}/artifacts/:" >&2
  ls -l "${work}/artifacts/" >&2
  exit 1  # (libFuzzer exits 77 on a crash: a code some runners read as "skipped")
fi
