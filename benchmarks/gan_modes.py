"""GAN mode coverage on ring8 / grid25 with the PacGAN / VEEGAN protocol (ANCHORS.md, issue 5).

    nice -n 5 python benchmarks/gan_modes.py --losses ns,minimax,lsgan,wgan,wgan-gp,hinge --seeds 0,1,2,3,4
    python benchmarks/gan_ebm_report.py            # rewrites benchmarks/results/gan_ebm.md

Per (dataset, loss, seed): an MLP GAN trained through ``gl.train`` (settings below, per loss from
``TUNED`` unless overridden on the command line), then 2500 samples scored by
``genlab.metrics.modes.mode_coverage``: modes captured, % high-quality samples (within 3σ of the
nearest mode), reverse KL of the HQ histogram over modes to uniform. One JSON line per run is
appended to ``benchmarks/results/gan_modes.jsonl`` (``--out`` for tuning runs elsewhere); the
report averages seeds (mean ± s.e.). Tuning used seeds ≥ 100; the reported seeds are 0–4.

Session 4, final (meets the target; R1 stage, then an unregularised stage at a lower lr; results/gan_ebm.md):
    nice -n 5 python benchmarks/gan_modes.py --losses ns --r1 0.1 --steps 8000 --steps2 8000 --lr2 2e-4 --data ring8,grid25 --tag s4b
Session 4, R1 throughout (all modes, grid25 HQ 94.0 %):
    nice -n 5 python benchmarks/gan_modes.py --losses ns --r1 0.1 --data grid25 --seeds 0,1,2,3,4 --tag s4 --drs
    nice -n 5 python benchmarks/gan_modes.py --losses ns --r1 0.1 --data ring8 --steps 9000 --seeds 0,1,2,3,4 --tag s4 --drs
(the saved samples runs/gan_modes/{data}-{loss}[-pacM][-drs]-s{seed}.pt do not name r1: a later run overwrites them)
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
import torch  # noqa: E402

import genlab as gl  # noqa: E402
from genlab.metrics.modes import mode_coverage  # noqa: E402
from gan_common import record, stamp  # noqa: E402

torch.set_num_threads(1)
RESULTS = Path(__file__).parent / "results"

# shared settings, then per-loss overrides (found on seeds >= 100; see gan_ebm.md)
# steps may be a per-dataset dict (the 25-mode grid needs longer than the ring)
# session 3: 6000 / 12000 steps (seed-101 trajectories: ring8 85 / 95 / 98 % HQ at 1500 / 3000 / 6000 steps,
# grid25 83 / 95 % at 4000 / 8000); session 2 ran 1500 / 2500 (rows tagged "final" in gan_modes.jsonl)
BASE = dict(steps={"ring8": 6000, "grid25": 12000}, batch=256, hidden=(128, 128, 128), latent=2, lr=1e-3,
            lr_d=None, lr_g=None, ema=0.99, ema_warmup=True, schedule="constant", pac=1, n_critic=0, betas=None,
            r1=0.0, steps2=0, lr2=2e-4)
TUNED = {
    "ns": {}, "minimax": {}, "lsgan": {}, "hinge": {},
    # 5 critic updates per step (the family's default): fewer steps for about the same CPU time (session 2)
    "wgan": dict(steps={"ring8": 300, "grid25": 500}, lr=5e-4),
    "wgan-gp": dict(steps={"ring8": 300, "grid25": 500}, lr=5e-4),
}


def settings(loss: str, over: dict, data: str) -> dict:
    s = {**BASE, **TUNED.get(loss, {})}
    if isinstance(s["steps"], dict):
        s["steps"] = s["steps"][data]
    s.update({k: v for k, v in over.items() if v is not None})
    return s


def run(data: str, loss: str, seed: int, s: dict, out: Path, tag: str, drs: bool = False) -> dict:
    tr = gl.load_dataset(data, split="train")
    torch.manual_seed(seed)
    kw = dict(loss=loss, hidden=tuple(s["hidden"]), latent_dim=s["latent"], pac=s["pac"], n_critic=s["n_critic"],
              lr_d=s["lr_d"], lr_g=s["lr_g"], r1=s.get("r1", 0.0))
    if s["betas"]:
        kw["betas"] = tuple(s["betas"])
    m = gl.create("gan", data=tr, **kw)
    t0, c0 = time.perf_counter(), time.process_time()
    r = gl.train(m, tr, steps=s["steps"], batch_size=s["batch"], lr=s["lr"], seed=seed, grad_clip=None,
                 ema=s["ema"], ema_warmup=s["ema_warmup"], schedule=s["schedule"], progress=False, eval_every=-1,
                 sample_every=-1)
    if s.get("steps2"):
        # second stage (session 4): the R1 stage finds every mode; a fresh model with r1=0 starts from its
        # (EMA) weights and trains on at a lower lr with fresh Adam/EMA state, which sharpens the modes
        m2 = gl.create("gan", data=tr, **{**kw, "r1": 0.0})
        m2.load_state_dict(r.model.state_dict())
        r = gl.train(m2, tr, steps=s["steps2"], batch_size=s["batch"], lr=s["lr2"], seed=seed + 1, grad_clip=None,
                     ema=s["ema"], ema_warmup=s["ema_warmup"], schedule=s["schedule"], progress=False,
                     eval_every=-1, sample_every=-1)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    x = r.model.sample(2500, generator=torch.Generator().manual_seed(1000 + seed))
    cov = mode_coverage(x, tr.extras["modes"])
    Path("runs/gan_modes").mkdir(parents=True, exist_ok=True)      # samples for figures (git-ignored)
    pac = f"-pac{s['pac']}" if s["pac"] > 1 else ""
    torch.save(x, f"runs/gan_modes/{data}-{loss}{pac}-s{seed}.pt")
    rec = {"tag": tag, "data": data, "loss": loss, "seed": seed, **{k: (list(v) if isinstance(v, tuple) else v)
                                                                     for k, v in s.items()},
           "modes": cov["modes_captured"], "num_modes": cov["num_modes"], "hq_pct": cov["high_quality_pct"],
           "reverse_kl": cov["reverse_kl"], "counts": cov["counts"],
           "wall_s": round(wall, 1), "cpu_s": round(cpu, 1), **stamp()}
    record(rec, out, show={k: v for k, v in rec.items() if k != "counts"})
    if drs:      # the same trained model sampled with discriminator rejection sampling: its own row
        c0 = time.process_time()
        xd = r.model.sample(2500, generator=torch.Generator().manual_seed(1000 + seed), drs=True)
        cd = mode_coverage(xd, tr.extras["modes"])
        torch.save(xd, f"runs/gan_modes/{data}-{loss}{pac}-drs-s{seed}.pt")
        rd = {**rec, "drs": True, "drs_acceptance": round(r.model.drs_acceptance, 4),
              "drs_cpu_s": round(time.process_time() - c0, 1), "modes": cd["modes_captured"],
              "hq_pct": cd["high_quality_pct"], "reverse_kl": cd["reverse_kl"], "counts": cd["counts"]}
        record(rd, out, show={k: v for k, v in rd.items() if k != "counts"})
    return rec


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="ring8,grid25")
    ap.add_argument("--losses", default="ns,minimax,lsgan,wgan,wgan-gp,hinge")
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument("--out", default=str(RESULTS / "gan_modes.jsonl"))
    ap.add_argument("--tag", default="s3")
    ap.add_argument("--steps", type=int)
    ap.add_argument("--batch", type=int)
    ap.add_argument("--hidden", type=lambda v: tuple(int(h) for h in v.split(",")))
    ap.add_argument("--latent", type=int)
    ap.add_argument("--lr", type=float)
    ap.add_argument("--lr-d", dest="lr_d", type=float)
    ap.add_argument("--lr-g", dest="lr_g", type=float)
    ap.add_argument("--ema", type=float)
    ap.add_argument("--no-ema-warmup", dest="ema_warmup", action="store_const", const=False,
                    help="EMA decay d from the first step (session 2's runs predate the engine's warm-up)")
    ap.add_argument("--schedule")
    ap.add_argument("--pac", type=int)
    ap.add_argument("--n-critic", dest="n_critic", type=int)
    ap.add_argument("--betas", type=lambda v: tuple(float(b) for b in v.split(",")))
    ap.add_argument("--r1", type=float, help="R1 penalty γ (gan option r1)")
    ap.add_argument("--steps2", type=int, help="second stage: this many steps with r1=0 from the first stage's weights")
    ap.add_argument("--lr2", type=float, help="the second stage's lr (default 2e-4)")
    ap.add_argument("--drs", action="store_true", help="also score sample(drs=True) of the same model (own rows)")
    a = ap.parse_args()
    over = {k: getattr(a, k) for k in BASE}
    for seed in map(int, a.seeds.split(",")):
        for data in a.data.split(","):
            for loss in a.losses.split(","):
                run(data, loss, seed, settings(loss, over, data), Path(a.out), a.tag, a.drs)


if __name__ == "__main__":
    main()
