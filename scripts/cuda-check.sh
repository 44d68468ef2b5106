#!/usr/bin/env bash
# The GPU checks of issue 12 in one run (BENCHMARKS.md, "GPU"): build against python3's CUDA PyTorch
# (scripts/build-pytorch.sh), run the device tests and a few field suites, then time the training
# step of both methods on the GPU (and on this machine's CPU threads for scale).
#   scripts/cuda-check.sh OUT_DIR          env as for scripts/build-pytorch.sh; DRIFTX_DATA_DIR if data/ is elsewhere
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: scripts/cuda-check.sh OUT_DIR}
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
t0=$(date +%s)
scripts/build-pytorch.sh build-cuda > "$out/build.log" 2>&1 || { grep -E "error" "$out/build.log" | sort -u | head -60; exit 1; }
echo "build: $(( $(date +%s) - t0 )) s"
build-cuda/driftx_tests --gtest_filter='*OnCuda*:*ProjectedStability*:*ProjectedVsReference*:*StandardField*' \
  --gtest_brief=1 2>&1 | tee "$out/tests.log" | tail -15
for size in "25 64" "100 256"; do
  set -- $size
  for dev in cuda cpu; do
    build-cuda/driftx bench train-step --device $dev --gen-per-class $1 --pos-per-class $2 --steps 20 \
      --out runs/bench-$dev-$1 --report "$out/train-step-$dev-$1.json" 2>&1 | tail -6
  done
done
echo "total: $(( $(date +%s) - t0 )) s"
