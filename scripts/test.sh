#!/usr/bin/env bash
# Builds eloqstore and runs its tests: the default build, then the ASan+UBSan build of all
# tests. Installs missing Debian packages first (scripts/install-deps.sh), and the S3 servers
# the object-store tests run against (scripts/s3-server.sh).
#
# Usage: scripts/test.sh [--quick]
#   --quick   skip the sanitizer builds
# Environment: JOBS (default 2), BUILD_DIR (default build), SAN_BUILD_DIR (default build-asan).
set -euo pipefail
cd "$(dirname "$0")/.."

jobs=${JOBS:-2}
build_dir=${BUILD_DIR:-build}
san_dir=${SAN_BUILD_DIR:-build-asan}
tsan_dir=${TSAN_BUILD_DIR:-build-tsan}

# (Not --bench: the benchmarks' peers are for scripts/bench-suite.sh; without them the
# suite and format_bench are left out of the build, with a message.)
bash scripts/install-deps.sh
# The S3 servers the object-store tests start (ctest fixtures, label s3): Ceph RGW from
# Debian's packages, s3rver from npm.
bash scripts/s3-server.sh install
S3_SERVER=s3rver bash scripts/s3-server.sh install

echo "== default build (${build_dir})"
cmake -S . -B "${build_dir}" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "${build_dir}" -j "${jobs}"
ctest --test-dir "${build_dir}" --output-on-failure -j "${jobs}" -LE concurrency

if [[ "${1:-}" != "--quick" ]]; then
  echo "== ASan + UBSan build of the tests (${san_dir})"
  # (The tool is left to the default build: its code is the C++ API's, which the engine
  # tests run here.)
  cmake -S . -B "${san_dir}" -DCMAKE_BUILD_TYPE=Debug -DELOQSTORE_SANITIZE=ON \
    -DELOQSTORE_BUILD_BENCH=OFF -DELOQSTORE_BUILD_EXAMPLES=OFF -DELOQSTORE_BUILD_TOOLS=OFF >/dev/null
  cmake --build "${san_dir}" -j "${jobs}"
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
    ctest --test-dir "${san_dir}" --output-on-failure -j "${jobs}" -LE concurrency

  echo "== ThreadSanitizer build of the concurrency tests (${tsan_dir})"
  cmake -S . -B "${tsan_dir}" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DELOQSTORE_SANITIZE_THREAD=ON \
    -DELOQSTORE_BUILD_BENCH=OFF -DELOQSTORE_BUILD_EXAMPLES=OFF -DELOQSTORE_BUILD_TOOLS=OFF >/dev/null
  cmake --build "${tsan_dir}" -j "${jobs}" --target engine_tests crash_tests
  TSAN_OPTIONS=halt_on_error=1 ctest --test-dir "${tsan_dir}" --output-on-failure -L concurrency
fi
