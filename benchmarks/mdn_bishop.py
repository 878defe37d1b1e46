"""MDN on Bishop's inverse problem: test NLL (nats/point) and the picture docs/img/mdn_bishop.png.

    nice python benchmarks/mdn_bishop.py

x ~ U(0,1), t = x + 0.3 sin(2πx) + U(−0.1, 0.1); the MDN models p(x | t), which has three branches
for t in about (0.35, 0.65). Anchors (ANCHORS.md): oracle −1.282, best unimodal ≈ −0.68, textbook
3-component MDN (5 tanh units) −1.10. The least-squares fit (the
conditional mean; a cubic fitted by least squares) is drawn for contrast.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from autoregressive_common import load, machine, write_raw  # noqa: E402

import genlab as gl  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def run(seed: int, steps: int, components: int, hidden: tuple[int, ...], batch: int, lr: float,
        act: str = "tanh", n_train: int = 1000):
    """Train on ``n_train`` points (1000 = the textbook's set), keep the weights that score best on the
    1000 validation points (evaluated every 200 steps), report the NLL on the 5000 test points."""
    train, test = gl.load_dataset("bishop", split="train", n=n_train), gl.load_dataset("bishop", split="test")
    val = gl.load_dataset("bishop", split="val")
    torch.manual_seed(seed)                                   # initial weights differ per seed
    model = gl.create("mdn", data=train, components=components, hidden=hidden, act=act)
    t0, c0 = time.perf_counter(), time.process_time()
    run_ = gl.train(model, train, steps=steps, batch_size=min(batch, n_train), lr=lr, schedule="cosine", seed=seed,
                    progress=False, val=val, eval_every=200, keep_best=True, sample_every=-1, checkpoint_every=0)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    model = run_.model
    with torch.no_grad():
        nll = float(-model.log_prob(test.x, cond=test.y).mean())
    return model, nll, wall, len(train), len(test), cpu, run_.best_step


def plot(model, path: Path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    train = gl.load_dataset("bishop", split="train")
    t, x = train.y.numpy()[:, 0], train.x.numpy()[:, 0]
    coef = np.polyfit(t, x, 3)                       # least squares: a cubic in t

    class _LS:
        @staticmethod
        def predict(tt):
            return np.polyval(coef, tt[:, 0])
    ls = _LS()
    tg = np.linspace(-0.1, 1.1, 241)
    xg = np.linspace(-0.1, 1.1, 241)
    T, X = np.meshgrid(tg, xg)
    with torch.no_grad():
        lp = model.log_prob(torch.tensor(X.reshape(-1, 1), dtype=torch.float32),
                            cond=torch.tensor(T.reshape(-1, 1), dtype=torch.float32)).reshape(X.shape).numpy()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
    ax = axes[0]
    ax.scatter(t, x, s=3, c="k", alpha=0.35, label="training data")
    ax.plot(tg, ls.predict(tg[:, None]), "r-", lw=2, label="least squares (conditional mean)")
    with torch.no_grad():
        p = model.mixture(torch.tensor(tg[:, None], dtype=torch.float32))
    pi = torch.softmax(p["logits"], -1).numpy()
    mu = p["mean"][..., 0].numpy()
    for k in range(mu.shape[1]):
        keep = pi[:, k] > 0.1
        ax.plot(np.where(keep, tg, np.nan), np.where(keep, mu[:, k], np.nan), "b-", lw=1.5,
                label="MDN component means (π > 0.1)" if k == 0 else None)
    ax.set(xlabel="t (input)", ylabel="x (target)", title="inverse problem: data, least squares, MDN", ylim=(-0.1, 1.1))
    ax.legend(loc="upper left", fontsize=8)
    ax = axes[1]
    im = ax.pcolormesh(T, X, np.exp(lp), shading="auto", cmap="viridis", vmax=np.percentile(np.exp(lp), 99.5))
    ax.plot(tg, ls.predict(tg[:, None]), "r-", lw=1.5)
    ax.set(xlabel="t (input)", ylabel="x (target)", title="MDN density p(x | t)", ylim=(-0.1, 1.1))
    fig.colorbar(im, ax=ax)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=4000)
    ap.add_argument("--components", type=int, default=20)
    ap.add_argument("--hidden", default="128,128")
    ap.add_argument("--act", default="silu")
    ap.add_argument("--n-train", type=int, default=1000, help="training points (1000 = the textbook's set)")
    ap.add_argument("--tag", default="mdn_bishop", help="name of the raw result file")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--plot-only", action="store_true", help="redraw the picture from runs/bench-mdn-bishop")
    args = ap.parse_args()
    torch.set_num_threads(1)
    hidden = tuple(int(h) for h in args.hidden.split(","))
    if args.plot_only:
        return plot(gl.load(ROOT / "runs" / "bench-mdn-bishop"), ROOT / "docs" / "img" / "mdn_bishop.png")
    load0 = load()
    results = []
    best = None
    models = []
    for s in range(args.seeds):
        model, nll, wall, ntr, nte, cpu, best_step = run(s, args.steps, args.components, hidden, args.batch, args.lr,
                                                         args.act, args.n_train)
        results.append({"seed": s, "test_nll": nll, "train_wall_s": wall, "train_cpu_s": cpu, "best_step": best_step})
        print(results[-1], flush=True)
        models.append(model)
        if best is None or nll < best[1]:
            best = (model, nll)
    if args.n_train == 1000:
        best[0].save_pretrained(ROOT / "runs" / "bench-mdn-bishop")
        plot(best[0], ROOT / "docs" / "img" / "mdn_bishop.png")
    nlls = [r["test_nll"] for r in results]
    # The seeds' models averaged: p(x|t) = (1/M) Σ_m p_m(x|t), itself an MDN with M·K components
    # (mixing weights π_mk / M); it costs the M trainings the per-seed figures already paid for.
    test = gl.load_dataset("bishop", split="test")
    with torch.no_grad():
        lps = torch.stack([m.log_prob(test.x, cond=test.y) for m in models])
        ens = float(-(torch.logsumexp(lps, 0) - np.log(len(models))).mean())
    out = dict(settings=dict(steps=args.steps, components=args.components, hidden=hidden, act=args.act,
                             batch_size=args.batch, lr=args.lr, schedule="cosine", keep_best="val every 200 steps",
                             n_train=ntr, n_test=nte), runs=results,
               ensemble_test_nll=ens, mean_test_nll=float(np.mean(nlls)), median_test_nll=float(np.median(nlls)), sd=float(np.std(nlls)),
               median_cpu_s=float(np.median([r["train_cpu_s"] for r in results])), median_wall_s=float(np.median(
                   [r["train_wall_s"] for r in results])), load_start=load0, load_end=load(), machine=machine())
    print(json.dumps(out, indent=1))
    write_raw(args.tag, "```json\n" + json.dumps(out, indent=1) + "\n```\n")


if __name__ == "__main__":
    main()
