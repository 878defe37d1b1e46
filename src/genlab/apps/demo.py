"""The README's main job: train RealNVP on a 2-D toy and on 8×8 digits, write samples and
evaluation records into run directories, and print a summary table. About 3-4 minutes on 2 cores.

    python -m genlab.apps.demo --out runs/demo
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import genlab as gl

JOBS = [
    # (model, dataset, steps, model overrides, train overrides)
    ("realnvp", "moons", 1500, {}, {"batch_size": 256, "lr": 2e-3}),
    ("realnvp", "digits", 2000, {}, {"batch_size": 128, "lr": 1e-3}),
]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="runs/demo", help="folder for the run directories")
    ap.add_argument("--scale", type=float, default=1.0, help="multiply the step counts (e.g. 0.1 for a smoke run)")
    args = ap.parse_args(argv)
    from ..evaluation import format_table, write_record
    out = Path(args.out)
    rows = []
    t_all = time.perf_counter()
    for name, data, steps, mkw, tkw in JOBS:
        steps = max(10, int(steps * args.scale))
        train = gl.load_dataset(data, split="train")
        val = gl.load_dataset(data, split="val")
        test = gl.load_dataset(data, split="test")
        model = gl.create(name, data=train, **mkw)
        run_dir = out / f"{name}-{data}"
        print(f"\n== {name} on {data}: {model.num_parameters():,} parameters, {steps} steps -> {run_dir}")
        run = gl.train(model, train, steps=steps, out=run_dir, val=val, seed=0, **tkw)
        from ..data.plot import save_samples
        import torch
        x = model.sample(1000 if train.info.modality == "vector" else 64, generator=torch.Generator().manual_seed(0))
        save_samples(x, train.info, run_dir / "samples" / "final.png")
        record = gl.evaluate(model, test, train_data=train, seed=0)
        write_record(record, run_dir)
        print(format_table(record))
        rows.append({"model": name, "data": data, "steps": steps, "seconds": round(run.wall_time, 1),
                     "metrics": record["metrics"]})
    (out / "summary.json").write_text(json.dumps(rows, indent=2, default=str))
    print(f"\nall done in {time.perf_counter() - t_all:.0f}s; samples and records under {out}/")


if __name__ == "__main__":
    main()
