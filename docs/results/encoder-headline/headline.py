"""The README's headline table: both methods in encoder space, 20 minutes, 3 seeds, MNIST and Fashion-MNIST.
FID (mean ± sample std over seeds) and images/s from each comparison's compare.json; precision, recall and
class accuracy (means) of the final EMA generators from eval-seeds.sh's eval/*.json.
Also writes the Fashion-MNIST plot's series (encoder-seeds-fashion/plot.json, for `driftx plot`).
    docs/results/encoder-headline/eval-seeds.sh && python3 docs/results/encoder-headline/headline.py
    build/driftx plot --series docs/results/encoder-seeds-fashion/plot.json --out docs/results/encoder-seeds-fashion/fid_vs_time.png"""
import json, math, os
here = os.path.dirname(os.path.abspath(__file__))
res = os.path.join(here, "..")
def runs(path, method):
    return [r for r in json.load(open(os.path.join(res, path, "compare.json")))["runs"] if r["method"] == method]
def ms(v):
    m = sum(v) / len(v)
    return m, (math.sqrt(sum((x - m) ** 2 for x in v) / (len(v) - 1)) if len(v) > 1 else 0.0)
rows = [("MNIST", "mnist", "standard", runs("encoder-seeds-mnist", "standard")),
        ("MNIST", "mnist", "driftxpress", runs("encoder-vector-maps-mnist", "driftxpress")),
        ("Fashion-MNIST", "fashion-mnist", "standard", runs("encoder-seeds-fashion", "standard")),
        ("Fashion-MNIST", "fashion-mnist", "driftxpress", runs("encoder-seeds-fashion", "driftxpress"))]
print("| dataset | method | seeds | images/s | FID @ 10m | FID @ 20m | final FID per seed | precision | recall | class acc. |")
print("|---|---|---:|---:|---:|---:|---|---:|---:|---:|")
for title, ds, method, rs in rows:
    fids = [ms([r["curve"][i]["fid"] for r in rs]) for i in range(len(rs[0]["curve"]))]
    ev = [json.load(open(os.path.join(here, "eval", f"{ds}-{method}-seed{r['seed']}.json")))["samples"] for r in rs]
    name = "DriftXpress, vector maps" if method == "driftxpress" else "standard"
    print(f"| {title} | {name} | {len(rs)} | {ms([r['images_per_s'] for r in rs])[0]:.0f} | "
          + " | ".join(f"{m:.1f} ± {s:.1f}" for m, s in fids) + " | "
          + ", ".join(f"{r['curve'][-1]['fid']:.1f}" for r in rs)
          + f" | {ms([e['precision'] for e in ev])[0]:.3f} | {ms([e['recall'] for e in ev])[0]:.3f} | "
          + f"{100 * ms([e['class_accuracy'] for e in ev])[0]:.1f}% |")

series = []
for title, ds, method, rs in rows[2:]:
    times = [p["time_s"] for p in rs[0]["curve"]]
    fid = [ms([r["curve"][i]["fid"] for r in rs]) for i in range(len(times))]
    series.append({"name": f"{method} (mean +- std, {len(rs)} seeds)", "x": [t / 60 for t in times],
                   "y": [m for m, _ in fid], "y_lo": [m - s for m, s in fid], "y_hi": [m + s for m, s in fid]})
json.dump({"title": "Fashion-MNIST, encoder space: FID vs training time", "x_label": "training time (minutes, precompute included)",
           "y_label": "FID (evaluator features)", "log_y": True, "series": series},
          open(os.path.join(res, "encoder-seeds-fashion", "plot.json"), "w"), indent=1)
