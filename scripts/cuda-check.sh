#!/usr/bin/env bash
# The GPU checks of issue 12 in one run (BENCHMARKS.md, "GPU"): build against python3's CUDA PyTorch
# (scripts/build-pytorch.sh), run the device tests and the field suites, time the training step of both
# methods on the GPU (pixel space; encoder space with vector maps and with class shards, both through the
# batched shard_blocks path), then train DriftXpress on the GPU for a step budget and measure its FID.
#   scripts/cuda-check.sh OUT_DIR     env as for scripts/build-pytorch.sh; DRIFTX_DATA_DIR if data/ is elsewhere
#   DRIFTX_CHECK_BUDGET_S=540         no stage starts past this many seconds; a running one is cut there
#   DRIFTX_CHECK_TRAIN_STEPS=2000     the GPU training's step budget (the CPU probe's, BENCHMARKS "Vector maps")
# OUT_DIR receives at most 8 files (the device tool's limit): tests.log, three train-step JSON, gpu-train.tar.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: scripts/cuda-check.sh OUT_DIR}
budget=${DRIFTX_CHECK_BUDGET_S:-540}
steps=${DRIFTX_CHECK_TRAIN_STEPS:-2000}
mkdir -p "$out"
t0=$(date +%s)
left() { echo $(( budget - ($(date +%s) - t0) )); }
# stage NAME MIN_SECONDS CMD...: runs CMD under what is left of the budget, or says why it did not.
stage() {
  local name=$1 need=$2; shift 2
  if [ "$(left)" -lt "$need" ]; then echo "== $name: skipped, $(left) s of the budget left (needs ~$need)"; return 1; fi
  local s=$(date +%s)
  timeout "$(left)" bash -c '"$@"' "$name" "$@"; local rc=$?  # bash -c: CMD may be a function below
  echo "== $name: exit $rc after $(( $(date +%s) - s )) s (total $(( $(date +%s) - t0 )) s)"
  return $rc
}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
stage build 200 scripts/build-pytorch.sh build-cuda > "$out/build.log" 2>&1 \
  || { grep -E "error|Error|==" "$out/build.log" | sort -u | head -60; exit 1; }
tail -1 "$out/build.log"; rm -f "$out/build.log"
failed=0
stage tests 60 build-cuda/driftx_tests \
  --gtest_filter='*OnCuda*:*ProjectedStability*:*ProjectedVsReference*:*StandardField*:ProjectedField.*' \
  --gtest_brief=1 > "$out/tests.log" 2>&1 || failed=1
tail -4 "$out/tests.log"
bench() {  # bench NAME ARGS...: one bench train-step on the GPU, JSON to OUT, the table to stdout
  set -o pipefail  # the stage's exit status is driftx's, not tail's
  local name=$1; shift
  build-cuda/driftx bench train-step --device cuda --report "$out/train-step-cuda-$name.json" "$@" 2>&1 \
    | grep -v "^step\|^\[" | tail -7
}
export -f bench; export out
# Pixel space, the first run's shape (a regression check of the figures in BENCHMARKS.md "GPU").
stage pixels 40 bench pixels --gen-per-class 25 --pos-per-class 64 --steps 10 --out runs/bench-cuda-px
# Encoder space (issue 11): all ten encoder groups as per-location fields, 256 positives per class;
# DriftXpress with a map per (class, vector) through the batched shard_blocks query (BENCHMARKS "Third GPU run").
stage encoder-vector-maps 120 bench encoder-vmaps --features encoder:mnist --pos-per-class 256 --vector-maps true \
  --steps 10 --out runs/bench-cuda-enc
# FID of a GPU-trained model: the CPU probe's configuration (2000 steps, seed 0), one rank on the GPU;
# the summaries are the bench's (same keys).
train_out=runs/gpu-train/vmaps
rm -rf "$train_out"  # a warm machine keeps runs/: never pack an earlier call's eval or samples
stage train-on-gpu 150 build-cuda/driftx train --device cuda --dataset mnist --features encoder:mnist --vector-maps true \
  --steps "$steps" --seed 0 --sample-every 0 --out "$train_out" --cache-dir runs/bench-cuda-enc/cache > "$out/train.log" 2>&1 \
  && stage eval 30 build-cuda/driftx eval --ckpt "$train_out/checkpoint.pt" --ema --n 5000 \
       --report "$train_out/eval.json" >> "$out/train.log" 2>&1
grep -E "^==|^step [0-9]*(000|500)/|^training|^stopped|^memory|^FID|^precision|^recall|^class acc" "$out/train.log"
cp "$out/train.log" "$train_out/" 2>/dev/null
tar -cf "$out/gpu-train.tar" -C "$train_out" config.json eval.json samples/final_ema.png train.log
rm -f "$out/train.log"
# Class shards through the same batched path (the per-shard loop before it: 101 ms in the second run).
stage encoder-shards10 90 bench encoder-shards10 --features encoder:mnist --pos-per-class 256 --landmark-shards 10 \
  --steps 10 --out runs/bench-cuda-enc
echo "total: $(( $(date +%s) - t0 )) s$([ $failed = 1 ] && echo '; TESTS FAILED (tests.log)')"
exit $failed
