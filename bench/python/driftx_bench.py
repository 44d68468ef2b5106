#!/usr/bin/env python3
"""Times the PyTorch-in-Python baseline (drift_ref.py) and prints one JSON object on stdout.

  driftx_bench.py standard   --inputs DIR [--check]   # standard field on DIR/gen.npy, DIR/pos.npy
  driftx_bench.py projected  --inputs DIR [--check]   # projected field query on DIR/x.npy, DIR/labels.npy
  driftx_bench.py train-step --method standard|driftxpress [--summaries DIR] [--check DIR]

`driftx bench vs-python` writes the input directories (.npy through the project's npy writer, plus the
C++ outputs for --check) and runs this script; it can be run by hand on such a directory too.
JSON: {"median_ms", "min_ms", "max_ms", "samples_ms", "threads", "torch", ...; with --check "max_rel_diff"}.
"""
import argparse
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import drift_ref as ref  # noqa: E402


def cmd_standard(a, out):
    meta = json.load(open(os.path.join(a.inputs, "meta.json")))
    gen, pos = ref.npy(a.inputs, "gen.npy"), ref.npy(a.inputs, "pos.npy")
    temps, floor = meta["temperatures"], meta.get("affinity_floor", 1e-6)
    torch.set_grad_enabled(False)

    def call():
        loss, goal, drift, s, c = ref.standard_field(gen, pos, temps, floor=floor)
        loss.item()

    out.update(ref.time_calls(call, a.repeats, a.warmup))
    out["shape"] = list(gen.shape) + [pos.shape[1]]
    if a.check:
        loss, goal, drift, s, c = ref.standard_field(gen, pos, temps, floor=floor)
        diffs = {"goal": ref.max_rel_diff(ref.npy(a.inputs, "out_goal.npy"), goal),
                 "drift": ref.max_rel_diff(ref.npy(a.inputs, "out_drift.npy"), drift),
                 "loss": ref.max_rel_diff(ref.npy(a.inputs, "out_loss.npy").reshape(()), loss)}
        out["diffs"] = diffs
        out["max_rel_diff"] = max(diffs.values())


def cmd_projected(a, out):
    summ = ref.ProjectedSummaries.load(a.inputs)
    x, labels = ref.npy(a.inputs, "x.npy"), ref.npy(a.inputs, "labels.npy")
    torch.set_grad_enabled(False)

    def call():
        loss, target, drift = ref.projected_field(x, labels, summ)
        loss.item()

    out.update(ref.time_calls(call, a.repeats, a.warmup))
    out["shape"] = [x.shape[0], summ.U.shape[0], x.shape[1]]
    if a.check:
        loss, target, drift = ref.projected_field(x, labels, summ)
        diffs = {"drift": ref.max_rel_diff(ref.npy(a.inputs, "out_drift.npy"), drift),
                 "target": ref.max_rel_diff(ref.npy(a.inputs, "out_target.npy"), target),
                 "loss": ref.max_rel_diff(ref.npy(a.inputs, "out_loss.npy").reshape(()), loss)}
        out["diffs"] = diffs
        out["max_rel_diff"] = max(diffs.values())


def cmd_train_step(a, out):
    groups = a.features.split(",")
    images, labels = ref.load_mnist(a.data_dir)
    summaries = None
    if a.method == "driftxpress":
        summaries = {g: ref.ProjectedSummaries.load(a.summaries, g + "_") for g in groups}
    step = ref.TrainStep(a.method, images, labels, groups, summaries, width=a.width, gen_per_class=a.gen_per_class,
                         pos_per_class=a.pos_per_class, seed=a.seed)
    out.update(ref.time_calls(step.step, a.repeats, a.warmup))
    out["images_per_step"] = step.Nc * step.N
    if a.check:
        # The C++ trainer's generator, batch and loss / per-group targets (driftxpress: deterministic).
        d = a.check
        state = {k: ref.npy(d, "param_" + k + ".npy") for k in step.gen.state_dict()}
        step.gen.load_state_dict(state)
        z, lab = ref.npy(d, "z.npy"), ref.npy(d, "labels.npy")
        with torch.no_grad():
            images = step.gen(z, lab)
            diffs = {"images": ref.max_rel_diff(ref.npy(d, "out_images.npy"), images)}
            total = 0.0
            for g in groups:
                loss, target, _ = ref.projected_field(ref.features(images, g), lab, summaries[g])
                diffs["target_" + g] = ref.max_rel_diff(ref.npy(d, "out_target_" + g + ".npy"), target)
                total += loss.item()
            diffs["loss"] = ref.max_rel_diff(ref.npy(d, "out_loss.npy").reshape(()), torch.tensor(total))
        out["diffs"] = diffs
        out["max_rel_diff"] = max(diffs.values())


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("standard", "projected", "train-step"):
        s = sub.add_parser(name)
        s.add_argument("--threads", type=int, default=2)
        s.add_argument("--repeats", type=int, default=5)
        s.add_argument("--warmup", type=int, default=1)
        if name == "train-step":
            s.add_argument("--method", choices=["standard", "driftxpress"], required=True)
            s.add_argument("--data-dir", default="data")
            s.add_argument("--summaries", help="directory of <group>_*.npy folded summaries (driftxpress)")
            s.add_argument("--features", default="pixels,pool2,pool4")
            s.add_argument("--width", type=int, default=64)
            s.add_argument("--gen-per-class", type=int, default=25)
            s.add_argument("--pos-per-class", type=int, default=256)
            s.add_argument("--seed", type=int, default=0)
            s.add_argument("--check", default="", help="directory with the C++ generator, batch and outputs")
        else:
            s.add_argument("--inputs", required=True)
            s.add_argument("--check", action="store_true", help="compare with the C++ outputs in --inputs")
    a = p.parse_args()
    out = ref.setup_threads(a.threads)
    {"standard": cmd_standard, "projected": cmd_projected, "train-step": cmd_train_step}[a.cmd](a, out)
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
