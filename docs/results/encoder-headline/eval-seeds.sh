#!/usr/bin/env bash
# Precision / recall and class accuracy of the final EMA generator of every seed of the encoder-space
# 3-seed comparisons (their compare.json holds FID and accuracy only: those runs predate the compare
# report's precision / recall). 5,000 samples, the same real test subset as the comparisons' FID.
# Usage (from the repository root): docs/results/encoder-headline/eval-seeds.sh [driftx binary]
set -euo pipefail
bin=${1:-build/driftx}
out=docs/results/encoder-headline/eval
mkdir -p "$out"
run() {  # name checkpoint
  "$bin" eval --ckpt "$2" --ema --n 5000 --report "$out/$1.json" > /dev/null
  python3 scripts/eval-line.py "$out/$1.json"
}
for k in 0 1 2; do
  run mnist-standard-seed$k runs/enc-seeds/compare/standard/seed-$k/checkpoint.pt
  run mnist-driftxpress-seed$k runs/enc-vmaps/compare/driftxpress/seed-$k/checkpoint.pt
  run fashion-mnist-standard-seed$k runs/fenc3/compare/standard/seed-$k/checkpoint.pt
  run fashion-mnist-driftxpress-seed$k runs/fenc3/compare/driftxpress/seed-$k/checkpoint.pt
done
