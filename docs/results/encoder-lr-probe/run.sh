#!/usr/bin/env bash
# Learning-rate probe in encoder space (MNIST, all ten encoder groups, 1000 steps, seed 0): each method at
# half, its default and twice its learning rate; FID of 5000 EMA samples.
# Usage: docs/results/encoder-lr-probe/run.sh [DRIFTX]
cd "$(dirname "$0")/../../.."
B=${1:-build/driftx}
mkdir -p runs/lrsearch
for spec in driftxpress:4e-3 driftxpress:2e-3 driftxpress:8e-3 standard:8e-3 standard:4e-3 standard:1.6e-2; do
  m=${spec%%:*}; lr=${spec#*:}; d=runs/lrsearch/$m-$lr
  flags=""; [ $m = driftxpress ] && flags="--vector-maps true --cache-dir runs/lrsearch/cache"
  $B train --dataset mnist --method $m --features encoder:mnist $flags --lr $lr --steps 1000 --seed 0 \
    --sample-every 0 --out $d > $d.log 2>&1 || { echo "train failed $d"; continue; }
  $B eval --ckpt $d/checkpoint.pt --ema --n 5000 --report $d/eval.json >> $d.log 2>&1 || { echo "eval failed $d"; continue; }
  echo "$(date +%T) $m lr $lr: $(python3 scripts/eval-line.py $d/eval.json)"
done
