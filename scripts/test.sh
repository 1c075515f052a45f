#!/usr/bin/env bash
# Builds eloqstore and runs its tests: the default build, then the ASan+UBSan build of all
# tests, the ThreadSanitizer build of the concurrency tests and the libFuzzer targets (with
# clang, each fuzzed for FUZZ_SECONDS). Installs missing Debian packages first
# (scripts/install-deps.sh), and the S3 servers the object-store tests run against
# (scripts/s3-server.sh). The builds keep line tables only (-g1): a quarter less compile time
# than full debug information, and sanitizer reports still name files and lines.
#
# Usage: scripts/test.sh [--quick]
#   --quick   skip the sanitizer and fuzz builds
# Environment: JOBS (default 2), BUILD_DIR (default build), SAN_BUILD_DIR (default build-asan),
#   TSAN_BUILD_DIR (default build-tsan), FUZZ_BUILD_DIR (default build-fuzz), FUZZ_SECONDS
#   (default 20).
set -euo pipefail
cd "$(dirname "$0")/.."

jobs=${JOBS:-2}
build_dir=${BUILD_DIR:-build}
san_dir=${SAN_BUILD_DIR:-build-asan}
tsan_dir=${TSAN_BUILD_DIR:-build-tsan}
fuzz_dir=${FUZZ_BUILD_DIR:-build-fuzz}
fuzz_seconds=${FUZZ_SECONDS:-20}

# (Not --bench: the benchmarks' peers are for scripts/bench-suite.sh; without them the
# suite and format_bench are left out of the build, with a message.)
bash scripts/install-deps.sh
# The S3 servers the object-store tests start (ctest fixtures, label s3): Ceph RGW from
# Debian's packages, s3rver from npm.
bash scripts/s3-server.sh install
S3_SERVER=s3rver bash scripts/s3-server.sh install

echo "== default build (${build_dir})"
cmake -S . -B "${build_dir}" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O2 -g1 -DNDEBUG" >/dev/null
cmake --build "${build_dir}" -j "${jobs}"
ctest --test-dir "${build_dir}" --output-on-failure -j "${jobs}" -LE concurrency

if [[ "${1:-}" != "--quick" ]]; then
  echo "== ASan + UBSan build of the tests (${san_dir})"
  # (The tool is left to the default build: its code is the C++ API's, which the engine
  # tests run here.)
  cmake -S . -B "${san_dir}" -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG="-g1" \
    -DELOQSTORE_SANITIZE=ON \
    -DELOQSTORE_BUILD_BENCH=OFF -DELOQSTORE_BUILD_EXAMPLES=OFF -DELOQSTORE_BUILD_TOOLS=OFF >/dev/null
  cmake --build "${san_dir}" -j "${jobs}"
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
    ctest --test-dir "${san_dir}" --output-on-failure -j "${jobs}" -LE concurrency

  echo "== ThreadSanitizer build of the concurrency tests (${tsan_dir})"
  cmake -S . -B "${tsan_dir}" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O2 -g1 -DNDEBUG" -DELOQSTORE_SANITIZE_THREAD=ON \
    -DELOQSTORE_BUILD_BENCH=OFF -DELOQSTORE_BUILD_EXAMPLES=OFF -DELOQSTORE_BUILD_TOOLS=OFF >/dev/null
  cmake --build "${tsan_dir}" -j "${jobs}" --target engine_tests crash_tests
  TSAN_OPTIONS=halt_on_error=1 ctest --test-dir "${tsan_dir}" --output-on-failure -L concurrency

  echo "== libFuzzer targets, ${fuzz_seconds} s each (${fuzz_dir})"
  # Regression inputs first, then fuzzing from the seed corpus (tests/fuzz/run.sh).
  CC=clang CXX=clang++ cmake -S . -B "${fuzz_dir}" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1" -DELOQSTORE_FUZZ=ON \
    -DELOQSTORE_FUZZ_SECONDS="${fuzz_seconds}" -DELOQSTORE_INSTALL=OFF >/dev/null
  cmake --build "${fuzz_dir}" -j "${jobs}" --target fuzz_page fuzz_manifest fuzz_options \
    fuzz_requests fuzz_seeds
  ctest --test-dir "${fuzz_dir}" --output-on-failure -j "${jobs}" -L fuzz
fi
