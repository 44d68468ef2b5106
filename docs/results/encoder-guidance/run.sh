#!/usr/bin/env bash
# Classifier-free guidance in encoder space (MNIST, all ten encoder groups, standard method: DriftXpress
# does not support --guidance with per-location groups), 20 minutes, seed 0; the final EMA generator scored
# at several guidance scales (5000 samples each, FID / precision / recall / class accuracy).
# Usage: docs/results/encoder-guidance/run.sh [DRIFTX] [extra train flags, e.g. a search winner's --lr]
set -euo pipefail
B=${1:-build/driftx}; shift || true
d=runs/encguid; mkdir -p runs
$B train --dataset mnist --method standard --features encoder:mnist --guidance --time-budget 20m --seed 0 \
  --out $d "$@" > $d.log 2>&1
for a in 1 1.5 2 3; do
  $B eval --ckpt $d/checkpoint.pt --ema --n 5000 --alpha $a --report $d/eval-alpha$a.json >> $d.log 2>&1
  echo "alpha $a: $(python3 -c "import json; s=json.load(open('$d/eval-alpha$a.json'))['samples']; print('FID %.2f precision %.3f recall %.3f accuracy %.4f' % (s['fid'], s['precision'], s['recall'], s['class_accuracy']))")"
done
$B sample --ckpt $d/checkpoint.pt --ema --n 100 --alpha 2 --out $d/samples-alpha2.png >> $d.log 2>&1
