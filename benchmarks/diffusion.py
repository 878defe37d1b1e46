"""Diffusion / score / flow-matching benchmarks (results → benchmarks/results/diffusion_*.json|md).

    python benchmarks/diffusion.py toys   [--steps 1500] [--toys 8gaussians,moons,...]
    python benchmarks/diffusion.py digits [--steps 2000]

toys:   for each 2-D toy, flow matching (cfm) and score-sde (VP) trained with the same budget;
        ODE likelihood KL gap (test NLL − true entropy; exact trace, dopri5 rtol=atol=1e-5, 1000
        test points) and energy distance of 2000 samples to 2000 held-out points.
digits: DDPM (ε, linear, T=1000) bound in nats/image and bits/dim on the test split (447 images);
        flow-matching (conditional, CFG dropout 0.1) ODE likelihood (Hutchinson, 1 dequantisation
        draw); sample quality (energy distance on pixels in [0,1] to the test split) vs NFE for
        DDPM, DDIM, FM (Euler), rectified flow (Euler) and rectified after one reflow; a picture of
        class-conditional FM samples across guidance weights w.
All runs: 1 thread, nice, seed 0; the machine was shared with other sessions (load stated in the md).
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import os
import sys
import time
from pathlib import Path

import torch

import genlab as gl

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parent
RES = ROOT / "results"
TOYS = ["8gaussians", "checkerboard", "pinwheel", "2spirals", "moons", "circles", "swissroll", "rings"]
NFES = [1, 2, 4, 8, 16, 32, 100, 1000]


def energy_distance(x, y):
    try:
        from genlab.metrics.distances import energy_distance as ed
        return float(ed(x, y))
    except Exception:
        x, y = x.double(), y.double()
        return (2 * torch.cdist(x, y).mean() - torch.cdist(x, x).mean() - torch.cdist(y, y).mean()).item()


def load():
    return os.getloadavg()[0]


def toys(args):
    out = []
    for name in args.toys.split(","):
        tr = gl.load_dataset(name)
        te = gl.load_dataset(name, split="test")
        fams = [("flow-matching", dict(path="cfm"))]
        if name in args.sde_toys.split(","):
            fams.append(("score-sde", dict(sde="vp")))
        for fam, kw in fams:
            torch.manual_seed(0)
            m = gl.create(fam, data=tr, width=128, depth=3, **kw)
            t0 = time.perf_counter()
            gl.train(m, tr, steps=args.steps, batch_size=256, lr=2e-3, seed=0, progress=False, schedule="cosine")
            t_train = time.perf_counter() - t0
            t0 = time.perf_counter()
            with torch.no_grad():
                lp = torch.cat([m.log_prob(te.x[i:i + 250]) for i in range(0, args.n_nll, 250)])
            t_nll = time.perf_counter() - t0
            nll = -lp.mean().item()
            opts = dict(sampler="dopri5", rtol=1e-4, atol=1e-4) if fam == "flow-matching" else dict(sampler="em", steps=500)
            x = m.sample(2000, generator=torch.Generator().manual_seed(0), **opts)
            rec = dict(toy=name, family=fam, config=kw, train_steps=args.steps, train_s=round(t_train, 1),
                       test_nll=round(nll, 4), entropy=te.entropy, kl_gap=round(nll - te.entropy, 4),
                       nll_se=round(lp.std().item() / math.sqrt(len(lp)), 4), nll_s=round(t_nll, 1),
                       energy_distance=round(energy_distance(x, te.x[:2000]), 5), sampler=opts,
                       data_vs_data=round(energy_distance(tr.x[:2000], te.x[:2000]), 5), load=round(load(), 1),
                       n_nll=args.n_nll)
            print(json.dumps(rec), flush=True)
            out.append(rec)
            with open(RES / "diffusion_toys.json", "w") as f:
                json.dump(out, f, indent=1)


def _px(x):   # digits levels → [0, 1] pixels, flattened
    return x.reshape(x.shape[0], -1).float() / 16.0


def unlabelled(ds):
    import dataclasses
    return dataclasses.replace(ds, y=None, info=dataclasses.replace(ds.info, cond=None, num_classes=None))


def reflow_only(args):
    """Re-run only the unconditional rectified flow + reflow columns of the digits table."""
    tr = unlabelled(gl.load_dataset("digits"))
    te = gl.load_dataset("digits", split="test")
    ref = _px(te.x)
    res = {"settings": {"steps": args.steps}, "nfe_table": [{"nfe": int(v)} for v in args.nfes.split(",")]}
    net = dict(network="mlp", width=256, depth=3)
    torch.manual_seed(0)
    rf = gl.create("flow-matching", data=tr, path="rectified", **net)
    t0 = time.perf_counter()
    gl.train(rf, tr, steps=args.steps, batch_size=128, lr=2e-3, seed=0, progress=False, schedule="cosine")
    res["rectified_train_s"] = round(time.perf_counter() - t0, 1)
    t0 = time.perf_counter()
    pairs = rf.reflow_pairs(args.pairs, steps=25, sampler="rk4", generator=torch.Generator().manual_seed(1))
    res["reflow_pairs_s"] = round(time.perf_counter() - t0, 1)
    reflow = copy.deepcopy(rf)
    t0 = time.perf_counter()
    gl.train(reflow, pairs, steps=args.steps, batch_size=128, lr=2e-3, seed=0, progress=False, schedule="cosine")
    res["reflow_train_s"] = round(time.perf_counter() - t0, 1)
    res["settings"]["reflow_pairs"] = args.pairs
    res["reflow_rerun_note"] = "rectified/reflow columns re-run unconditionally (first run used untrained label embeddings)"
    for row in res["nfe_table"]:
        for key, mdl in (("rectified_euler", rf), ("reflow_euler", reflow)):
            x = mdl.sample(len(te), generator=torch.Generator().manual_seed(0), sampler="euler", steps=row["nfe"])
            row[key] = round(energy_distance(_px(x), ref), 5)
        print(row, flush=True)
        with open(RES / "diffusion_reflow.json", "w") as f:
            json.dump(res, f, indent=1)
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        x = reflow.sample(64, generator=torch.Generator().manual_seed(0), sampler="euler", steps=4)
        fig, ax = plt.subplots(figsize=(3, 3))
        ax.imshow(x.reshape(8, 8, 8, 8).permute(0, 2, 1, 3).reshape(64, 64), cmap="gray_r", vmin=0, vmax=16)
        ax.axis("off")
        fig.tight_layout()
        fig.savefig(ROOT.parent / "docs/img/reflow_digits_4nfe.png", dpi=70)
    except Exception as e:
        print("figure failed:", e, file=sys.stderr)


def digits(args):
    tr = gl.load_dataset("digits")
    te = gl.load_dataset("digits", split="test")
    ref = _px(te.x)
    res = {"settings": dict(steps=args.steps, batch_size=128, lr=2e-3, network="mlp width 256 depth 3"), "load": []}
    net = dict(network="mlp", width=256, depth=3)

    def fit(model, data, steps):
        t0 = time.perf_counter()
        gl.train(model, data, steps=steps, batch_size=128, lr=2e-3, seed=0, progress=False, schedule="cosine")
        res["load"].append(round(load(), 1))
        return round(time.perf_counter() - t0, 1)

    def quality(model, nfe, **opts):
        x = model.sample(len(te), generator=torch.Generator().manual_seed(0), **opts)
        return round(energy_distance(_px(x), ref), 5), model.last_nfe

    torch.manual_seed(0)
    ddpm = gl.create("ddpm", data=tr, T=args.T, **net)
    res["ddpm_train_s"] = fit(ddpm, tr, args.steps)
    t0 = time.perf_counter()
    lp = ddpm.log_prob(te.x)
    nats = -lp.mean().item()
    res["ddpm_bound"] = dict(nats_per_image=round(nats, 2), bits_per_dim=round(nats / (64 * math.log(2)), 4),
                             se=round(lp.std().item() / math.sqrt(len(lp)), 2), eval_s=round(time.perf_counter() - t0, 1))
    print("ddpm bound", res["ddpm_bound"], flush=True)

    torch.manual_seed(0)
    fm = gl.create("flow-matching", data=tr, path="cfm", **net)
    res["fm_train_s"] = fit(fm, tr, args.steps)
    torch.manual_seed(0)
    tr_u = unlabelled(tr)
    rf = gl.create("flow-matching", data=tr_u, path="rectified", **net)   # unconditional
    res["rectified_train_s"] = fit(rf, tr_u, args.steps)
    t0 = time.perf_counter()
    pairs = rf.reflow_pairs(args.pairs, steps=25, sampler="rk4", generator=torch.Generator().manual_seed(1))
    reflow = copy.deepcopy(rf)
    res["reflow_pairs_s"] = round(time.perf_counter() - t0, 1)
    res["reflow_train_s"] = fit(reflow, pairs, args.steps)
    res["settings"]["reflow_pairs"] = args.pairs

    t0 = time.perf_counter()
    lpf = fm.log_prob(te.x, sampler="dopri5", rtol=1e-4, atol=1e-4, generator=torch.Generator().manual_seed(0))
    nf = -lpf.mean().item()
    res["fm_ode_nll"] = dict(nats_per_image=round(nf, 2), bits_per_dim=round(nf / (64 * math.log(2)), 4),
                             se=round(lpf.std().item() / math.sqrt(len(lpf)), 2), eval_s=round(time.perf_counter() - t0, 1),
                             **fm.likelihood_info())
    print("fm ode nll", res["fm_ode_nll"], flush=True)

    table = []
    for nfe in [int(v) for v in args.nfes.split(",")]:
        row = {"nfe": nfe}
        row["ddpm"] = quality(ddpm, nfe, sampler="ddpm", steps=nfe)[0]
        row["ddim"] = quality(ddpm, nfe, sampler="ddim", steps=nfe)[0]
        row["fm_euler"] = quality(fm, nfe, sampler="euler", steps=nfe)[0]
        row["rectified_euler"] = quality(rf, nfe, sampler="euler", steps=nfe)[0]
        row["reflow_euler"] = quality(reflow, nfe, sampler="euler", steps=nfe)[0]
        table.append(row)
        print(row, flush=True)
        res["nfe_table"] = table
        with open(RES / "diffusion_digits.json", "w") as f:
            json.dump(res, f, indent=1)
    res["data_vs_data"] = round(energy_distance(_px(tr.x[:447]), ref), 5)
    with open(RES / "diffusion_digits.json", "w") as f:
        json.dump(res, f, indent=1)
    # pictures: DDPM and FM samples; class-conditional FM across guidance w
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        ws = [0.0, 1.0, 2.0, 4.0]
        fig, axes = plt.subplots(1, len(ws), figsize=(2.6 * len(ws), 2.9))
        labels = torch.arange(10).repeat_interleave(6)
        for ax, w in zip(axes, ws):
            x = fm.sample(60, cond=labels, guidance=w, steps=50, sampler="heun", generator=torch.Generator().manual_seed(0))
            grid = x.reshape(10, 6, 8, 8).permute(0, 2, 1, 3).reshape(80, 48).float()
            ax.imshow(grid, cmap="gray_r", vmin=0, vmax=16)
            ax.set_title(f"w = {w:g}")
            ax.axis("off")
        fig.suptitle("flow matching on digits, classifier-free guidance (rows: class 0–9)")
        fig.tight_layout()
        fig.savefig(ROOT.parent / "docs/img/fm_digits_guidance.png", dpi=70)
        for nm, mdl, opts in (("ddpm_digits", ddpm, dict(sampler="ddpm", steps=args.T)),
                              ("reflow_digits_4nfe", reflow, dict(sampler="euler", steps=4))):
            x = mdl.sample(64, generator=torch.Generator().manual_seed(0), **opts)
            fig, ax = plt.subplots(figsize=(3, 3))
            ax.imshow(x.reshape(8, 8, 8, 8).permute(0, 2, 1, 3).reshape(64, 64), cmap="gray_r", vmin=0, vmax=16)
            ax.axis("off")
            fig.tight_layout()
            fig.savefig(ROOT.parent / f"docs/img/{nm}.png", dpi=70)
    except Exception as e:  # pictures are optional
        print("figure failed:", e, file=sys.stderr)


def report(args):
    """benchmarks/results/diffusion.md from the JSON results of the two runs."""
    L = ["# Diffusion, score and flow-matching benchmarks", "",
         "Machine: 2-core CPU, torch 2.13.0, 1 thread; date 2026-11-22. **The machine was heavily shared**: load "
         "average 7–27 on 2 cores during these runs (about eight other sessions training and testing; the `load` "
         "column and list give the 1-minute load at the end of each fit), so wall times are inflated several-fold "
         "against a quiet machine; they are reported as measured. The first attempt under `nice -n 10` received "
         "about 1 % of a core and was stopped; these runs used the default priority.", ""]
    tp = RES / "diffusion_toys.json"
    if tp.exists():
        rows = json.load(open(tp))
        st = rows[0]["train_steps"] if rows else "?"
        L += ["## 2-D toys: ODE likelihood KL gap and energy distance", "",
              f"`python benchmarks/diffusion.py toys --steps {st} --n-nll {rows[0].get('n_nll', 300) if rows else 300} "
              "--sde-toys 8gaussians,moons` — MLP (width 128, 3 residual blocks, "
              f"sinusoidal time embedding), {st} steps, batch 256, lr 2e-3 cosine, seed 0. KL gap = test NLL − true "
              "entropy (nats/point; ANCHORS.md entropies, k-NN estimates carry ≈0.01 bias) from the ODE likelihood "
              "(exact trace, dopri5 rtol=atol=1e-5, first test points ± s.e.); energy distance of 2000 samples "
              "(FM: dopri5 1e-4; score-sde: Euler–Maruyama 500 steps) to 2000 test points. Target gap ≤ 0.05.", "",
              "| toy | family | test NLL | KL gap ± s.e. | energy dist. | data vs data | train s | NLL s | load |",
              "|---|---|---|---|---|---|---|---|---|"]
        for r in rows:
            L.append(f"| {r['toy']} | {r['family']} | {r['test_nll']:.3f} | {r['kl_gap']:.3f} ± {r['nll_se']:.3f} | "
                     f"{r['energy_distance']:.4f} | {r['data_vs_data']:.4f} | {r['train_s']} | {r['nll_s']} | {r['load']} |")
        L.append("")
    dp = RES / "diffusion_digits.json"
    if dp.exists():
        d = json.load(open(dp))
        rp = RES / "diffusion_reflow.json"
        if rp.exists():   # the unconditional rectified/reflow re-run replaces those columns
            r = json.load(open(rp))
            byn = {row["nfe"]: row for row in r["nfe_table"] if "reflow_euler" in row}
            for row in d.get("nfe_table", []):
                for k in ("rectified_euler", "reflow_euler"):
                    row[k] = byn[row["nfe"]][k] if row["nfe"] in byn else float("nan")
            for k in ("rectified_train_s", "reflow_pairs_s", "reflow_train_s"):
                d[k] = r.get(k)
            d["settings"]["reflow_pairs"] = r["settings"].get("reflow_pairs")
        se = d["settings"]
        L += ["## Digits (8×8, 17 levels; train 1000 / test 447)", "",
              f"`python benchmarks/diffusion.py digits --steps {se['steps']}` — every model an MLP denoiser "
              f"({se['network']}; the U-Net is the default for images but too slow for this shared machine), "
              f"{se['steps']} steps, batch {se['batch_size']}, lr {se['lr']} cosine, seed 0.", ""]
        if "ddpm_bound" in d:
            b = d["ddpm_bound"]
            L.append(f"- DDPM (ε, linear, T=1000, fixed β̃) variational bound on the test split: "
                     f"**{b['nats_per_image']} ± {b['se']} nats/image = {b['bits_per_dim']} bits/dim** "
                     f"(kind `bound`, discretised-Gaussian decoder, all 1000 terms, {b['eval_s']} s). "
                     "Anchors (ANCHORS.md): uniform 181.3, per-pixel categorical 106.4, VAE −ELBO 96.8.")
        if "fm_ode_nll" in d:
            b = d["fm_ode_nll"]
            L.append(f"- Flow matching (cfm, σ_min=1e-4, label dropout 0.1, unconditional evaluation) ODE likelihood: "
                     f"**{b['nats_per_image']} ± {b['se']} nats/image = {b['bits_per_dim']} bits/dim** (kind `estimate`: "
                     f"dopri5 1e-4, Hutchinson trace, one uniform dequantisation draw; {b['eval_s']} s).")
        L.append(f"- Training wall times (s): DDPM {d.get('ddpm_train_s')}, FM {d.get('fm_train_s')}, rectified "
                 f"{d.get('rectified_train_s')}, reflow pairs ({d['settings'].get('reflow_pairs', 5000)}, RK4 25 steps) {d.get('reflow_pairs_s')}, reflow "
                 f"{d.get('reflow_train_s')}; load averages at the end of each fit: {d.get('load')}.")
        L += ["", "Sample quality vs NFE: energy distance on pixels in [0, 1] between 447 samples and the 447 test "
              "images (lower is better; train-vs-test data: " + str(d.get("data_vs_data", "?")) + "). "
              "DDPM/DDIM use `steps` evenly spaced of the 1000; FM/rectified/reflow use Euler with `steps` = NFE.", "",
              "| NFE | DDPM | DDIM (η=0) | FM Euler | rectified Euler | rectified + reflow Euler |",
              "|---|---|---|---|---|---|"]
        for r in d.get("nfe_table", []):
            L.append(f"| {r['nfe']} | {r['ddpm']:.4f} | {r['ddim']:.4f} | {r['fm_euler']:.4f} | "
                     f"{r['rectified_euler']:.4f} | {r['reflow_euler']:.4f} |")
        tab = {r["nfe"]: r for r in d.get("nfe_table", [])}
        if 4 in tab and 100 in tab:
            a, b = tab[4]["reflow_euler"], tab[100]["reflow_euler"]
            L += ["", f"Reflow target (4 NFE within 10 % of its 100-NFE quality): {a:.4f} vs {b:.4f} → "
                  f"{'met' if a <= 1.1 * b else 'not met'} ({(a / b - 1) * 100:+.0f} %)."]
        L.append("")
    L += ["Notes (read before quoting):",
          "- The toy KL-gap target (≤ 0.05 nats) is **not met** with these short budgets (1000 steps, chosen so the "
          "runs finished on the loaded machine): gaps 0.07 (moons) to 0.45 (2spirals) for flow matching; the "
          "probability-flow ODE of score-sde is worse at equal steps. Toys missing from the table did not finish "
          "before the deadline.",
          "- The DDPM bound (243 nats/image) is worse than the uniform baseline: 800 steps of an MLP denoiser with "
          "β̃ variances leaves the early terms (t ≲ 10) and the decoder term large; the bound needs far longer "
          "training (and `variance=\"learned\"`, Nichol & Dhariwal) to be competitive. The ODE likelihood of flow "
          "matching (132 nats/image) is an estimate, not a bound of the same kind; do not rank the two by it.",
          "- At 1–2 NFE DDPM/DDIM take a single step from t = 999 (x̂₀ clipped), hence their poor scores there.",
          "- The first digits run trained the rectified flow with label dropout 1.0 on labelled data, so its reflow "
          "pairs used untrained label embeddings; those two columns come from `python benchmarks/diffusion.py reflow "
          "--steps 800 --pairs 1000` (unconditional data), merged here.",
          ""]
    L += ["Pictures: `docs/img/fm_digits_guidance.png` (class-conditional FM across w = 0, 1, 2, 4), "
          "`docs/img/ddpm_digits.png`, `docs/img/reflow_digits_4nfe.png`.",
          "Peers (torchcfm, diffusers) were not run side by side: no time left on this shared machine."]
    (RES / "diffusion.md").write_text("\n".join(L) + "\n")
    print("\n".join(L))


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("what", choices=["toys", "digits", "reflow", "report"])
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--toys", default=",".join(TOYS))
    p.add_argument("--n-nll", dest="n_nll", type=int, default=1000)
    p.add_argument("--nfes", default=",".join(map(str, NFES)))
    p.add_argument("--sde-toys", dest="sde_toys", default=",".join(TOYS), help="toys that also get a score-sde")
    p.add_argument("--T", type=int, default=1000)
    p.add_argument("--pairs", type=int, default=5000)
    a = p.parse_args()
    RES.mkdir(parents=True, exist_ok=True)
    if a.what == "report":
        report(a)
    elif a.what == "reflow":
        a.steps = a.steps or 2000
        reflow_only(a)
    elif a.what == "toys":
        a.steps = a.steps or 1500
        toys(a)
    else:
        a.steps = a.steps or 2000
        digits(a)
