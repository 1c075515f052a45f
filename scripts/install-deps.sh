#!/usr/bin/env bash
# Installs the Debian 12 packages eloqstore needs, only those that are missing.
# Usage: scripts/install-deps.sh [--bench]
#   --bench  also installs what only the benchmarks use: the suite's peers and its JSON library
#            (RocksDB, LMDB, nlohmann-json), Google Benchmark (format_bench), fio, gnuplot.
# Idempotent: a second run installs nothing and does not touch the network.
set -euo pipefail

packages=(
  build-essential cmake pkg-config
  liburing-dev libboost-dev libboost-context-dev librange-v3-dev doctest-dev
  libxxhash-dev libzstd-dev libcurl4-openssl-dev libinih-dev libcli11-dev
  # The fuzz build (scripts/test.sh, tests/fuzz): clang with libFuzzer and its sanitizers.
  clang libclang-rt-14-dev
)
if [[ "${1:-}" == "--bench" ]]; then
  packages+=(librocksdb-dev liblmdb-dev libbenchmark-dev nlohmann-json3-dev fio gnuplot-nox)
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} == 0)); then
  exit 0
fi

sudo_cmd=()
if [[ $(id -u) -ne 0 ]]; then
  sudo_cmd=(sudo)
fi
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
