#!/usr/bin/env bash
# Builds driftx against the LibTorch that ships inside python3's PyTorch (a CUDA wheel on a GPU machine,
# where Debian's CPU-only libtorch-dev is not what you want). One process per run: no Gloo (pip's
# LibTorch ships no Gloo headers), ranks as threads still work. fmt is used header-only.
#
#   scripts/build-pytorch.sh [BUILD_DIR]         default BUILD_DIR: build-pytorch
#   TORCH_PREFIX=...         LibTorch's CMake prefix (default: python3's torch.utils.cmake_prefix_path)
#   DRIFTX_TARGET=driftx     build one target only (default: all)
#   DRIFTX_DEPS_PREFIX=DIR   a /usr-like tree with the header libraries (CLI11, nlohmann-json, stb, fmt,
#                            GoogleTest, OpenSSL and zlib headers) where they are not installed system-wide
#
# Then: BUILD_DIR/driftx train --device cuda ...; BUILD_DIR/driftx_tests --gtest_filter='*OnCuda*'.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-pytorch}
torch_prefix=${TORCH_PREFIX:-$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')}
prefix="$torch_prefix"
extra=()
if [ -n "${DRIFTX_DEPS_PREFIX:-}" ]; then
  d=$(cd "$DRIFTX_DEPS_PREFIX" && pwd)
  lib="$d/lib/x86_64-linux-gnu"
  prefix="$prefix;$d"
  extra+=(-Dfmt_DIR="$lib/cmake/fmt" -DGTest_DIR="$lib/cmake/GTest" -Dnlohmann_json_DIR="$d/share/cmake/nlohmann_json"
          -DCLI11_DIR="$d/share/cmake/CLI11" -DOPENSSL_INCLUDE_DIR="$d/include" -DOPENSSL_CRYPTO_LIBRARY="$lib/libcrypto.so"
          -DOPENSSL_SSL_LIBRARY="$lib/libssl.so" -DZLIB_INCLUDE_DIR="$d/include" -DZLIB_LIBRARY="$lib/libz.so"
          -DSTB_INCLUDE_DIR="$d/include/stb")
fi
generator=(-G "Unix Makefiles")
command -v ninja >/dev/null 2>&1 && generator=(-G Ninja)
cmake -S . -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$prefix" \
  -DDRIFTX_WITH_GLOO=OFF -DDRIFTX_FMT_HEADER_ONLY=ON -DDRIFTX_BUILD_MICROBENCH=OFF "${extra[@]}"
# Keep going past a failing file: a build against another LibTorch reports every incompatibility at once.
keep_going=(); [ "${generator[1]}" = Ninja ] && keep_going=(-- -k 0)
target=(); [ -n "${DRIFTX_TARGET:-}" ] && target=(--target "$DRIFTX_TARGET")
cmake --build "$build" -j "$(nproc)" "${target[@]}" "${keep_going[@]}"
