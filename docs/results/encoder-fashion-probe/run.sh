#!/usr/bin/env bash
# Fashion-MNIST in encoder space, a step budget (2000), seed 0: DriftXpress with vector maps vs standard.
cd "$(dirname "$0")/../../.."
for m in driftxpress standard; do
  d=runs/fvm/$m
  flags=""; [ $m = driftxpress ] && flags="--vector-maps true"
  build/driftx train --dataset fashion-mnist --method $m --features encoder:fashion-mnist $flags --steps 2000 --seed 0 \
    --sample-every 0 --out $d > $d.log 2>&1 || { echo "train failed $d"; continue; }
  build/driftx eval --ckpt $d/checkpoint.pt --ema --n 5000 --report $d/eval.json >> $d.log 2>&1 || echo "eval failed $d"
  echo "$(date +%T) done $d"
done
