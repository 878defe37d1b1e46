"""MDN on Bishop's inverse problem: test NLL (nats/point) and the picture docs/img/mdn_bishop.png.

    nice python benchmarks/mdn_bishop.py                       # the default (winning) settings, seeds 0–2
    nice python benchmarks/mdn_bishop.py --seeds 1 --members 1 --noise-x 0.01 --noise-cond 0.01   # a tuning row
    python benchmarks/mdn_bishop.py --report                   # rewrite results/mdn_bishop.md from the jsonl

x ~ U(0,1), t = x + 0.3 sin(2πx) + U(−0.1, 0.1); the MDN models p(x | t), which has three branches
for t in about (0.35, 0.65). Anchors (ANCHORS.md): oracle −1.282, best unimodal ≈ −0.68, textbook
3-component MDN (5 tanh units) −1.10. Protocol: the default 1000-point train split, the 1000-point
val split for early stopping and for every choice of settings, the 5000-point test split reported
(median over seeds). Defaults: an ensemble of 3 MDNs (``members=3``), each 20 components on a SiLU
[128, 128] MLP, 4000 full-batch AdamW steps, lr 3e-3 cosine — the best validation NLL of the tuning
rows in results/mdn_bishop.md. The least-squares fit (the conditional mean; a cubic fitted by least
squares) is drawn for contrast.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from autoregressive_common import machine  # noqa: E402

import genlab as gl  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RAW = ROOT / "benchmarks" / "results" / "mdn_bishop.jsonl"     # one JSON record per invocation
OUT_MD = ROOT / "benchmarks" / "results" / "mdn_bishop.md"


def run(seed: int, steps: int, components: int, hidden: tuple[int, ...], batch: int, lr: float,
        act: str = "tanh", n_train: int = 1000, model_kw: dict | None = None, train_kw: dict | None = None,
        cond_scale: float | None = None):
    """Train on ``n_train`` points (1000 = the textbook's set), keep the weights that score best on the
    1000 validation points (evaluated every 200 steps), report the NLL on the 5000 test points."""
    train, test = gl.load_dataset("bishop", split="train", n=n_train), gl.load_dataset("bishop", split="test")
    val = gl.load_dataset("bishop", split="val")
    if cond_scale:     # t → (t − ½)·s: a bijection of the condition leaves p(x | t) and its NLL unchanged
        train, val, test = [dataclasses.replace(d, y=(d.y - 0.5) * cond_scale) for d in (train, val, test)]
    torch.manual_seed(seed)                                   # initial weights differ per seed
    model = gl.create("mdn", data=train, components=components, hidden=hidden, act=act, **(model_kw or {}))
    load0 = os.getloadavg()[0]
    t0, c0 = time.perf_counter(), time.process_time()
    run_ = gl.train(model, train, steps=steps, batch_size=min(batch, n_train), lr=lr, schedule="cosine", seed=seed,
                    progress=False, val=val, eval_every=200, keep_best=True, sample_every=-1, checkpoint_every=0,
                    **(train_kw or {}))
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    model = run_.model
    model.eval()
    with torch.no_grad():
        nll = float(-model.log_prob(test.x, cond=test.y).mean())
        val_nll = float(-model.log_prob(val.x, cond=val.y).mean())
    curve = [[r["step"], round(r["val_loss"], 4)] for r in run_.history if "val_loss" in r and "step" in r]
    rec = {"seed": seed, "val_nll": val_nll, "test_nll": nll, "best_step": run_.best_step, "train_wall_s": wall,
           "train_cpu_s": cpu, "load1_start": load0, "load1_end": os.getloadavg()[0], "val_curve": curve}
    return model, rec, len(train), len(test)


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
    members = model.config.members                   # an ensemble's weights are π_mk / M
    for k in range(mu.shape[1]):
        keep = pi[:, k] > 0.1 / members
        ax.plot(np.where(keep, tg, np.nan), np.where(keep, mu[:, k], np.nan), "b-", lw=1.5 if members == 1 else 0.8,
                label=(f"MDN component means (π > {0.1 / members:.2g})" if k == 0 else None))
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


def settings_of(args) -> dict:
    return dict(steps=args.steps, components=args.components, hidden=list(args.hidden), act=args.act,
                noise_x=args.noise_x, noise_cond=args.noise_cond, dropout=args.dropout, members=args.members,
                min_std=args.min_std, weight_decay=args.wd, ema=args.ema, cond_scale=args.cond_scale, batch_size=args.batch, lr=args.lr, schedule="cosine",
                keep_best="val every 200 steps", n_train=args.n_train)


def label(st: dict) -> str:
    """A short description of the settings that differ from the textbook-sized MDN."""
    parts = [f"K={st['components']}", f"{st['act']} {st['hidden']}".replace(" ", "").replace(",", "x"),
             f"{st['steps']} steps", f"lr {st['lr']:g}"]
    for k, name in [("noise_x", "σ_x"), ("noise_cond", "σ_t"), ("dropout", "dropout"), ("weight_decay", "wd"),
                    ("ema", "EMA")]:
        if st.get(k):
            parts.append(f"{name} {st[k]:g}")
    if st.get("members", 1) > 1:
        parts.append(f"M={st['members']}")
    if st.get("min_std", 1e-3) != 1e-3:
        parts.append(f"σ_min {st['min_std']:g}")
    if st.get("cond_scale"):
        parts.append(f"input (t − ½)·{st['cond_scale']:g}")
    if st.get("batch_size", 1000) != 1000:
        parts.append(f"batch {st['batch_size']}")
    if st.get("n_train", 1000) != 1000:
        parts.append(f"{st['n_train']} train points")
    return ", ".join(parts)


def report():
    """Rewrite benchmarks/results/mdn_bishop.md from the raw records in mdn_bishop.jsonl."""
    recs = [json.loads(line) for line in RAW.read_text().splitlines() if line.strip()] if RAW.exists() else []
    # Records with identical settings (e.g. seed 0 from a tuning run, seeds 1–2 from a later one) form one
    # row; a seed measured twice keeps its latest result. The seed mixture needs all models in one run.
    groups: dict[str, dict] = {}
    for r in recs:
        g = groups.setdefault(json.dumps(r["settings"], sort_keys=True), {"settings": r["settings"], "seeds": {},
                                                                        "mixture": None, "commits": []})
        for x in r["runs"]:
            g["seeds"][x["seed"]] = x
        covered = set(g["seeds"]) == {x["seed"] for x in r["runs"]}      # the mixture of exactly this row's seeds
        g["mixture"] = r["seed_mixture_test_nll"] if covered and len(r["runs"]) > 1 else None
        g["commits"] = sorted(set(g["commits"]) | {r.get("commit", "?")})
        g["final"] = g.get("final") or r.get("final", False)
    rows = []
    for g in groups.values():
        runs = [g["seeds"][k] for k in sorted(g["seeds"])]
        vals = [x["val_nll"] for x in runs]
        tests = [x["test_nll"] for x in runs]
        g["median_test"] = float(np.median(tests))
        g["tests"] = tests
        rows.append("| {} | {} | {} | {} | {} | **{:.3f}** | {} | {:.0f} | {:.0f} | {:.1f} → {:.1f} | {} |".format(
            label(g["settings"]), ",".join(str(k) for k in sorted(g["seeds"])),
            ", ".join(f"{v:.3f}" for v in vals), ", ".join(f"{v:.3f}" for v in tests),
            f"{np.median(vals):.3f}", np.median(tests), "–" if g["mixture"] is None else f"{g['mixture']:.3f}",
            np.median([x["train_cpu_s"] for x in runs]), np.median([x["train_wall_s"] for x in runs]),
            runs[0]["load1_start"], runs[-1]["load1_end"], ", ".join(g["commits"])))
    final = [g for g in groups.values() if g.get("final")]
    text = f"""# MDN on Bishop's inverse problem (test NLL, nats/point)

Issue #4 target: "`bishop`: MDN test NLL; the best unimodal Gaussian reaches about −0.68 nats/point, the
oracle is −1.28, and a 3-component MDN of the textbook's size reaches −1.10 (measured here); target ≤ −1.15."

Protocol: the default train split (1000 points), the 1000-point val split for early stopping
(`keep_best=True`, validation every 200 steps) and for every choice of settings, the 5000-point test
split reported; seeds 0, 1, 2 (initial weights and batches); full-batch AdamW, cosine schedule to 0,
gradient clipping 1. Machine: 2-core CPU, torch 2.13.0, 1 thread, shared with other sessions (the
1-minute load average at the start and end of each row is listed; `CPU s` is the process CPU time
of one training run, closer to a quiet machine's wall time). Date 2026-11-22. Every row is one
invocation of `python benchmarks/mdn_bishop.py` with the flags its settings name; `seed mixture`
is the density averaged over that row's seed models (an MDN with 3·K components, for reference; only
where one invocation trained all of the row's seeds). `commit` is HEAD when the row ran; the rows
before c64b238 ran its `mdn` options from the working tree (committed unchanged there).

"""
    if final:
        f = final[-1]
        med = f["median_test"]
        text += (f"**Default (winning) settings**: {label(f['settings'])}: test NLL median **{med:.3f}** over "
                 f"{len(f['tests'])} seeds ({', '.join(f'{v:.3f}' for v in f['tests'])}); target ≤ −1.15: "
                 f"**{'met' if med <= -1.15 else 'not met'}**. Command: `python benchmarks/mdn_bishop.py`.\n\n")
    text += ("| settings | seeds | val NLL per seed | test NLL per seed | val median | **test median** | seed mixture "
             "(test) | CPU s per run | wall s per run | load (start → end) | commit |\n"
             "|---|---|---|---|---|---|---|---|---|---|---|\n")
    text += "\n".join(rows) + "\n" + NOTES
    OUT_MD.write_text(text)
    print(text)


NOTES = """
Findings (the one-seed rows are seed 0 and were compared on val only):
- Noise regularisation (Rothfuss et al. 2019; `noise_x`, `noise_cond`) on both x and t hurts here: the
  posterior is uniform on intervals, and its sharp edges in x are what Gaussian smoothing blurs. σ = 0.02
  on x and t costs 0.055 nats on val, σ = 0.01 costs 0.013, σ = 0.005 is neutral.
- Noise on the condition t ALONE helps (the edges move smoothly with t, so smoothing along t is the
  right prior): one MDN, seed 0, val −1.141 (none) → −1.144 / −1.147 / −1.145 / −1.113 for
  σ_t = 0.005 / 0.01 / 0.015 / 0.03; σ_t = 0.01 was kept (best on val). With 3 members: val median
  −1.160 at 4000 steps (test −1.150) and −1.163 at 6000 steps (test −1.152, the default). A 3-member
  σ_t = 0.015 run was stopped after seed 0 (val −1.155, worse than 0.01) to free the CPU; it is not in the table.
- Neutral within seed noise (±0.01): dropout 0.1, EMA 0.995 of the weights, AdamW weight decay 0.1.
  Worse: mini-batches of 250; lr 0.001 (still underfitting at 4000 steps), 0.005 and 0.01 — 0.003
  is the best of the four; 40 components; a rescaled input (t − ½)·3 or ·10 (·10 fits val faster,
  then overfits; its test is worse); 8000 steps without noise (val best at step 5400, test −1.122).
- What helps is averaging: an ensemble of 3 MDNs (`members=3`) beats one MDN with the same settings
  by 0.02 nats on val and 0.01 on test (seed 0); 5 members are no better on val. The earlier
  mixture of three separately trained seeds (results/autoregressive.md) gained 0.015 on test.
- For scale: with 20,000 training points one MDN of this size (no noise) reaches −1.166 on test
  (results/autoregressive.md); approximating the sharp edges of the uniform posterior with Gaussians
  costs ≈ 0.12 nats against the oracle even with ample data. The default's margin to the target
  (0.002) is below the test estimate's standard error (≈ 0.008 over 5000 points): the target is met
  by the pre-declared protocol (settings chosen on val, median of 3 seeds), not by a wide margin.
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=6000)
    ap.add_argument("--components", type=int, default=20)
    ap.add_argument("--hidden", default="128,128")
    ap.add_argument("--act", default="silu")
    ap.add_argument("--noise-x", type=float, default=0.0, help="mdn noise_x (training-loss noise on x)")
    ap.add_argument("--noise-cond", type=float, default=0.01, help="mdn noise_cond (training-loss noise on t; 0.01 won on val)")
    ap.add_argument("--dropout", type=float, default=0.0)
    ap.add_argument("--members", type=int, default=3, help="mdn members (an ensemble of M MDNs; 3 won on val)")
    ap.add_argument("--min-std", type=float, default=1e-3)
    ap.add_argument("--wd", type=float, default=0.0, help="AdamW weight decay")
    ap.add_argument("--ema", type=float, default=0.0, help="EMA decay of the exported weights (0 = off; with warm-up)")
    ap.add_argument("--cond-scale", type=float, default=None, help="feed the network (t − ½)·s instead of t")
    ap.add_argument("--n-train", type=int, default=1000, help="training points (1000 = the textbook's set)")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--seed0", type=int, default=0, help="first seed")
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--final", action="store_true", help="mark this row as the default settings' result; "
                    "save the best-validating model and redraw docs/img/mdn_bishop.png")
    ap.add_argument("--no-record", action="store_true", help="do not append to benchmarks/results/mdn_bishop.jsonl")
    ap.add_argument("--report", action="store_true", help="only rewrite mdn_bishop.md from mdn_bishop.jsonl")
    ap.add_argument("--plot-only", action="store_true", help="redraw the picture from runs/bench-mdn-bishop")
    args = ap.parse_args()
    torch.set_num_threads(1)
    args.hidden = tuple(int(h) for h in args.hidden.split(","))
    if args.report:
        return report()
    if args.plot_only:
        return plot(gl.load(ROOT / "runs" / "bench-mdn-bishop"), ROOT / "docs" / "img" / "mdn_bishop.png")
    st = settings_of(args)
    model_kw = dict(noise_x=args.noise_x, noise_cond=args.noise_cond, dropout=args.dropout, members=args.members,
                    min_std=args.min_std)
    results, models = [], []
    for s in range(args.seed0, args.seed0 + args.seeds):
        model, rec, ntr, nte = run(s, args.steps, args.components, args.hidden, args.batch, args.lr, args.act,
                                   args.n_train, model_kw, dict(weight_decay=args.wd, ema=args.ema), args.cond_scale)
        results.append(rec)
        models.append(model)
        print(json.dumps(rec), flush=True)
    test = gl.load_dataset("bishop", split="test")
    # The seeds' models averaged: p(x|t) = (1/S) Σ_s p_s(x|t), itself an MDN with S·K components.
    with torch.no_grad():
        lps = torch.stack([m.log_prob(test.x, cond=test.y) for m in models])
        mix = float(-(torch.logsumexp(lps, 0) - np.log(len(models))).mean())
    out = dict(settings=st, runs=results, seed_mixture_test_nll=mix,
               median_val_nll=float(np.median([r["val_nll"] for r in results])),
               median_test_nll=float(np.median([r["test_nll"] for r in results])), final=args.final,
               commit=commit(), date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), machine=machine(),
               n_test=nte, command="python benchmarks/mdn_bishop.py " + " ".join(sys.argv[1:]))
    print(json.dumps(out, indent=1))
    if args.final and args.n_train == 1000:
        best = min(zip([r["val_nll"] for r in results], range(len(models))))[1]      # chosen on validation
        models[best].save_pretrained(ROOT / "runs" / "bench-mdn-bishop")
        plot(models[best], ROOT / "docs" / "img" / "mdn_bishop.png")
    if not args.no_record:
        with RAW.open("a") as f:
            f.write(json.dumps(out) + "\n")
        report()


def commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True).stdout.strip()
    except OSError:
        return "?"


if __name__ == "__main__":
    main()
