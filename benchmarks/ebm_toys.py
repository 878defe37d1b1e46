"""EBM on 2-D toys: energy distance of Langevin samples to held-out data, and their true log-density.

    nice -n 5 python benchmarks/ebm_toys.py --data 8gaussians,checkerboard,moons --seeds 0,1,2 --steps 1000
    python benchmarks/gan_ebm_report.py            # rewrites benchmarks/results/gan_ebm.md

Per (toy, seed): ``gl.create("ebm")`` (MLP energy, SiLU; CD with 20 SGLD steps from the replay
buffer) trained through ``gl.train``; then 2000 fresh samples (``sample_steps`` Langevin steps from
uniform noise in the data box) against 2000 test points: energy distance (reference: 2000 train
points vs the same test points) and, for toys with an exact density, the mean true log-density of
the samples next to that of the test data. Appends to ``benchmarks/results/ebm_toys.jsonl``.
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
import torch  # noqa: E402

import genlab as gl  # noqa: E402
from genlab.metrics.distances import energy_distance  # noqa: E402
from gan_common import record, stamp  # noqa: E402

torch.set_num_threads(1)
RESULTS = Path(__file__).parent / "results"
N = 2000


def run(data: str, seed: int, steps: int, hidden, out: Path) -> dict:
    tr, te = gl.load_dataset(data, split="train"), gl.load_dataset(data, split="test")
    torch.manual_seed(seed)
    m = gl.create("ebm", data=tr, hidden=hidden)
    t0, c0 = time.perf_counter(), time.process_time()
    gl.train(m, tr, steps=steps, batch_size=128, lr=1e-3, seed=seed, progress=False, eval_every=-1, sample_every=-1)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    x = m.sample(N, generator=torch.Generator().manual_seed(1000 + seed))
    ref = tr.x[torch.randperm(len(tr), generator=torch.Generator().manual_seed(seed))[:N]]
    row = {"data": data, "seed": seed, "steps": steps, "hidden": list(hidden), "config": m.config_dict(),
           "energy": energy_distance(x, te.x[:N]), "energy_ref": energy_distance(ref, te.x[:N]),
           "sample_logp": None, "data_logp": None,
           "wall_s": round(wall, 1), "cpu_s": round(cpu, 1), **stamp()}
    if tr.has_log_prob:
        row["sample_logp"] = float(tr.log_prob(x).clamp_min(-50).mean())
        row["data_logp"] = float(tr.log_prob(te.x[:N]).mean())
    return record(row, out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="8gaussians,checkerboard,moons")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--hidden", default="128,128,128")
    ap.add_argument("--out", default=str(RESULTS / "ebm_toys.jsonl"))
    a = ap.parse_args()
    for seed in map(int, a.seeds.split(",")):
        for data in a.data.split(","):
            run(data, seed, a.steps, tuple(int(h) for h in a.hidden.split(",")), Path(a.out))


if __name__ == "__main__":
    main()
