#!/usr/bin/env bash
# The long forms of the reliability harnesses (issue 21), with a report: the blackbox crash
# loop (tests/stress/crash_loop.cpp), the corruption campaign (tests/stress/corruption.cpp)
# the crash loop on nearly full and read-only file systems (tests/stress/disk_modes.sh, root
# only) and the deterministic simulation (crash_tests, case "simulation"). CI runs short forms of each through ctest (label crash); this runs them for as
# long as asked and writes docs/reliability-report.md (the README links it) and the raw
# reports beside it.
#
# Usage: scripts/reliability.sh [--cycles N] [--trials N] [--disk-cycles N] [--seeds N]
#                               [--out DIR]
#   --cycles N       crash-loop kill cycles (default 2000, about an hour here)
#   --trials N       corruption trials (default 2000)
#   --disk-cycles N  crash-loop cycles per file system in disk_modes.sh (default 100)
#   --seeds N        simulation seeds (default 100000, about 20 CPU-minutes)
#   --out DIR        where the reports go (default docs/reliability)
# Environment: BUILD_DIR (default build), JOBS (default 2), SEED (default: random, printed).
set -euo pipefail
cd "$(dirname "$0")/.."

build_dir=${BUILD_DIR:-build}
jobs=${JOBS:-2}
cycles=2000
trials=2000
disk_cycles=100
seeds=100000
out=docs/reliability
while (($# > 0)); do
  case "$1" in
    --cycles) cycles=$2; shift 2 ;;
    --trials) trials=$2; shift 2 ;;
    --disk-cycles) disk_cycles=$2; shift 2 ;;
    --seeds) seeds=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    -h | --help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "reliability.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
seed=${SEED:-$((RANDOM * 32768 + RANDOM + 1))}

bash scripts/install-deps.sh
cmake -S . -B "${build_dir}" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "${build_dir}" -j "${jobs}" --target crash_loop corruption crash_tests
mkdir -p "${out}"
rm -f "${out}"/crash_loop.txt "${out}"/corruption.txt "${out}"/disk_modes_*.txt "${out}"/disk_modes.log \
  "${out}"/simulation.txt

started=$(date -u +%FT%TZ)
status=0
echo "== crash loop: ${cycles} cycles, seed ${seed}"
"${build_dir}/tests/crash_loop" run --cycles "${cycles}" --cycles-per-run 25 --seed "${seed}" \
  --report "${out}/crash_loop.txt" || status=1
echo "== corruption campaign: ${trials} trials"
"${build_dir}/tests/corruption" --trials "${trials}" --seed "${seed}" \
  --report "${out}/corruption.txt" || status=1
echo "== simulation: seeds 1..${seeds}"
ELOQSTORE_SIM_SEEDS=${seeds} "${build_dir}/tests/crash_tests" -tc='simulation*' \
  > "${out}/simulation.log" 2>&1 || status=1
grep -E "MESSAGE|test cases|seed [0-9]+ failed|replay" "${out}/simulation.log" \
  | sed 's|^.*MESSAGE: ||' > "${out}/simulation.txt" || true
rm -f "${out}/simulation.log"
cat "${out}/simulation.txt"
echo "== disk modes: ${disk_cycles} cycles per file system"
disk_status=0
bash tests/stress/disk_modes.sh "${build_dir}/tests/crash_loop" "${disk_cycles}" "${out}" \
  > "${out}/disk_modes.log" 2>&1 || disk_status=$?
tail -3 "${out}/disk_modes.log"
if ((disk_status != 0 && disk_status != 77)); then
  status=1
fi

{
  echo "# Reliability report"
  echo
  echo "Written by \`scripts/reliability.sh --cycles ${cycles} --trials ${trials}" \
    "--disk-cycles ${disk_cycles} --seeds ${seeds}\` (seed ${seed}), started ${started}, on" \
    "$(nproc) cores ($(uname -r)). Result: $([[ ${status} == 0 ]] && echo passed || echo FAILED)."
  echo
  echo "## Blackbox crash loop (tests/stress/crash_loop.cpp)"
  echo
  echo '```'
  cat "${out}/crash_loop.txt" 2>/dev/null || echo "(no report)"
  echo '```'
  echo
  echo "## Deterministic simulation (crash_tests, case \"simulation\")"
  echo
  echo '```'
  cat "${out}/simulation.txt" 2>/dev/null || echo "(no report)"
  echo '```'
  echo
  echo "## Corruption campaign (tests/stress/corruption.cpp)"
  echo
  echo "Outcome columns: unchanged, older (a consistent earlier version), error (returned), silent."
  echo
  echo '```'
  cat "${out}/corruption.txt" 2>/dev/null || echo "(no report)"
  echo '```'
  echo
  echo "## Nearly full and read-only file systems (tests/stress/disk_modes.sh)"
  echo
  if ((disk_status == 77)); then
    echo "Skipped: $(grep -m1 skipped "${out}/disk_modes.log" || true)"
  else
    for fs in tmpfs ext4; do
      if [[ -f "${out}/disk_modes_${fs}.txt" ]]; then
        echo "### ${fs}"
        echo
        echo '```'
        cat "${out}/disk_modes_${fs}.txt"
        echo '```'
        echo
      fi
    done
  fi
} > docs/reliability-report.md
echo "reliability.sh: report in docs/reliability-report.md ($([[ ${status} == 0 ]] && echo passed || echo FAILED))"
exit "${status}"
