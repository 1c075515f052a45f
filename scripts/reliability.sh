#!/usr/bin/env bash
# The long forms of the reliability harnesses (issue 21), with a report: the blackbox crash
# loop (tests/stress/crash_loop.cpp), the corruption campaign (tests/stress/corruption.cpp)
# the crash loop on nearly full and read-only file systems (tests/stress/disk_modes.sh, root
# only), the deterministic simulation in local and cloud mode (crash_tests, cases
# "simulation", tests/store/simulation_test.cpp) and the libFuzzer
# targets (tests/fuzz, built with clang). CI runs short forms of each through ctest (labels
# crash and fuzz); this runs them for as long as asked and writes docs/reliability-report.md
# (the README links it) and the raw reports beside it. A part given 0 is skipped, and the
# report shows its raw report from the last run that made one.
#
# Usage: scripts/reliability.sh [--cycles N] [--trials N] [--disk-cycles N] [--seeds N]
#                               [--cloud-seeds N] [--fuzz-seconds N] [--out DIR]
#   --cycles N       crash-loop kill cycles (default 2000, about an hour here)
#   --trials N       corruption trials (default 2000)
#   --disk-cycles N  crash-loop cycles per file system in disk_modes.sh (default 100)
#   --seeds N        simulation seeds in local mode (default 100000, about 30 CPU-minutes)
#   --cloud-seeds N  simulation seeds in cloud mode (default 30000, about 10 CPU-minutes;
#                    the two run side by side)
#   --fuzz-seconds N seconds of fuzzing per target, two targets at a time (default 900)
#   --out DIR        where the reports go (default docs/reliability)
# Environment: BUILD_DIR (default build), FUZZ_BUILD_DIR (default build-fuzz), JOBS
#   (default 2), SEED (default: random, printed).
set -euo pipefail
cd "$(dirname "$0")/.."

build_dir=${BUILD_DIR:-build}
jobs=${JOBS:-2}
cycles=2000
trials=2000
disk_cycles=100
seeds=100000
cloud_seeds=30000
fuzz_seconds=900
fuzz_dir=${FUZZ_BUILD_DIR:-build-fuzz}
fuzz_targets=(page manifest options requests)
out=docs/reliability
while (($# > 0)); do
  case "$1" in
    --cycles) cycles=$2; shift 2 ;;
    --trials) trials=$2; shift 2 ;;
    --disk-cycles) disk_cycles=$2; shift 2 ;;
    --seeds) seeds=$2; shift 2 ;;
    --cloud-seeds) cloud_seeds=$2; shift 2 ;;
    --fuzz-seconds) fuzz_seconds=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    -h | --help) sed -n '2,23p' "$0"; exit 0 ;;
    *) echo "reliability.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
seed=${SEED:-$((RANDOM * 32768 + RANDOM + 1))}

bash scripts/install-deps.sh
# (Only what the parts asked for: a part given 0 builds nothing.)
targets=()
((cycles > 0 || disk_cycles > 0)) && targets+=(crash_loop)
((trials > 0)) && targets+=(corruption)
((seeds > 0 || cloud_seeds > 0)) && targets+=(crash_tests)
if ((${#targets[@]} > 0)); then
  cmake -S . -B "${build_dir}" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "${build_dir}" -j "${jobs}" --target "${targets[@]}"
fi
mkdir -p "${out}"

started=$(date -u +%FT%TZ)
status=0
if ((cycles > 0)); then
  echo "== crash loop: ${cycles} cycles, seed ${seed}"
  rm -f "${out}/crash_loop.txt"
  "${build_dir}/tests/crash_loop" run --cycles "${cycles}" --cycles-per-run 25 --seed "${seed}" \
    --report "${out}/crash_loop.txt" || status=1
fi
if ((trials > 0)); then
  echo "== corruption campaign: ${trials} trials"
  rm -f "${out}/corruption.txt"
  "${build_dir}/tests/corruption" --trials "${trials}" --seed "${seed}" \
    --report "${out}/corruption.txt" || status=1
fi
if ((seeds > 0 || cloud_seeds > 0)); then
  echo "== simulation: seeds 1..${seeds} in local mode, 1..${cloud_seeds} in cloud mode"
  # (Side by side, one process per mode; a mode given 0 keeps its last report.)
  simulate() {
    local mode=$1 n=$2 filter=$3
    local rc=0
    ELOQSTORE_SIM_SEEDS=${n} "${build_dir}/tests/crash_tests" -tc="${filter}" \
      > "${out}/simulation_${mode}.log" 2>&1 || rc=$?
    grep -E "MESSAGE|test cases|seed [0-9]+ failed|replay" "${out}/simulation_${mode}.log" \
      | sed 's|^.*MESSAGE: ||' > "${out}/simulation_${mode}.txt" || true
    rm -f "${out}/simulation_${mode}.log"
    return "${rc}"
  }
  pids=()
  trap 'kill "${pids[@]}" 2>/dev/null; exit 130' INT TERM
  if ((seeds > 0)); then
    simulate local "${seeds}" 'simulation: one seed*' &
    pids+=($!)
  fi
  if ((cloud_seeds > 0)); then
    simulate cloud "${cloud_seeds}" 'simulation: cloud mode*' &
    pids+=($!)
  fi
  for pid in "${pids[@]}"; do
    wait "${pid}" || status=1
  done
  trap - INT TERM
  cat "${out}"/simulation_*.txt
fi
disk_status=0
if ((disk_cycles > 0)); then
  echo "== disk modes: ${disk_cycles} cycles per file system"
  rm -f "${out}"/disk_modes_*.txt "${out}/disk_modes.log"
  bash tests/stress/disk_modes.sh "${build_dir}/tests/crash_loop" "${disk_cycles}" "${out}" \
    > "${out}/disk_modes.log" 2>&1 || disk_status=$?
  tail -3 "${out}/disk_modes.log"
  if ((disk_status != 0 && disk_status != 77)); then
    status=1
  fi
elif [[ -f "${out}/disk_modes.log" ]] && grep -q skipped "${out}/disk_modes.log"; then
  disk_status=77
fi
if ((fuzz_seconds > 0)); then
  echo "== fuzz targets: ${fuzz_seconds} s each, two at a time"
  CC=clang CXX=clang++ cmake -S . -B "${fuzz_dir}" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1" -DELOQSTORE_FUZZ=ON -DELOQSTORE_INSTALL=OFF \
    >/dev/null
  cmake --build "${fuzz_dir}" -j "${jobs}" \
    --target "${fuzz_targets[@]/#/fuzz_}" fuzz_seeds
  rm -rf "${fuzz_dir}/seeds" && "${fuzz_dir}/tests/fuzz/fuzz_seeds" "${fuzz_dir}/seeds"
  fuzz_one() {
    local t=$1
    # (The corpus of the last long run is kept: fuzzing goes on from it.)
    bash tests/fuzz/run.sh "${fuzz_dir}/tests/fuzz/fuzz_${t}" "${t}" "${fuzz_dir}/seeds/${t}" \
      "${fuzz_dir}/long/${t}" "${fuzz_seconds}" > "${out}/fuzz_${t}.txt" 2>&1
  }
  for ((i = 0; i < ${#fuzz_targets[@]}; i += 2)); do
    pids=()
    for t in "${fuzz_targets[@]:i:2}"; do
      fuzz_one "${t}" &
      pids+=($!)
    done
    for pid in "${pids[@]}"; do
      wait "${pid}" || status=1
    done
  done
  for t in "${fuzz_targets[@]}"; do
    echo "-- ${t}"
    tail -n 12 "${out}/fuzz_${t}.txt"
  done
fi

{
  echo "# Reliability report"
  echo
  echo "Written by \`scripts/reliability.sh --cycles ${cycles} --trials ${trials}" \
    "--disk-cycles ${disk_cycles} --seeds ${seeds} --cloud-seeds ${cloud_seeds}" \
    "--fuzz-seconds ${fuzz_seconds}\` (seed" \
    "${seed}), started ${started}, on" \
    "$(nproc) cores ($(uname -r)). Result: $([[ ${status} == 0 ]] && echo passed || echo FAILED)."
  echo "Parts given 0 were skipped in this run: their sections show the raw report of the last"
  echo "run that made one (each names its own figures)."
  echo
  echo "## Blackbox crash loop (tests/stress/crash_loop.cpp)"
  echo
  echo '```'
  cat "${out}/crash_loop.txt" 2>/dev/null || echo "(no report)"
  echo '```'
  echo
  echo "## Deterministic simulation (crash_tests, cases \"simulation\")"
  echo
  echo '```'
  cat "${out}/simulation_local.txt" 2>/dev/null || echo "(no report of local mode)"
  cat "${out}/simulation_cloud.txt" 2>/dev/null || echo "(no report of cloud mode)"
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
  echo
  echo "## Fuzzing (tests/fuzz, libFuzzer with ASan and UBSan)"
  echo
  echo "Each target starts from the corpus it grew in earlier long runs, the seed corpus"
  echo "(tests/fuzz/seeds.cpp, from the golden vectors) and its regression inputs."
  echo "Lines: executions, executions per second, peak memory, the corpus it ends with."
  echo
  for t in "${fuzz_targets[@]}"; do
    echo "### ${t}"
    echo
    echo '```'
    grep -E '^(== |stat::|corpus:|fuzz target|fuzz property)' "${out}/fuzz_${t}.txt" 2>/dev/null \
      || echo "(no report)"
    echo '```'
    echo
  done
} > docs/reliability-report.md
echo "reliability.sh: report in docs/reliability-report.md ($([[ ${status} == 0 ]] && echo passed || echo FAILED))"
exit "${status}"
