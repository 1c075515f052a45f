#!/usr/bin/env bash
# Runs the benchmark suite: eloqstore beside RocksDB, LMDB and the raw device (fio), in one
# invocation. Installs the missing Debian packages (scripts/install-deps.sh --bench), builds
# bench_suite (Release) and runs the standard suite, about ten minutes on two cores, writing
# report.md, results.json, the charts and machine.txt to bench/results/.
#
# Usage: scripts/bench-suite.sh [--scale N] [--out DIR] [--smoke] [bench_suite options...]
#   --scale N   multiply the data sets by N (1: 500k + 250k records of ~1 KB)
#   --out DIR   where the report goes (default bench/results; with --smoke, $BUILD_DIR/bench-smoke)
#   --smoke     a tiny run (seconds) that checks everything works; not a measurement
#   Other options go to bench_suite unchanged (see bench/suite/main.cpp), e.g. --reps 5.
# Environment: BUILD_DIR (default build-bench), BENCH_DATA_DIR (default $BUILD_DIR/bench-data;
#   it must be on the disk under test), JOBS (default 2).
set -euo pipefail
cd "$(dirname "$0")/.."

build_dir=${BUILD_DIR:-build-bench}
jobs=${JOBS:-2}
data_dir=${BENCH_DATA_DIR:-${build_dir}/bench-data}
out=""
smoke=0
pass=()
while (($# > 0)); do
  case "$1" in
    --scale)
      pass+=(--scale "$2")
      shift 2
      ;;
    --out)
      out=$2
      shift 2
      ;;
    --smoke)
      smoke=1
      pass+=(--smoke)
      shift
      ;;
    -h | --help)
      sed -n '2,15p' "$0"
      exit 0
      ;;
    *)
      pass+=("$1")
      shift
      ;;
  esac
done
if [[ -z "${out}" ]]; then
  if ((smoke)); then
    out=${build_dir}/bench-smoke
  else
    out=bench/results
  fi
fi

bash scripts/install-deps.sh --bench

echo "== build (${build_dir}, Release)"
cmake -S . -B "${build_dir}" -DCMAKE_BUILD_TYPE=Release -DELOQSTORE_BUILD_TESTS=OFF \
  -DELOQSTORE_BUILD_EXAMPLES=OFF >/dev/null
cmake --build "${build_dir}" -j "${jobs}" --target bench_suite

mkdir -p "${out}" "${data_dir}"

echo "== machine description (${out}/machine.txt)"
{
  echo "# Machine of the benchmark run, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo
  echo "## lscpu"
  lscpu
  echo
  echo "## memory (/proc/meminfo)"
  grep -E '^(MemTotal|MemAvailable|SwapTotal|Hugepagesize)' /proc/meminfo
  echo
  echo "## kernel"
  uname -a
  echo
  echo "## block devices (/sys/block)"
  for dev in /sys/block/*; do
    name=$(basename "${dev}")
    [[ "${name}" == loop* || "${name}" == ram* ]] && continue
    size=$(($(cat "${dev}/size") * 512))
    model=$(cat "${dev}/device/model" 2>/dev/null | xargs || true)
    vendor=$(cat "${dev}/device/vendor" 2>/dev/null | xargs || true)
    driver=$(basename "$(readlink "${dev}/device/driver" 2>/dev/null || echo none)")
    echo "${name}: ${size} bytes, model '${model:-none}', vendor '${vendor:-none}'," \
      "driver ${driver}, rotational $(cat "${dev}/queue/rotational")," \
      "scheduler $(cat "${dev}/queue/scheduler")," \
      "logical block $(cat "${dev}/queue/logical_block_size")"
  done
  echo
  echo "## file system of the data directory (${data_dir})"
  df -hT "${data_dir}"
  findmnt -T "${data_dir}" || true
  echo
  echo "## tools and peers"
  fio --version || echo "fio missing"
  gnuplot --version || echo "gnuplot missing"
  dpkg-query -W -f='${Package} ${Version}\n' librocksdb-dev liblmdb-dev fio gnuplot-nox \
    2>/dev/null || true
  c++ --version | head -1
  echo "eloqstore commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)" \
    "$(git diff --quiet HEAD -- include 2>/dev/null || echo '(include/ has uncommitted changes)')"
} >"${out}/machine.txt"

echo "== bench_suite -> ${out}"
"${build_dir}/bench/suite/bench_suite" --out "${out}" --data "${data_dir}" "${pass[@]}"
