"""Image GAN and EBM quality on digits and mnist5k with the evaluation suite's feature networks.

    nice -n 5 python benchmarks/gan_images.py --runs gan-digits,cgan-digits,ebm-digits,gan-mnist5k,ebm-mnist5k
    python benchmarks/gan_ebm_report.py            # rewrites benchmarks/results/gan_ebm.md

Each run trains through ``gl.train`` on the train split, then ``gl.evaluate`` against the TEST
split with the shipped feature network of the dataset (``genlab.features``: small CNN classifier,
128-d features): Fréchet distance (FD), KID (polynomial-kernel MMD², unbiased), the classifier score and, for the conditional
GAN, the class accuracy of samples drawn at the test labels. n samples = n test images.
Reference rows: the same metrics for held-out real images (the first n_test images of the val
split, resp. a random n_test subset of train) against the test split, i.e. what a perfect model
scores at this n. Appends JSON lines to ``benchmarks/results/gan_images.jsonl``.
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
import torch  # noqa: E402

import genlab as gl  # noqa: E402
from genlab import metrics as M  # noqa: E402
from genlab.features import feature_net_for  # noqa: E402
from gan_common import record, stamp  # noqa: E402

torch.set_num_threads(1)
RESULTS = Path(__file__).parent / "results"

# name -> (family, dataset, model overrides, train settings)
RUNS = {
    "gan-digits": ("gan", "digits", dict(loss="ns", net="conv", channels=(32, 64), latent_dim=32),
                   dict(steps=1500, batch_size=64, lr=2e-4, ema=0.99)),
    "cgan-digits": ("gan", "digits", dict(loss="ns", net="conv", channels=(32, 64), latent_dim=32,
                                          conditional=True),
                    dict(steps=1500, batch_size=64, lr=2e-4, ema=0.99)),
    "gan-mnist5k": ("gan", "mnist5k", dict(loss="ns", net="conv", channels=(32, 64), latent_dim=32),
                    dict(steps=1500, batch_size=64, lr=2e-4, ema=0.99)),
    "cgan-mnist5k": ("gan", "mnist5k", dict(loss="ns", net="conv", channels=(32, 64), latent_dim=32,
                                            conditional=True),
                     dict(steps=1500, batch_size=64, lr=2e-4, ema=0.99)),
    "ebm-digits": ("ebm", "digits", dict(channels=(32, 64), sgld_steps=20, sample_steps=200),
                   dict(steps=500, batch_size=64, lr=1e-4)),
    "ebm-mnist5k": ("ebm", "mnist5k", dict(channels=(32, 64), sgld_steps=20, sample_steps=200),
                    dict(steps=300, batch_size=64, lr=1e-4)),
}


def reference(data: str, seed: int = 0) -> dict:
    """Held-out real images scored like samples: val[:n_test] and a random train subset vs test."""
    te = gl.load_dataset(data, split="test")
    net = feature_net_for(te.info)
    ft = net.features(te.x)
    out = {}
    for name, split in (("val", "val"), ("train", "train")):
        ds = gl.load_dataset(data, split=split)
        idx = torch.randperm(len(ds), generator=torch.Generator().manual_seed(seed))[:len(te)]
        x = ds.x[idx] if split == "train" else ds.x[:len(te)]
        fx = net.features(x)
        out[name] = {"fd": M.frechet_distance(ft, fx), "kid": M.kid(ft, fx, seed=seed)["kid"],
                     "classifier_score": M.classifier_score(net.probs(x))["score"], "n": len(x)}
    return {"data": data, "kind": "reference", "n_test": len(te), **out,
            "features": net.describe() if hasattr(net, "describe") else None}


def run(name: str, seed: int, steps: int | None, out: Path) -> dict:
    family, data, over, tcfg = RUNS[name]
    tcfg = dict(tcfg)
    if steps:
        tcfg["steps"] = steps
    tr, te = gl.load_dataset(data, split="train"), gl.load_dataset(data, split="test")
    torch.manual_seed(seed)
    m = gl.create(family, data=tr, **over)
    t0, c0 = time.perf_counter(), time.process_time()
    r = gl.train(m, tr, seed=seed, progress=False, eval_every=-1, sample_every=-1,
                 out=f"runs/gan_images/{name}-s{seed}", overwrite=True, **tcfg)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    metrics = ["fd", "kid", "classifier_score"] + (["class_accuracy"] if over.get("conditional") else [])
    t1, c1 = time.perf_counter(), time.process_time()
    rec = gl.evaluate(r.model, te, metrics=metrics, seed=seed)
    ew, ec = time.perf_counter() - t1, time.process_time() - c1
    mt = rec["metrics"]
    row = {"run": name, "family": family, "data": data, "seed": seed, "model": over, "train": tcfg,
           "fd": mt.get("fd"), "kid": mt.get("kid", {}).get("kid"), "kid_std": mt.get("kid", {}).get("kid_std"),
           "classifier_score": mt.get("classifier_score", {}).get("score"),
           "class_accuracy": mt.get("class_accuracy"), "n_samples": rec["protocol"]["n_samples"],
           "features": rec["protocol"]["features"], "train_wall_s": round(wall, 1), "train_cpu_s": round(cpu, 1),
           "eval_wall_s": round(ew, 1), "eval_cpu_s": round(ec, 1),
           "params": rec["model_config"].get("num_parameters"), **stamp()}
    return record(row, out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", default="gan-digits,cgan-digits,ebm-digits,gan-mnist5k,ebm-mnist5k")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--steps", type=int, help="override the steps of every run (smoke tests)")
    ap.add_argument("--reference", action="store_true", help="also score held-out real images")
    ap.add_argument("--out", default=str(RESULTS / "gan_images.jsonl"))
    a = ap.parse_args()
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if a.reference:
        for data in sorted({RUNS[r][1] for r in a.runs.split(",")}):
            record(reference(data), out)
    for seed in map(int, a.seeds.split(",")):
        for name in a.runs.split(","):
            run(name, seed, a.steps, out)


if __name__ == "__main__":
    main()
