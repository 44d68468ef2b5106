#!/usr/bin/env bash
# Classifier-free guidance in encoder space (MNIST, all ten encoder groups, standard method: DriftXpress
# does not support --guidance with per-location groups), 20 minutes, seed 0; the final EMA generator scored
# at several guidance scales (5000 samples each, FID / precision / recall / class accuracy), and the
# unguided winners of the encoder-space search (runs/encsearch/compare, if present) scored the same way.
# Usage: docs/results/encoder-guidance/run.sh [DRIFTX] [extra train flags, e.g. --pos-per-class 64]
set -euo pipefail
cd "$(dirname "$0")/../../.."
B=${1:-build/driftx}; shift || true
d=runs/encguid; mkdir -p runs
$B train --dataset mnist --method standard --features encoder:mnist --guidance --time-budget 20m --seed 0 \
  --out $d "$@" > $d.log 2>&1
for a in 1 1.5 2 3; do
  $B eval --ckpt $d/checkpoint.pt --ema --n 5000 --alpha $a --report $d/eval-alpha$a.json >> $d.log 2>&1
done
for m in standard driftxpress; do
  [ -f runs/encsearch/compare/$m/checkpoint.pt ] || continue
  $B eval --ckpt runs/encsearch/compare/$m/checkpoint.pt --ema --n 5000 --report $d/eval-unguided-$m.json >> $d.log 2>&1
done
python3 scripts/eval-line.py $d/eval-*.json
for a in 1 2; do
  $B sample --ckpt $d/checkpoint.pt --ema --n 100 --alpha $a --out $d/samples-alpha$a.png >> $d.log 2>&1
done
