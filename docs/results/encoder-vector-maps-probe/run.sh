#!/usr/bin/env bash
# Issue 11 hypothesis: DriftXpress in encoder space, class shards (100 landmarks per class shared by a
# group's locations) vs vector maps (100 landmarks per (class, location)); a step budget (fair on a busy machine).
cd /work/main
for v in shards vmaps; do
  d=runs/vmaps/$v
  [ -f $d/eval.json ] && continue
  flags="--landmark-shards 10"; [ $v = vmaps ] && flags="--vector-maps true"
  runs/vmaps/driftx train --dataset mnist --features encoder:mnist $flags --steps ${STEPS:-2000} --seed 0 \
    --sample-every 0 --out $d > $d.log 2>&1 || { echo "train failed $d"; continue; }
  runs/vmaps/driftx eval --ckpt $d/checkpoint.pt --ema --n 5000 --report $d/eval.json >> $d.log 2>&1 || echo "eval failed $d"
  echo "$(date +%T) done $d"
done
