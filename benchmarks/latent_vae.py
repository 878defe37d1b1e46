"""VAE benchmarks: digits (17 levels, Tomczak's split) per prior and the hierarchical VAE; binarised mnist5k.

    nice -n 5 python benchmarks/latent_vae.py digits --models normal,mog,vamp,flow,hvae [--steps 3000]
    nice -n 5 python benchmarks/latent_vae.py mnist5k --models normal --steps 6000
    nice -n 5 python benchmarks/latent_vae.py digits --models normal --set dropout=0.3 iwae_k=10 --tune
    python benchmarks/latent_report.py --write   # rewrites benchmarks/results/latent.md from the saved rows

Training goes through ``gl.train`` in rounds of ``--round`` steps (resumed, so the optimiser
state and the data order carry on); after each round the model is scored on the VALIDATION
split (``--select elbo``: −ELBO, 2 passes; ``--select iwae``: −IWAE with K = ``--val-k``) and
the best weights are kept (early stopping). Reported on the test split (unless ``--tune``, which
never touches the test split and writes to runs/vae_tune.jsonl): −ELBO (one z per image,
averaged over 10 passes) and −IWAE with K = 5000 (``model.log_prob(x, num_samples=5000)``),
nats per image. Wall seconds, process CPU seconds and the 1-minute load average are recorded.
One thread; appends a JSON row per model to ``benchmarks/results/latent_vae_<data>.jsonl``.
"""
from __future__ import annotations

import argparse
import ast
import copy
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
import torch  # noqa: E402

import genlab as gl  # noqa: E402

torch.set_num_threads(1)
RESULTS = Path(__file__).parent / "results"
TUNE = Path(__file__).parent.parent / "runs" / "vae_tune.jsonl"

MODELS = {
    "normal": ("vae", dict(prior="normal")),
    "mog": ("vae", dict(prior="mog", prior_components=10)),
    "vamp": ("vae", dict(prior="vamp", prior_components=50)),
    "flow": ("vae", dict(prior="flow")),
    "hvae": ("hvae", dict()),
}
TRAIN_KEYS = {"lr", "batch_size", "weight_decay", "ema", "grad_clip"}


def neg_elbo(m, x, passes=10, seed=123):
    g = torch.Generator().manual_seed(seed)
    return float(torch.stack([-m.log_prob(x, generator=g) for _ in range(passes)]).mean())


def neg_iwae(m, x, k, seed=0):
    return float(-m.log_prob(x, num_samples=k, generator=torch.Generator().manual_seed(seed)).mean())


def parse_set(items):
    out = {}
    for it in items or []:
        k, v = it.split("=", 1)
        try:
            out[k] = ast.literal_eval(v)
        except (ValueError, SyntaxError):
            out[k] = v
    return out


def load(data, split):
    return gl.load_dataset(data, split=split, **({"binarize": True} if data == "mnist5k" else {}))


def commit():
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).parent).stdout.strip()
    except OSError:
        return ""


def run_one(key, data, steps, rnd, seed, K, sets, select="elbo", val_k=200, tune=False, tag=""):
    tr, va, te = load(data, "train"), load(data, "val"), load(data, "test")
    name, kw = MODELS[key]
    kw = dict(kw, latent_dim=16, hidden=(256, 256), act="leaky_relu")
    tkw = dict(batch_size=64, lr=1e-3)
    for k, v in sets.items():
        (tkw if k in TRAIN_KEYS else kw)[k] = tuple(v) if isinstance(v, list) else v
    torch.manual_seed(seed)
    m = gl.create(name, data=tr, **kw)
    best, best_val, best_step, curve = None, float("inf"), 0, []
    t0, c0 = time.perf_counter(), time.process_time()
    with tempfile.TemporaryDirectory() as tmp:
        for s in range(rnd, steps + 1, rnd):
            run = gl.train(m, tr, steps=s, seed=seed, out=Path(tmp) / "run", resume=True, progress=False,
                           checkpoint_every=rnd, eval_every=-1, sample_every=-1, **tkw)
            mm = run.model                      # EMA weights when ema > 0
            v = neg_elbo(mm, va.x, passes=2) if select == "elbo" else neg_iwae(mm, va.x, val_k)
            curve.append((s, round(v, 3)))
            if v < best_val:
                best, best_val, best_step = copy.deepcopy(mm.state_dict()), v, s
            print(f"{key} {tag} step {s}: val {select} {v:.2f}", flush=True)
    train_s, train_cpu = time.perf_counter() - t0, time.process_time() - c0
    m.load_state_dict(best)
    rec = {"data": data, "model": key, "family": name, "tag": tag,
           "options": {k: (list(v) if isinstance(v, tuple) else v) for k, v in kw.items()},
           "train": tkw, "select": select if select == "elbo" else f"iwae{val_k}",
           "steps_best": best_step, "steps": steps, "round": rnd, "val_curve": curve, f"val_best": best_val,
           "train_s": train_s, "train_cpu_s": train_cpu, "params": m.num_parameters(), "seed": seed}
    if not tune:
        t1, c1 = time.perf_counter(), time.process_time()
        rec["val_neg_elbo"] = neg_elbo(m, va.x)
        rec["test_neg_elbo"] = neg_elbo(m, te.x)
        rec[f"test_neg_iwae{K}"] = neg_iwae(m, te.x, K)
        rec["gap"] = rec["test_neg_elbo"] - rec[f"test_neg_iwae{K}"]
        rec["eval_s"], rec["eval_cpu_s"] = time.perf_counter() - t1, time.process_time() - c1
    else:
        rec["val_neg_elbo"] = neg_elbo(m, va.x)
        rec["val_neg_iwae1000"] = neg_iwae(m, va.x, 1000)
    rec.update(load=os.getloadavg()[0], date=time.strftime("%Y-%m-%d %H:%M"), commit=commit())
    print(json.dumps(rec), flush=True)
    path = TUNE if tune else RESULTS / f"latent_vae_{data}.jsonl"
    path.parent.mkdir(exist_ok=True)
    with open(path, "a") as f:
        f.write(json.dumps(rec) + "\n")
    return rec


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("data", choices=["digits", "mnist5k"])
    ap.add_argument("--models", default="normal,mog,vamp,flow,hvae")
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--round", type=int, default=250)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--K", type=int, default=5000)
    ap.add_argument("--select", choices=["elbo", "iwae"], default="elbo")
    ap.add_argument("--val-k", type=int, default=200)
    ap.add_argument("--set", nargs="*", default=[], help="model/training options key=value (lr, batch_size, "
                    "weight_decay, ema, grad_clip go to gl.train)")
    ap.add_argument("--tune", action="store_true", help="validation only; rows to runs/vae_tune.jsonl")
    ap.add_argument("--tag", default="")
    a = ap.parse_args()
    for key in a.models.split(","):
        run_one(key, a.data, a.steps, a.round, a.seed, a.K, parse_set(a.set), a.select, a.val_k, a.tune, a.tag)


if __name__ == "__main__":
    main()
