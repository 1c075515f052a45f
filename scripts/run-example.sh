#!/usr/bin/env bash
# The main job: builds the examples and stores and reads real data in a local directory.
# Installs missing Debian packages first.
#
# Usage: scripts/run-example.sh [directory=./eloqstore-data]
set -euo pipefail
cd "$(dirname "$0")/.."
data_dir=${1:-./eloqstore-data}

bash scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "${JOBS:-2}" --target quickstart
./build/examples/quickstart "${data_dir}"
