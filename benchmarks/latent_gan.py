"""GAN mode coverage on ring8 / grid25 (VEEGAN / PacGAN protocol, ANCHORS.md).

    nice python benchmarks/latent_gan.py [--data ring8,grid25] [--losses ns,...] [--seeds 0,1,2] [--steps 2000]

Per (dataset, loss, seed): train an MLP GAN through ``gl.train`` (batch 256, lr 1e-3 for the
classifier losses and 1e-4 for wgan/wgan-gp, Adam β from the family's defaults, no engine
gradient clipping), draw 2500 samples and compute ``gl.metrics`` mode coverage (modes captured,
% high-quality samples within 3σ, reverse KL of the HQ histogram to uniform). Rows are appended to
``benchmarks/results/latent_gan.jsonl``; ``latent_report.py`` averages seeds (mean ± s.e.).
Networks follow PacGAN's 2-D experiments in spirit (3 hidden layers; 400 units there, --hidden here).
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
import torch  # noqa: E402

import genlab as gl  # noqa: E402

torch.set_num_threads(1)
RESULTS = Path(__file__).parent / "results"


def coverage(samples, ds):
    try:
        from genlab.metrics.modes import mode_coverage
    except ImportError:                                  # local fallback (same protocol)
        mode_coverage = None
    if mode_coverage is not None:
        return mode_coverage(samples, ds.extras["modes"])
    means, std = ds.extras["modes"]
    d = torch.cdist(samples.double(), means.double())
    dist, k = d.min(1)
    hq = dist <= 3 * std
    counts = torch.bincount(k[hq], minlength=len(means)).double()
    p = counts / counts.sum().clamp_min(1)
    H = -(p[p > 0] * p[p > 0].log()).sum()
    return {"modes_captured": int((counts > 0).sum()), "num_modes": len(means),
            "high_quality_pct": 100 * float(hq.double().mean()),
            "reverse_kl": float(torch.log(torch.tensor(float(len(means)))) - H)}


def run(data, loss, seed, steps, pac, hidden):
    tr = gl.load_dataset(data, split="train")
    torch.manual_seed(seed)
    m = gl.create("gan", data=tr, loss=loss, hidden=hidden, latent_dim=2, pac=pac)
    lr = 1e-4 if loss in ("wgan", "wgan-gp") else 1e-3
    t0 = time.perf_counter()
    r = gl.train(m, tr, steps=steps, batch_size=256, lr=lr, seed=seed, grad_clip=None, progress=False,
                 eval_every=-1, sample_every=-1)
    wall = time.perf_counter() - t0
    s = m.sample(2500, generator=torch.Generator().manual_seed(1000 + seed))
    cov = coverage(s, tr)
    rec = {"data": data, "loss": loss, "pac": pac, "hidden": list(hidden), "seed": seed, "steps": steps, "wall_s": wall,
           "modes": cov.get("modes_captured", cov.get("modes")), "num_modes": cov.get("num_modes", cov.get("K")),
           "hq_percent": cov.get("high_quality_pct", cov.get("hq_percent")),
           "reverse_kl": cov.get("reverse_kl"), "raw": {k: v for k, v in cov.items() if not hasattr(v, "shape")},
           "last": {k: v for k, v in r.history[-1].items()} if r.history else {},
           "load": os.getloadavg()[0], "date": time.strftime("%Y-%m-%d %H:%M")}
    print(json.dumps(rec, default=str), flush=True)
    RESULTS.mkdir(exist_ok=True)
    with open(RESULTS / "latent_gan.jsonl", "a") as f:
        f.write(json.dumps(rec, default=str) + "\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="ring8,grid25")
    ap.add_argument("--losses", default="ns,minimax,lsgan,wgan,wgan-gp,hinge")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--pac", type=int, default=1)
    ap.add_argument("--hidden", default="256,256,256")
    a = ap.parse_args()
    for seed in map(int, a.seeds.split(",")):
        for data in a.data.split(","):
            for loss in a.losses.split(","):
                run(data, loss, seed, a.steps, a.pac, tuple(int(h) for h in a.hidden.split(",")))


if __name__ == "__main__":
    main()
