#!/usr/bin/env bash
# Rank ablation on images (issue 13, item 2): DriftXpress on MNIST with L landmarks per class (10 L per
# feature group, random_per_class), a fixed number of training steps per run (a step budget stays fair on
# a busy machine), several seeds, then FID / precision / recall / class accuracy of the EMA generator.
# Prints and writes OUT/summary.md (mean +- std over seeds per L), OUT/summary.json and the plot
# OUT/fid_vs_landmarks.png (error bars: std over seeds; from OUT/plot.json by `driftx plot`).
#   scripts/rank-ablation.sh OUT [extra driftx train flags, e.g. --device cuda]
#   env: LPC="10 50 100 500"  SEEDS="0 1 2"  STEPS=1000  NEVAL=5000  DRIFTX=build/driftx
#        SUMMARY_ONLY=1: only summarise the runs already in OUT. Runs already evaluated are skipped.
set -uo pipefail
out=${1:?usage: scripts/rank-ablation.sh OUT [train flags]}
shift
driftx=${DRIFTX:-build/driftx}
mkdir -p "$out"
# Seed by seed, every L each: an interrupted sweep still compares every L.
[ -n "${SUMMARY_ONLY:-}" ] || for seed in ${SEEDS:-0 1 2}; do
  for lpc in ${LPC:-10 50 100 500}; do
    d="$out/lpc$lpc-s$seed"
    [ -f "$d/eval.json" ] && continue
    t0=$(date +%s)
    "$driftx" train --dataset mnist --method driftxpress --landmarks $((lpc * 10)) --steps "${STEPS:-1000}" \
      --seed "$seed" --sample-every 0 --out "$d" "$@" > "$d.log" 2>&1 || { echo "train failed: $d (see $d.log)"; continue; }
    "$driftx" eval --ckpt "$d/checkpoint.pt" --ema --n "${NEVAL:-5000}" --report "$d/eval.json" >> "$d.log" 2>&1 \
      || { echo "eval failed: $d"; continue; }
    echo "$(date +%T) $d done in $(( $(date +%s) - t0 )) s"
  done
done
python3 - "$out" <<'PY'
import glob, json, math, os, re, sys
out = sys.argv[1]
rows = {}
for f in glob.glob(os.path.join(out, "lpc*-s*/eval.json")):
    lpc, seed = map(int, re.search(r"lpc(\d+)-s(\d+)", f).groups())
    rows.setdefault(lpc, []).append((seed, json.load(open(f))["samples"]))
def ms(v):
    m = sum(v) / len(v)
    s = math.sqrt(sum((x - m) ** 2 for x in v) / (len(v) - 1)) if len(v) > 1 else 0.0
    return m, s
summary, lines = [], ["| landmarks per class | seeds | FID | precision | recall | class accuracy | FID per seed |",
                      "|---:|---:|---:|---:|---:|---:|---|"]
for lpc in sorted(rows):
    runs = sorted(rows[lpc])
    stat = {k: ms([r[k] for _, r in runs]) for k in ("fid", "precision", "recall", "class_accuracy")}
    summary.append({"landmarks_per_class": lpc, "seeds": [s for s, _ in runs], **{k: {"mean": m, "std": s} for k, (m, s) in stat.items()},
                    "fid_per_seed": [r["fid"] for _, r in runs]})
    f = lambda k, d: f"{stat[k][0]:.{d}f} ± {stat[k][1]:.{d}f}"
    lines.append(f"| {lpc} | {len(runs)} | {f('fid', 1)} | {f('precision', 3)} | {f('recall', 3)} | {f('class_accuracy', 3)} | "
                 + ", ".join(f"{r['fid']:.1f}" for _, r in runs) + " |")
json.dump(summary, open(os.path.join(out, "summary.json"), "w"), indent=1)
fid = [(s["landmarks_per_class"], s["fid"]["mean"], s["fid"]["std"]) for s in summary]
json.dump({"title": "MNIST, DriftXpress: FID vs landmarks per class",
           "x_label": "landmarks per class", "y_label": "FID (5k EMA samples)", "log_y": True,
           "series": [{"name": "FID", "x": [l for l, _, _ in fid], "y": [m for _, m, _ in fid],
                       "y_lo": [m - s for _, m, s in fid], "y_hi": [m + s for _, m, s in fid]}]},
          open(os.path.join(out, "plot.json"), "w"), indent=1)
open(os.path.join(out, "summary.md"), "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
"$driftx" plot --series "$out/plot.json" --out "$out/fid_vs_landmarks.png" || echo "plot failed (see above)"
