#!/usr/bin/env bash
# The GPU checks of issue 12 in one run (BENCHMARKS.md, "GPU"): build against python3's CUDA PyTorch
# (scripts/build-pytorch.sh), run the device tests and a few field suites, then time the training
# step of both methods on the GPU, in pixel space and in encoder space (float32 and bf16 products).
#   scripts/cuda-check.sh OUT_DIR          env as for scripts/build-pytorch.sh; DRIFTX_DATA_DIR if data/ is elsewhere
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: scripts/cuda-check.sh OUT_DIR}
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
t0=$(date +%s)
scripts/build-pytorch.sh build-cuda > "$out/build.log" 2>&1 || { grep -E "error" "$out/build.log" | sort -u | head -60; exit 1; }
echo "build: $(( $(date +%s) - t0 )) s"
build-cuda/driftx_tests --gtest_filter='*OnCuda*:*ProjectedStability*:*ProjectedVsReference*:*StandardField*:ProjectedField.*' \
  --gtest_brief=1 2>&1 | tee "$out/tests.log" | tail -15
# Pixel space, the first run's shape (a regression check of the figures in BENCHMARKS.md "GPU").
build-cuda/driftx bench train-step --device cuda --gen-per-class 25 --pos-per-class 64 --steps 20 \
  --out runs/bench-cuda-px --report "$out/train-step-cuda-pixels.json" 2>&1 | tail -5
# Encoder space (issue 11): all ten encoder groups as per-location fields, 256 positives per class,
# DriftXpress with one landmark shard per class; float32 then bf16 products (the summary cache is reused).
for dtype in float32 bf16; do
  timeout $([ $dtype = float32 ] && echo 330 || echo 150) build-cuda/driftx bench train-step --device cuda --features encoder:mnist \
    --pos-per-class 256 --landmark-shards 10 --matmul-dtype $dtype --steps 10 --out runs/bench-cuda-enc \
    --report "$out/train-step-cuda-encoder-$dtype.json" 2>&1 | grep -v "^step\|^\[" | tail -6
done
echo "total: $(( $(date +%s) - t0 )) s"
