#!/usr/bin/env bash
# Sets up (idempotent), builds, and runs the whole test suite through CTest.
#   scripts/test.sh              Release build in build/
#   scripts/test.sh --sanitize   the same suite built with AddressSanitizer + UndefinedBehaviorSanitizer
#                                (gcc, -O1) in build-asan/; a sanitizer report fails the test that made it
#                                (defaults in fuzz/sanitizer_defaults.cpp; BENCHMARKS.md has the last run)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--sanitize" ]; then
  DRIFTX_SKIP_BUILD=1 scripts/setup.sh
  t0=$(date +%s)
  cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g1" \
    -DDRIFTX_SANITIZE=ON -DDRIFTX_BUILD_MICROBENCH=OFF >/dev/null
  cmake --build build-asan -j "$(nproc)"
  echo "sanitize: built in $(( $(date +%s) - t0 )) s"
  exec ctest --test-dir build-asan --output-on-failure -j "$(nproc)" --timeout 1800
fi
scripts/setup.sh
ctest --test-dir build --output-on-failure -j "$(nproc)" --timeout 900
