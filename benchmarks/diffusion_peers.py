"""genlab's DDPM/DDIM samplers and forward process side by side with diffusers' DDPMScheduler /
DDIMScheduler, driving the SAME trained genlab network, in one process, interleaved.

    /work/peers-venv/bin/python benchmarks/diffusion_peers.py --tag mlp-eps-lin [--repeats 5]
    /work/peers-venv/bin/python benchmarks/diffusion_peers.py --report

Network: a saved genlab DDPM (benchmarks/diffusion_bound.py → runs/diffusion_bound/<tag>; ε-prediction,
linear β, fixed-small variance β̃, x̂₀ clipped to [−1, 1]). diffusers gets the same betas
(``trained_betas``), ``variance_type="fixed_small"``, ``clip_sample=True``, ``prediction_type="epsilon"``
``use_clipped_model_output=True`` for DDIM (genlab recomputes ε̂ from the clipped x̂₀; diffusers' default
does not), and the same timesteps (genlab's evenly spaced subset incl. 0 and T−1, passed as ``timesteps=`` to
DDPMScheduler and as ``timestep_spacing="linspace"`` to DDIMScheduler, which gives the same subset).
Each network call is ``model.net`` on the same (n, C, H, W) batch in both.

Timings: sampling n images at each step count, genlab and diffusers alternated within each repeat
(order swapped every repeat); medians of the repeats; wall per NFE and the ratio diffusers/genlab
(> 1: genlab faster). Quality: feature FD/KID of the samples against the test split (shipped CNN; KID in its feature units).
Training: steps/s of gl.train (the engine: Adam, grad clip, the DDPM loss with genlab's q_sample)
against a plain loop with diffusers' ``add_noise`` and the same network, loss, batch and optimiser.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import torch

import genlab as gl
from genlab.features import load_feature_net
from genlab.metrics.distances import frechet_distance, kid
from genlab.models.ddpm import spaced_timesteps

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parent
RES = ROOT / "results"
RUNS = ROOT.parent / "runs" / "diffusion_bound"
OUT = RES / "diffusion_peers.json"
CLIPPED_EPS = True   # DDIM: recompute ε from the clipped x̂₀ as genlab does (diffusers' default False)


def diffusers_sample(model, sched_cls, n, steps, generator, eta=None):
    from diffusers import DDIMScheduler, DDPMScheduler
    betas = model.schedule.betas.float().numpy()
    T = model.config.T
    common = dict(num_train_timesteps=T, trained_betas=betas, clip_sample=True, prediction_type="epsilon")
    if sched_cls == "ddpm":
        s = DDPMScheduler(variance_type="fixed_small", **common)
        s.set_timesteps(timesteps=spaced_timesteps(T, steps).flip(0).tolist())
    else:
        s = DDIMScheduler(timestep_spacing="linspace", set_alpha_to_one=True, **common)
        s.set_timesteps(steps)
    x = torch.randn((n, *model.info.shape), generator=generator)
    null = None if model.num_classes is None else torch.full((n,), model.num_classes, dtype=torch.long)
    with torch.no_grad():
        for t in s.timesteps:
            tt = torch.full((n,), float(t) / T)
            eps = model._net(x, tt, null)
            kw = dict(generator=generator) if sched_cls == "ddpm" else \
                dict(eta=eta or 0.0, generator=generator, use_clipped_model_output=CLIPPED_EPS)
            x = s.step(eps, int(t), x, **kw).prev_sample
    return model.from_model(x), len(s.timesteps)


def genlab_sample(model, sampler, n, steps, generator):
    x = model.sample(n, generator=generator, steps=steps, sampler=sampler, **({"eta": 0.0} if sampler == "ddim" else {}))
    return x, model.last_nfe


def timed(fn):
    t, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - t, time.process_time() - c


def train_compare(model_tag, steps, repeats, batch=128):
    """steps/s: gl.train vs a plain loop with diffusers' add_noise (same net, loss, batch, Adam, clip)."""
    from diffusers import DDPMScheduler
    tr = gl.load_dataset("digits")
    base = gl.load(RUNS / model_tag)
    rows = []
    for r in range(repeats):
        order = ["genlab", "diffusers"] if r % 2 == 0 else ["diffusers", "genlab"]
        for who in order:
            torch.manual_seed(r)
            m = gl.create("ddpm", data=tr, **{k: getattr(base.config, k) for k in
                                              ("network", "width", "depth", "channels", "schedule", "T",
                                               "parameterization", "variance", "cond_drop")})
            if who == "genlab":
                _, w, c = timed(lambda: gl.train(m, tr, steps=steps, batch_size=batch, lr=2e-3, seed=r, progress=False,
                                                 checkpoint_every=0, eval_every=-1, sample_every=-1))
            else:
                s = DDPMScheduler(num_train_timesteps=m.config.T, trained_betas=m.schedule.betas.float().numpy())
                opt = torch.optim.Adam(m.parameters(), lr=2e-3)
                x_all = m.to_model(tr.x)
                g = torch.Generator().manual_seed(r)

                def loop():
                    m.train()
                    for _ in range(steps):
                        idx = torch.randint(0, len(x_all), (batch,), generator=g)
                        x0 = x_all[idx]
                        t = torch.randint(0, m.config.T, (batch,), generator=g)
                        eps = torch.randn(x0.shape, generator=g)
                        xt = s.add_noise(x0, eps, t)
                        y = torch.full((batch,), m.num_classes, dtype=torch.long) if m.num_classes else None
                        loss = ((m._net(xt, t.float() / m.config.T, y) - eps) ** 2).mean()
                        opt.zero_grad(set_to_none=True)
                        loss.backward()
                        torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
                        opt.step()
                _, w, c = timed(loop)
            rows.append(dict(who=who, repeat=r, steps=steps, wall_s=round(w, 3), cpu_s=round(c, 3),
                             load=round(os.getloadavg()[0], 2)))
            print(json.dumps(rows[-1]), flush=True)
    return rows


def main(a):
    model = gl.load(RUNS / a.tag)
    model.eval()
    te = gl.load_dataset("digits", split="test")
    fnet = load_feature_net("digits")
    f_te = fnet.features(te.x)
    res = dict(tag=a.tag, n=a.n, repeats=a.repeats, date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
               features=fnet.describe(), sampling=[], quality=[], training=[])
    import diffusers
    res["diffusers"] = diffusers.__version__
    res["ddim_use_clipped_model_output"] = CLIPPED_EPS
    for steps in [int(s) for s in a.steps.split(",")]:
        for kind in ("ddpm", "ddim"):
            for r in range(a.repeats):
                order = ["genlab", "diffusers"] if r % 2 == 0 else ["diffusers", "genlab"]
                for who in order:
                    g = torch.Generator().manual_seed(1000 + r)
                    fn = (lambda: genlab_sample(model, kind, a.n, steps, g)) if who == "genlab" else \
                         (lambda: diffusers_sample(model, kind, a.n, steps, g))
                    (x, nfe), w, c = timed(fn)
                    rec = dict(sampler=kind, steps=steps, who=who, repeat=r, nfe=nfe, wall_s=round(w, 4),
                               cpu_s=round(c, 4), load=round(os.getloadavg()[0], 2))
                    res["sampling"].append(rec)
                    if r == 0:
                        f = fnet.features(x)
                        res["quality"].append(dict(sampler=kind, steps=steps, who=who,
                                                   fd=round(frechet_distance(f, f_te), 3),
                                                   kid=round(kid(f, f_te)["kid"], 5)))
                    print(json.dumps(rec), flush=True)
            OUT.write_text(json.dumps(res, indent=1))
    if a.train_steps:
        res["training"] = train_compare(a.tag, a.train_steps, a.repeats)
    res["load_end"] = round(os.getloadavg()[0], 2)
    OUT.write_text(json.dumps(res, indent=1))


def report(a):
    d = json.loads(OUT.read_text())
    med = lambda xs: statistics.median(xs)  # noqa: E731
    L = ["# genlab vs diffusers: DDPM / DDIM samplers and the forward process on digits", "",
         f"`/work/peers-venv/bin/python benchmarks/diffusion_peers.py --tag {d['tag']} --repeats {d['repeats']}` — "
         f"date {d['date']}, machine: 2-core CPU shared with other sessions, torch 2.13.0, 1 thread, `nice -n 5`; "
         f"diffusers {d['diffusers']}. Same trained genlab network (`runs/diffusion_bound/{d['tag']}`: ε-prediction, "
         "linear β, T = 1000, fixed-small β̃, x̂₀ clipped) driven by genlab's sampler and by diffusers' "
         "DDPMScheduler / DDIMScheduler with the same betas, variance, clipping and timesteps; "
         f"diffusers DDIM `use_clipped_model_output={d.get('ddim_use_clipped_model_output', False)}`; "
         f"{d['n']} images per call; {d['repeats']} repeats, genlab and diffusers alternated (order swapped each "
         "repeat); medians. Ratio = diffusers wall / genlab wall (> 1: genlab faster).", "",
         "| sampler | steps (NFE) | genlab ms/NFE (CPU) | diffusers ms/NFE (CPU) | ratio | genlab FD / KID | "
         "diffusers FD / KID | load |",
         "|---|---|---|---|---|---|---|---|"]
    keys = sorted({(r["sampler"], r["steps"]) for r in d["sampling"]}, key=lambda k: (k[0], k[1]))
    for kind, steps in keys:
        rs = [r for r in d["sampling"] if r["sampler"] == kind and r["steps"] == steps]
        g = [r for r in rs if r["who"] == "genlab"]
        p = [r for r in rs if r["who"] == "diffusers"]
        nfe = g[0]["nfe"]
        gw, pw = med([r["wall_s"] for r in g]), med([r["wall_s"] for r in p])
        gc, pc = med([r["cpu_s"] for r in g]), med([r["cpu_s"] for r in p])
        ratio = med([pp["wall_s"] / gg["wall_s"] for gg, pp in zip(sorted(g, key=lambda r: r["repeat"]),
                                                                     sorted(p, key=lambda r: r["repeat"]))])
        q = {r["who"]: r for r in d["quality"] if r["sampler"] == kind and r["steps"] == steps}
        fq = lambda r: f"{r['fd']:.2f} / {r['kid']:.2f}" if r else "–"  # noqa: E731
        L.append(f"| {kind} | {steps} ({nfe}) | {1e3 * gw / nfe:.2f} ({1e3 * gc / nfe:.2f}) | {1e3 * pw / nfe:.2f} "
                 f"({1e3 * pc / nfe:.2f}) | {ratio:.2f} | {fq(q.get('genlab'))} | {fq(q.get('diffusers'))} | "
                 f"{med([r['load'] for r in rs]):.1f} |")
    if d.get("training"):
        tr = d["training"]
        g = sorted([r for r in tr if r["who"] == "genlab"], key=lambda r: r["repeat"])
        p = sorted([r for r in tr if r["who"] == "diffusers"], key=lambda r: r["repeat"])
        st = g[0]["steps"]
        gms, pms = med([1e3 * r["cpu_s"] / st for r in g]), med([1e3 * r["cpu_s"] / st for r in p])
        L += ["", f"Training, {st} steps of batch 128 per repeat (same network, ε-MSE loss, Adam 2e-3, grad clip 1): "
              f"genlab `gl.train` (engine + genlab's q_sample) {st / med([r['wall_s'] for r in g]):.1f} steps/s "
              f"({gms:.1f} ms CPU/step) vs a plain loop with diffusers' `add_noise` "
              f"{st / med([r['wall_s'] for r in p]):.1f} steps/s ({pms:.1f} ms CPU/step); paired ratio genlab/diffusers "
              f"steps/s by wall = **{med([pp['wall_s'] / gg['wall_s'] for gg, pp in zip(g, p)]):.2f}**, by CPU = "
              f"**{med([pp['cpu_s'] / gg['cpu_s'] for gg, pp in zip(g, p)]):.2f}** (median of {len(g)} paired repeats)."]
    (RES / "diffusion_peers.md").write_text("\n".join(L) + "\n")
    print("\n".join(L))


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--tag", default="mlp-eps-lin")
    p.add_argument("--n", type=int, default=447)
    p.add_argument("--steps", default="10,50,100,1000")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--train-steps", dest="train_steps", type=int, default=600)
    p.add_argument("--ddim-default-eps", dest="ddim_default_eps", action="store_true",
                   help="diffusers DDIM with its default use_clipped_model_output=False")
    p.add_argument("--report", action="store_true")
    a = p.parse_args()
    CLIPPED_EPS = not a.ddim_default_eps
    report(a) if a.report else main(a)
