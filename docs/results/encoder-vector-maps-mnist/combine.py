"""FID against time of the encoder-space MNIST runs (3 seeds each): the standard method and DriftXpress with
10 class shards (docs/results/encoder-seeds-mnist/compare.json) and DriftXpress with vector maps (this
directory's compare.json). Writes plot.json for `driftx plot` and prints a markdown table.
    python3 docs/results/encoder-vector-maps-mnist/combine.py && \
    build/driftx plot --series docs/results/encoder-vector-maps-mnist/plot.json \
        --out docs/results/encoder-vector-maps-mnist/fid_vs_time.png"""
import json, math, os
here = os.path.dirname(os.path.abspath(__file__))
old = json.load(open(os.path.join(here, "..", "encoder-seeds-mnist", "compare.json")))["runs"]
new = json.load(open(os.path.join(here, "compare.json")))["runs"]
rows = [("standard", [r for r in old if r["method"] == "standard"]),
        ("DriftXpress, 10 class shards", [r for r in old if r["method"] == "driftxpress"]),
        ("DriftXpress, vector maps", new)]
def ms(v):
    m = sum(v) / len(v)
    return m, (math.sqrt(sum((x - m) ** 2 for x in v) / (len(v) - 1)) if len(v) > 1 else 0.0)
series, lines = [], ["| method | seeds | steps | images/s | precompute s | FID @ 10m | FID @ 20m | final FID per seed | class acc. (final) |",
                     "|---|---:|---:|---:|---:|---:|---:|---|---:|"]
for name, runs in rows:
    times = [p["time_s"] for p in runs[0]["curve"]]
    fid = [ms([r["curve"][i]["fid"] for r in runs]) for i in range(len(times))]
    series.append({"name": name, "x": [t / 60 for t in times], "y": [m for m, _ in fid],
                   "y_lo": [m - s for m, s in fid], "y_hi": [m + s for m, s in fid]})
    acc = ms([r["curve"][-1]["accuracy"] for r in runs])[0]
    lines.append(f"| {name} | {len(runs)} | {ms([r['steps'] for r in runs])[0]:.0f} | {ms([r['images_per_s'] for r in runs])[0]:.0f} | "
                 f"{ms([r['precompute_s'] for r in runs])[0]:.1f} | " + " | ".join(f"{m:.1f} ± {s:.1f}" for m, s in fid) +
                 " | " + ", ".join(f"{r['curve'][-1]['fid']:.1f}" for r in runs) + f" | {100 * acc:.1f}% |")
json.dump({"title": "MNIST, encoder space: FID vs training time",
           "x_label": "training time (minutes)", "y_label": "FID", "log_y": True, "series": series},
          open(os.path.join(here, "plot.json"), "w"), indent=1)
print("\n".join(lines))
