"""Sample quality against NFE with the feature-network distances (FD, KID) on digits / mnist5k, for
DDPM (ancestral), DDIM (η = 0), flow matching (cfm), rectified flow and rectified flow after one
reflow; plus the flow-matching ODE likelihood. Results → benchmarks/results/diffusion_nfe_<data>.json.

    python benchmarks/diffusion_nfe.py run --data digits --ddpm-tag mlp-lev-lin --steps 3000
    python benchmarks/diffusion_nfe.py report

The DDPM is a saved model of benchmarks/diffusion_bound.py (runs/diffusion_bound/<tag>); flow matching,
rectified flow and reflow are trained here with the same network and budget (unconditional: the labels
are removed). Quality: n samples (seed 0) against the test split, features of the shipped CNN for the
data set (genlab.features, its sha256 recorded); FD (Fréchet distance of Gaussian fits) and KID
(unbiased polynomial MMD², subsets of min(n, n_test)). Reference: the same distances between the train
split (first n images) and the test split. DDPM/DDIM use ``steps`` evenly spaced of the T steps (steps
1 = one step from t = T−1); FM-family models use Euler with ``steps`` = NFE. Reflow target: 4 NFE
within 10 % of its own 100-NFE FD.
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import math
import os
import time
from pathlib import Path

import torch

import genlab as gl
from genlab.features import load_feature_net
from genlab.metrics.distances import frechet_distance, kid

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parent
RES = ROOT / "results"
RUNS = ROOT.parent / "runs"


def unlabelled(ds):
    return dataclasses.replace(ds, y=None, info=dataclasses.replace(ds.info, cond=None, num_classes=None))


class Timer:
    def __enter__(self):
        self.t, self.c = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall, self.cpu = round(time.perf_counter() - self.t, 1), round(time.process_time() - self.c, 1)
        self.load = round(os.getloadavg()[0], 2)

    def rec(self):
        return dict(wall_s=self.wall, cpu_s=self.cpu, load=self.load)


def _commit():
    try:
        import subprocess
        return subprocess.check_output(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True).strip()
    except Exception:
        return "?"


def run(a):
    tr = gl.load_dataset(a.data)
    te = gl.load_dataset(a.data, split="test")
    fnet = load_feature_net(a.data)
    f_te = fnet.features(te.x)
    n = a.n or len(te)
    out = Path(a.out) if a.out else RES / f"diffusion_nfe_{a.data}.json"
    global RUNS
    RUNS = Path(a.runs) if a.runs else RUNS
    res = dict(data=a.data, n_samples=n, n_test=len(te), features=fnet.describe(), ddpm_tag=a.ddpm_tag,
               settings=dict(steps=a.steps, batch=128, lr=a.lr, network=a.network, width=a.width,
                             channels=a.channels, reflow_pairs=a.pairs, pair_solver="rk4 x25", ema=a.ema,
                             **({"prediction": a.prediction} if a.prediction != "velocity" else {})),
               date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), timings={}, commit=_commit())
    f_tr = fnet.features(tr.x[:n])
    res["reference_train_vs_test"] = dict(fd=round(frechet_distance(f_tr, f_te), 3),
                                          kid=round(kid(f_tr, f_te)["kid"], 5), n_train=n)

    def quality(x):
        f = fnet.features(x)
        return dict(fd=round(frechet_distance(f, f_te), 3), kid=round(kid(f, f_te)["kid"], 5))

    ddpm = gl.load(RUNS / "diffusion_bound" / a.ddpm_tag)
    ddpm.eval()
    res["ddpm_config"] = {k: v for k, v in dataclasses.asdict(ddpm.config).items()
                          if k in ("network", "width", "channels", "T", "schedule", "parameterization", "variance")}
    tru = unlabelled(tr)
    net = dict(network=a.network, width=a.width, depth=3) if a.network == "mlp" else dict(network="unet", channels=a.channels)
    net["prediction"] = a.prediction

    saved = RUNS / "diffusion_nfe"

    def fit(make, data, key):
        """``make()`` then train on ``data`` (a data set, or a callable giving one after ``make()``); with
        --reuse, load the model an earlier run with the same settings saved under runs/diffusion_nfe."""
        d = saved / f"{a.data}_{key}"
        if a.reuse and (d / "nfe_train.json").exists():
            info = json.loads((d / "nfe_train.json").read_text())
            if info["settings"] == res["settings"]:
                res["timings"].update({k: dict(v, reused_from=info["date"]) for k, v in info["timings"].items()})
                m = gl.load(d)
                m.eval()
                return m
        before = set(res["timings"])
        m = make()
        with Timer() as tm:
            r = gl.train(m, data() if callable(data) else data, steps=a.steps, batch_size=128, lr=a.lr,
                         schedule="cosine", seed=0, progress=False, ema=a.ema)
        m = r.model
        res["timings"][key] = tm.rec()
        m.eval()
        m.save_pretrained(d)
        mine = {k: v for k, v in res["timings"].items() if k not in before}
        (d / "nfe_train.json").write_text(json.dumps(dict(settings=res["settings"], timings=mine, date=res["date"])))
        return m

    torch.manual_seed(0)
    if a.train_only and "fm" not in a.train_keys.split(","):   # another process trains it (parallel training)
        fm = None
    else:
        fm = fit(lambda: gl.create("flow-matching", data=tru, path="cfm", **net), tru, "fm_train")
    if a.train_only and a.train_keys == "fm":
        return
    torch.manual_seed(0)
    rf = fit(lambda: gl.create("flow-matching", data=tru, path="rectified", **net), tru, "rectified_train")
    made = {}

    def make_reflow():   # pairs (noise, rk4 x25 end point) of the rectified flow; the reflow starts from it
        with Timer() as tm:
            made["pairs"] = rf.reflow_pairs(a.pairs, steps=25, sampler="rk4", generator=torch.Generator().manual_seed(1))
        res["timings"]["reflow_pairs"] = tm.rec()
        m = copy.deepcopy(rf)
        m.train()
        return m

    reflow = fit(make_reflow, lambda: made["pairs"], "reflow_train")
    if a.train_only:
        return
    if a.nll_only:   # recompute the ODE likelihood of the saved flow-matching model into the existing results
        res = json.loads(out.read_text())

    if a.ode_nll:
        with Timer() as tm:
            lp = torch.cat([fm.log_prob(te.x[i:i + 250], sampler="dopri5", rtol=1e-4, atol=1e-4,
                                        generator=torch.Generator().manual_seed(0)) for i in range(0, len(te), 250)])
        D = te.x[0].numel()
        nats = -lp.mean().item()
        res["fm_ode_nll"] = dict(nats=round(nats, 2), se=round(lp.std().item() / math.sqrt(len(lp)), 2),
                                 bpd=round(nats / (D * math.log(2)), 4), **fm.likelihood_info(), **tm.rec())
        print("fm ode nll", res["fm_ode_nll"], flush=True)
        if a.nll_only:
            out.write_text(json.dumps(res, indent=1))
            return

    models = dict(ddpm=(ddpm, dict(sampler="ddpm")), ddim=(ddpm, dict(sampler="ddim", eta=0.0)),
                  fm_euler=(fm, dict(sampler="euler")), rectified_euler=(rf, dict(sampler="euler")),
                  reflow_euler=(reflow, dict(sampler="euler")))
    table = []
    for nfe in [int(v) for v in a.nfes.split(",")]:
        row = dict(nfe=nfe)
        for key, (m, opts) in models.items():
            if key in a.skip_1000.split(",") and nfe >= 1000:
                continue
            with Timer() as tm:
                x = torch.cat([m.sample(min(500, n - i), generator=torch.Generator().manual_seed(i), steps=nfe, **opts)
                               for i in range(0, n, 500)])
            row[key] = dict(**quality(x), sample_wall_s=tm.wall, sample_cpu_s=tm.cpu)
        table.append(row)
        print(json.dumps(row), flush=True)
        res["nfe_table"] = table
        out.write_text(json.dumps(res, indent=1))
    res["load_end"] = round(os.getloadavg()[0], 2)
    out.write_text(json.dumps(res, indent=1))


def report_lines(data):
    p = RES / f"diffusion_nfe_{data}.json"
    if not p.exists():
        return []
    d = json.loads(p.read_text())
    keys = ["ddpm", "ddim", "fm_euler", "rectified_euler", "reflow_euler"]
    ref = d["reference_train_vs_test"]
    s = d["settings"]
    L = [f"FD / KID of {d['n_samples']} samples against the {d['n_test']} {data} test images "
         f"(features `{d['features']['name']}` sha256 {str(d['features']['sha256'])[:12]}…); reference train "
         f"(first {ref['n_train']}) vs test: **FD {ref['fd']:.2f}, KID {ref['kid']:.2f}** (KID in the CNN's feature units). DDPM = saved "
         f"`{d['ddpm_tag']}` ({', '.join(f'{k}={v}' for k, v in d['ddpm_config'].items() if not (k == 'channels' and d['ddpm_config'].get('network') == 'mlp'))}); FM/rectified/reflow: {s['network']} "
         f"{s['width'] if s['network'] == 'mlp' else s['channels']}, {s['steps']} steps, batch 128, lr {s['lr']} "
         f"cosine{', EMA ' + str(s['ema']) + ' (with warm-up)' if s.get('ema') else ''}, prediction `{s.get('prediction', 'velocity')}`, reflow on {s['reflow_pairs']} pairs "
         f"({s['pair_solver']}).", "",
         "| NFE | DDPM | DDIM (η=0) | FM Euler | rectified Euler | rectified + reflow Euler |",
         "|---|---|---|---|---|---|"]
    for r in d.get("nfe_table", []):
        cells = [f"{r[k]['fd']:.2f} / {r[k]['kid']:.2f}" if k in r else "–" for k in keys]
        L.append(f"| {r['nfe']} | " + " | ".join(cells) + " |")
    tab = {r["nfe"]: r for r in d.get("nfe_table", [])}
    if 4 in tab and 100 in tab and "reflow_euler" in tab[4] and "reflow_euler" in tab[100]:
        x4, x100 = tab[4]["reflow_euler"]["fd"], tab[100]["reflow_euler"]["fd"]
        L += ["", f"Reflow target (4 NFE within 10 % of its own 100-NFE quality), feature FD: {x4:.2f} vs {x100:.2f} → "
              f"**{'met' if x4 <= 1.1 * x100 else 'not met'}** ({(x4 / x100 - 1) * 100:+.0f} %)."]
    tm = d["timings"]
    L += ["", "Training / pair generation wall s (CPU s, load): " + ", ".join(
        f"{k} {v['wall_s']} ({v['cpu_s']}, {v['load']})" for k, v in tm.items()) + "." +
        (f" (Models trained {next(iter(tm.values()))['reused_from']} and reused.)"
         if tm and "reused_from" in next(iter(tm.values())) else "")]
    cells = [c for r in d.get("nfe_table", []) for k, c in r.items() if k != "nfe" and "sample_cpu_s" in c]
    if cells:
        L.append(f"Sampling all cells: {sum(c['sample_wall_s'] for c in cells):.0f} s wall, "
                 f"{sum(c['sample_cpu_s'] for c in cells):.0f} s CPU; load at end {d.get('load_end')}.")
    if "fm_ode_nll" in d:
        f = d["fm_ode_nll"]
        how = ("one uniform dequantisation draw" if f["method"] == "instantaneous change of variables"
               else f"{f['method']}, one draw")
        L.append(f"Flow-matching ODE likelihood (kind `{f['kind']}`, dopri5 1e-4, Hutchinson trace, {how}): "
                 f"**{f['nats']} ± {f['se']} nats/image = {f['bpd']} bits/dim** on the test split "
                 f"({f['wall_s']} s wall, {f['cpu_s']} s CPU).")
    return L


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("what", choices=["run", "report"])
    p.add_argument("--data", default="digits")
    p.add_argument("--ddpm-tag", dest="ddpm_tag", default="mlp-lev-lin")
    p.add_argument("--network", default="mlp", choices=["mlp", "unet"])
    p.add_argument("--width", type=int, default=256)
    p.add_argument("--channels", type=int, default=32)
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--pairs", type=int, default=1000)
    p.add_argument("--n", type=int, default=None, help="samples per cell (default: size of the test split)")
    p.add_argument("--nfes", default="1,2,4,8,16,32,100,1000")
    p.add_argument("--skip-1000", dest="skip_1000", default="", help="columns to skip at NFE ≥ 1000")
    p.add_argument("--ode-nll", dest="ode_nll", type=int, default=1)
    p.add_argument("--out", default=None, help="results JSON (default benchmarks/results/diffusion_nfe_<data>.json)")
    p.add_argument("--runs", default=None, help="models folder (default runs/; DDPMs under <runs>/diffusion_bound)")
    p.add_argument("--train-only", dest="train_only", type=int, default=0,
                   help="1: train and save the FM/rectified/reflow models, then stop (a later run reuses them)")
    p.add_argument("--prediction", default="velocity", choices=["velocity", "mixture"],
                   help="what the FM/rectified/reflow networks predict (mixture: x̂₁ as a posterior mean, 256-level data)")
    p.add_argument("--train-keys", dest="train_keys", default="fm,rectified",
                   help="with --train-only: 'fm' trains flow matching only, 'rectified' rectified flow and its reflow "
                        "only (run the two in parallel processes, then the table with --reuse 1)")
    p.add_argument("--nll-only", dest="nll_only", type=int, default=0,
                   help="1: only (re)compute the flow-matching ODE likelihood of the saved model into the results JSON")
    p.add_argument("--ema", type=float, default=0.0, help="EMA decay of the FM/rectified/reflow weights (0 = off)")
    p.add_argument("--reuse", type=int, default=1,
                   help="1: load FM/rectified/reflow models saved under runs/diffusion_nfe by a run with the same "
                        "settings instead of training them again")
    a = p.parse_args()
    if a.what == "report":
        for d in ("digits", "mnist5k"):
            print("\n".join(report_lines(d)))
    else:
        run(a)
