#!/usr/bin/env bash
# Fuzzes every parser (docs/fuzzing.md): builds the libFuzzer targets of fuzz/ with clang, ASan and UBSan
# in build-fuzz/, then runs each for SECONDS (default 30) on its committed seed corpus fuzz/corpus/<t>/.
#   scripts/fuzz.sh [SECONDS] [TARGET...]     targets: npy idx checkpoint summary_cache train_config
#                                             torchscript_features (default: all)
# New inputs go to build-fuzz/corpus/<t>/ (the committed corpus is left alone), findings to
# build-fuzz/artifacts/<t>/, each target's log to build-fuzz/logs/<t>.log. Exit status 1 when any target
# found a crash, a sanitizer report or a broken contract. DRIFTX_SKIP_SETUP=1 skips scripts/setup.sh.
# Reproduce a finding: build-fuzz/fuzz/fuzz_<t> build-fuzz/artifacts/<t>/crash-...
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-30}
[ $# -gt 0 ] && shift
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(npy idx checkpoint summary_cache train_config torchscript_features)

[ -n "${DRIFTX_SKIP_SETUP:-}" ] || DRIFTX_SKIP_BUILD=1 scripts/setup.sh
command -v clang++ >/dev/null || { echo "fuzz: clang++ not found (scripts/setup.sh installs clang)" >&2; exit 1; }

t0=$(date +%s)
if [ ! -f build-fuzz/build.ninja ]; then
  cmake -S . -B build-fuzz -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -gline-tables-only" \
    -DDRIFTX_BUILD_FUZZ=ON -DDRIFTX_BUILD_TESTS=OFF -DDRIFTX_BUILD_MICROBENCH=OFF >/dev/null
fi
cmake --build build-fuzz -j "$(nproc)" --target $(printf 'fuzz_%s ' "${targets[@]}")
echo "fuzz: built in $(( $(date +%s) - t0 )) s"

# Each target runs in libFuzzer's fork mode (one child process at a time), so that the targets that
# hand files to LibTorch's archive reader (checkpoint, summary_cache, torchscript_features) can go on
# past an input on which LibTorch itself asks for gigabytes: its unpickler trusts the sizes inside a
# damaged archive (docs/fuzzing.md). There -ignore_ooms=1 counts such inputs instead of stopping; in
# driftx's own parsers an out-of-memory stops the run like any other finding. UBSan halts on its first
# report and LibTorch's own leaks are suppressed (fuzz/fuzz_support.cpp).
failed=()
mkdir -p build-fuzz/logs
printf '%-22s %10s %8s %6s %10s  %s\n' target executions coverage units oom/t/crash result
for t in "${targets[@]}"; do
  rm -rf "build-fuzz/artifacts/$t"  # this run's findings only
  mkdir -p "build-fuzz/corpus/$t" "build-fuzz/artifacts/$t"
  log="build-fuzz/logs/$t.log"
  ignore_ooms=0
  case "$t" in checkpoint|summary_cache|torchscript_features) ignore_ooms=1 ;; esac
  rc=0
  "build-fuzz/fuzz/fuzz_$t" -fork=1 -ignore_ooms=$ignore_ooms -ignore_timeouts=0 -max_total_time="$secs" -timeout=30 \
    -rss_limit_mb=3072 -malloc_limit_mb=2048 -artifact_prefix="build-fuzz/artifacts/$t/" \
    "build-fuzz/corpus/$t" "fuzz/corpus/$t" >"$log" 2>&1 || rc=$?
  last=$(grep -a -E '^#[0-9]+: cov:' "$log" | tail -1)
  execs=$(sed -E 's/^#([0-9]+):.*/\1/' <<<"$last")
  cov=$(grep -ao 'cov: [0-9]*' <<<"$last" | cut -d' ' -f2)
  otc=$(grep -ao 'oom/timeout/crash: [0-9/]*' <<<"$last" | cut -d' ' -f2)
  units=$(find "build-fuzz/corpus/$t" "fuzz/corpus/$t" -type f | wc -l)
  result=ok
  if [ "$rc" -ne 0 ] || ls "build-fuzz/artifacts/$t" | grep -q '^crash-\|^leak-\|^timeout-'; then
    result="FAILED (rc $rc, see $log)"
    failed+=("$t")
  fi
  printf '%-22s %10s %8s %6s %10s  %s\n' "$t" "${execs:-?}" "${cov:-?}" "$units" "${otc:-?}" "$result"
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: findings in ${failed[*]}: inputs in build-fuzz/artifacts/" >&2
  for t in "${failed[@]}"; do grep -a -m3 -E 'FINDING|ERROR: |runtime error' "build-fuzz/logs/$t.log" >&2 || true; done
  exit 1
fi
echo "fuzz: all ${#targets[@]} targets clean after ${secs} s each"
