"""VAE benchmarks: digits (17 levels, Tomczak's split) per prior and the hierarchical VAE; binarised mnist5k.

    nice python benchmarks/latent_vae.py digits [--models normal,mog,vamp,flow,hvae] [--steps 6000]
    nice python benchmarks/latent_vae.py mnist5k [--steps 6000]

Training goes through ``gl.train`` in rounds of ``--round`` steps (resumed, so the optimiser
state carries on); after each round the validation ELBO is measured and the best weights are
kept (early stopping, as in Tomczak's code). Reported on the test split: −ELBO (one z per image,
averaged over 10 passes) and −IWAE with K = 5000 (``model.log_prob(x, num_samples=5000)``), in
nats per image. One thread; appends a markdown row per model to
``benchmarks/results/latent_vae_<data>.jsonl`` which ``latent_report.py`` turns into latent.md.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
import torch  # noqa: E402

import genlab as gl  # noqa: E402

torch.set_num_threads(1)
RESULTS = Path(__file__).parent / "results"

MODELS = {
    "normal": ("vae", dict(prior="normal")),
    "mog": ("vae", dict(prior="mog", prior_components=10)),
    "vamp": ("vae", dict(prior="vamp", prior_components=50)),
    "flow": ("vae", dict(prior="flow")),
    "hvae": ("hvae", dict()),
    "iwae5": ("vae", dict(prior="normal", iwae_k=5)),
}


def neg_elbo(m, x, passes=10):
    g = torch.Generator().manual_seed(123)
    return float(torch.stack([-m.log_prob(x, generator=g) for _ in range(passes)]).mean())


def run_one(key, data, steps, rnd, seed, K, latent, hidden):
    tr = gl.load_dataset(data, split="train", **({"binarize": True} if data == "mnist5k" else {}))
    va = gl.load_dataset(data, split="val", **({"binarize": True} if data == "mnist5k" else {}))
    te = gl.load_dataset(data, split="test", **({"binarize": True} if data == "mnist5k" else {}))
    name, kw = MODELS[key]
    kw = dict(kw, latent_dim=latent, hidden=hidden, act="leaky_relu")
    torch.manual_seed(seed)
    m = gl.create(name, data=tr, **kw)
    best, best_val, best_step = None, float("inf"), 0
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for s in range(rnd, steps + 1, rnd):
            gl.train(m, tr, steps=s, batch_size=64, lr=1e-3, seed=seed, out=Path(tmp) / "run", resume=True,
                     progress=False, checkpoint_every=rnd, eval_every=-1, sample_every=-1)
            v = neg_elbo(m, va.x, passes=2)
            if v < best_val:
                best, best_val, best_step = copy.deepcopy(m.state_dict()), v, s
            print(f"{key} step {s}: val -ELBO {v:.2f}", flush=True)
    train_s = time.perf_counter() - t0
    m.load_state_dict(best)
    t1 = time.perf_counter()
    elbo = neg_elbo(m, te.x)
    iw = float(-m.log_prob(te.x, num_samples=K, generator=torch.Generator().manual_seed(0)).mean())
    eval_s = time.perf_counter() - t1
    rec = {"data": data, "model": key, "family": name, "options": kw, "steps_best": best_step, "steps": steps,
           "val_neg_elbo": best_val, "test_neg_elbo": elbo, f"test_neg_iwae{K}": iw, "gap": elbo - iw,
           "train_s": train_s, "eval_s": eval_s, "params": m.num_parameters(), "seed": seed,
           "load": os.getloadavg()[0], "date": time.strftime("%Y-%m-%d %H:%M")}
    print(json.dumps(rec), flush=True)
    RESULTS.mkdir(exist_ok=True)
    with open(RESULTS / f"latent_vae_{data}.jsonl", "a") as f:
        f.write(json.dumps(rec) + "\n")
    return rec


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("data", choices=["digits", "mnist5k"])
    ap.add_argument("--models", default="normal,mog,vamp,flow,hvae")
    ap.add_argument("--steps", type=int, default=6000)
    ap.add_argument("--round", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--K", type=int, default=5000)
    ap.add_argument("--latent", type=int, default=16)
    ap.add_argument("--hidden", default="256,256")
    a = ap.parse_args()
    hidden = tuple(int(h) for h in a.hidden.split(","))
    for key in a.models.split(","):
        run_one(key, a.data, a.steps, a.round, a.seed, a.K, a.latent, hidden)


if __name__ == "__main__":
    main()
