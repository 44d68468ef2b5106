#!/usr/bin/env bash
# The main job: set up (idempotent), build, train the default DriftXpress MNIST model, write samples.
#   scripts/run.sh [extra driftx train flags]     e.g. scripts/run.sh --time-budget 20m
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
out=runs/mnist-driftxpress
build/driftx train --dataset mnist --method driftxpress --time-budget 5m --out "$out" "$@"
build/driftx sample --ckpt "$out/checkpoint.pt" --ema --n 100 --out "$out/samples.png"
echo "samples: $out/samples.png   (per-step log: $out/log.jsonl, config: $out/config.json)"
