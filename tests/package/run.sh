#!/usr/bin/env bash
# The ways a user consumes eloqstore, each built and run against a real store:
#   1. find_package(eloqstore CONFIG REQUIRED) against an install prefix (test_package/, the
#      project Conan's test_package builds; ELOQSTORE_MEASURE_COMPILE=1 times its compiled-store
#      and headers-only builds at -O2);
#   2. pkg-config (eloqstore-options.pc) with a plain compiler command;
#   3. add_subdirectory without a build type: eloqstore leaves it unset and installs nothing;
# and the syntax of the Conan recipe and the vcpkg port.
#
# Usage: tests/package/run.sh BUILD_DIR   (a configured and built eloqstore build tree)
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "$1" && pwd)
work=$(mktemp -d "${build}/package-test.XXXXXX")
trap 'rm -rf "${work}"' EXIT
cxx=${CXX:-c++}

# The library directory the build installs to (lib, lib64, lib/<arch>).
libdir=$(sed -n 's/^CMAKE_INSTALL_LIBDIR:PATH=//p' "${build}/CMakeCache.txt")
libdir=${libdir:-lib}

echo "== install to ${work}/prefix"
cmake --install "${build}" --prefix "${work}/prefix" >/dev/null
for f in "${libdir}/cmake/eloqstore/eloqstoreConfig.cmake" \
         "${libdir}/cmake/eloqstore/eloqstoreConfigVersion.cmake" "${libdir}/pkgconfig/eloqstore.pc" \
         include/eloqstore/eloqstore.hpp share/doc/eloqstore/LICENSE; do
  test -f "${work}/prefix/${f}" || { echo "missing from the install: ${f}"; exit 1; }
done
find "${work}/prefix" -name 'libeloqstore_*.a' | grep -q . || { echo "no libraries installed"; exit 1; }

# The consumers build at -O0 (what is tested is how they find and link the package); with
# ELOQSTORE_MEASURE_COMPILE=1 at -O2, the compiled store's consumer beside the headers-only
# one, timed (the README's figures).
if [[ "${ELOQSTORE_MEASURE_COMPILE:-0}" == 1 ]]; then
  consumer_type=Release
  consumers=(consumer consumer_headers)
else
  consumer_type=Debug
  consumers=(consumer)
fi
echo "== find_package consumers (${consumer_type}; compile time of consumer.cpp, one job each)"
cmake -S "${src}/test_package" -B "${work}/fp" -DCMAKE_BUILD_TYPE="${consumer_type}" \
  -DCMAKE_PREFIX_PATH="${work}/prefix" >/dev/null
for target in "${consumers[@]}"; do
  start=$(date +%s%N)
  cmake --build "${work}/fp" --target "${target}" -j 1 >/dev/null
  tenths=$((($(date +%s%N) - start) / 100000000))
  echo "${target}: built in $((tenths / 10)).$((tenths % 10)) s"
  "${work}/fp/${target}" "${work}/store-fp-${target}"
done

echo "== version file: a newer minor version is refused, this one accepted"
cat > "${work}/version.cmake" <<CMAKE
set(PACKAGE_FIND_VERSION "\${want}")
string(REPLACE "." ";" parts "\${want}")
list(GET parts 0 PACKAGE_FIND_VERSION_MAJOR)
list(GET parts 1 PACKAGE_FIND_VERSION_MINOR)
list(GET parts 2 PACKAGE_FIND_VERSION_PATCH)
set(PACKAGE_FIND_VERSION_COUNT 3)
set(CMAKE_SIZEOF_VOID_P 8)
include("${work}/prefix/${libdir}/cmake/eloqstore/eloqstoreConfigVersion.cmake")
message("\${PACKAGE_VERSION_COMPATIBLE}")
CMAKE
version=$(sed -n 's/^Version: //p' "${work}/prefix/${libdir}/pkgconfig/eloqstore.pc")
[[ $(cmake -Dwant="${version}" -P "${work}/version.cmake" 2>&1) == TRUE ]]
IFS=. read -r major minor _ <<<"${version}"
[[ $(cmake -Dwant="${major}.$((minor + 1)).0" -P "${work}/version.cmake" 2>&1) == FALSE ]]

echo "== pkg-config consumer"
export PKG_CONFIG_PATH="${work}/prefix/${libdir}/pkgconfig${PKG_CONFIG_PATH:+:${PKG_CONFIG_PATH}}"
# shellcheck disable=SC2046  # word splitting of the flags is intended
"${cxx}" -std=c++20 -O0 "${src}/test_package/consumer.cpp" -o "${work}/pc-consumer" \
  $(pkg-config --cflags --libs eloqstore-options)
"${work}/pc-consumer" "${work}/store-pc"

echo "== C consumer through pkg-config (eloqstore-c, a shared library)"
# shellcheck disable=SC2046
"${CC:-cc}" -std=c11 -Wall -Wextra "${src}/tests/c/c_api_test.c" -o "${work}/c-consumer" \
  $(pkg-config --cflags --libs eloqstore-c)
LD_LIBRARY_PATH="$(pkg-config --variable=libdir eloqstore-c)" "${work}/c-consumer" "$(mktemp -d "${work}/c-store.XXXXXX")"
nm -D --defined-only "$(pkg-config --variable=libdir eloqstore-c)/libeloqstore_c.so" |
  awk '$2 == "T" && $3 !~ /^eloqstore_/ { bad = 1; print "exported: " $3 } END { exit bad }'

echo "== add_subdirectory consumer (no build type)"
cmake -S "${src}/tests/package/subdir" -B "${work}/sub" -DELOQSTORE_SOURCE_DIR="${src}" >/dev/null
grep -q '^CMAKE_BUILD_TYPE:STRING=$' "${work}/sub/CMakeCache.txt" ||
  { echo "the consumer's build type was set"; exit 1; }
cmake --build "${work}/sub" -j "${JOBS:-2}" >/dev/null
"${work}/sub/consumer" "${work}/store-sub"
cmake --install "${work}/sub" --prefix "${work}/sub-prefix" >/dev/null
if [[ -e "${work}/sub-prefix/include/eloqstore" ]] || find "${work}/sub-prefix" -name '*eloqstore*' | grep -q .; then
  echo "the subproject installed its files with the consumer"; exit 1
fi

echo "== recipes"
python3 -c 'import ast, sys; [ast.parse(open(f).read(), f) for f in sys.argv[1:]]' \
  "${src}/conanfile.py" "${src}/test_package/conanfile.py"
python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); assert d["name"] == "eloqstore", d' \
  "${src}/ports/eloqstore/vcpkg.json"
cmake -P "${src}/tests/package/check-recipes.cmake" >/dev/null
grep -q "version = \"${version}\"" "${src}/conanfile.py" || { echo "conanfile.py version differs"; exit 1; }
grep -q "\"version\": \"${version}\"" "${src}/ports/eloqstore/vcpkg.json" ||
  { echo "vcpkg.json version differs"; exit 1; }
echo "package tests passed"
