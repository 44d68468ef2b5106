"""One line per `driftx eval --report` file: FID, precision, recall and class accuracy of its samples.
    python3 scripts/eval-line.py REPORT.json [...]"""
import json, os, sys

if len(sys.argv) < 2:
    sys.exit("usage: eval-line.py REPORT.json [...]")
for path in sys.argv[1:]:
    s = json.load(open(path))["samples"]
    print(f"{os.path.splitext(os.path.basename(path))[0]}: FID {s['fid']:.2f} precision {s['precision']:.3f} "
          f"recall {s['recall']:.3f} accuracy {s['class_accuracy']:.4f}")
