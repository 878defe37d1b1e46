"""Shared runner for the flow benchmarks (benchmarks/realnvp.py, benchmarks/flows.py).

Each job trains one flow with ``gl.train`` (the engine, 1 thread) and evaluates the test split:
exact test NLL and KL gap (NLL − true entropy) on 2-D toys; the uniform-dequantisation bound in
nats/image and bits/dim on digits. Results go to a JSON-lines file, one record per job, so a
long benchmark can be resumed and reported from what has finished.
"""
from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

import genlab as gl  # noqa: E402
from genlab.models.likelihood import NLLRecord  # noqa: E402

TOYS = ["8gaussians", "checkerboard", "pinwheel", "2spirals", "moons", "circles", "swissroll", "rings"]
DIGITS_BASELINES = {"uniform": 181.33, "per-pixel categorical": 106.4, "mixture of 10 categoricals (EM)": 99.7}
ROOT = Path(__file__).resolve().parents[1]


def job_key(j):
    key = f"{j['model']}|{j['data']}|{j['seed']}|{j['steps']}|{json.dumps(j.get('model_kw', {}), sort_keys=True)}"
    if j.get("train_kw"):
        key += "|" + json.dumps(j["train_kw"], sort_keys=True)
    return key + ("|tuned" if j.get("tuned") else "")


def _own_session():
    """Each job in its own session and nice 5: with the kernel's autogroup scheduling, processes of one
    session share one CPU share, so a pool of workers in the launcher's session would crawl."""
    try:
        os.setsid()
    except OSError:
        pass
    try:
        os.nice(5 - os.nice(0))
    except OSError:
        pass


def run_job(j: dict) -> dict:
    torch.set_num_threads(1)
    _own_session()
    train = gl.load_dataset(j["data"], split="train")
    test = gl.load_dataset(j["data"], split="test")
    val = gl.load_dataset(j["data"], split="val")
    torch.manual_seed(j["seed"])           # the seed varies the initialisation too, not only the batches
    model = gl.create(j["model"], data=train, **j.get("model_kw", {}))
    tkw = dict(j.get("train_kw", {}))
    if tkw.get("keep_best"):
        tkw.setdefault("eval_every", 100)
    c0 = time.process_time()
    run = gl.train(model, train, steps=j["steps"], batch_size=j["batch_size"], lr=j["lr"], seed=j["seed"],
                   progress=False, val=val if tkw.get("keep_best") else None, **tkw)
    cpu = time.process_time() - c0
    model.eval()
    t0 = time.perf_counter()
    g = torch.Generator().manual_seed(1234)
    k = j.get("eval_samples", 1) if train.info.discrete else 1
    with torch.no_grad():
        lps = [model.log_prob(test.x[i:i + 1000], num_samples=k, generator=g) for i in range(0, len(test), 1000)]
    lp = torch.cat(lps)
    with torch.no_grad():
        lv = torch.cat([model.log_prob(val.x[i:i + 1000], num_samples=k, generator=g) for i in range(0, len(val), 1000)])
    rec = NLLRecord.from_log_prob(lp, dim=train.info.dim, kind=model.likelihood,
                                  dequantization="uniform" if train.info.discrete else "none",
                                  num_samples=k if train.info.discrete else None)
    out = dict(j, nll=rec.value, bits_per_dim=rec.bits_per_dim, kind=rec.kind, params=model.num_parameters(),
               train_seconds=run.wall_time, steps_per_s=j["steps"] / run.wall_time,
               eval_seconds=time.perf_counter() - t0, final_loss=run.final_loss, cpu_seconds=cpu,
               load1=os.getloadavg()[0], val_nll=float(-lv.mean()), best_step=getattr(run, "best_step", None))
    if test.entropy is not None:
        out["entropy"] = test.entropy
        out["kl_gap"] = rec.value - test.entropy
        out["val_gap"] = out["val_nll"] - val.entropy
    if j.get("save"):
        model.save_pretrained(ROOT / "runs" / "flowbench" / f"{j['model']}-{j['data']}-s{j['seed']}")
    return out


def run_all(jobs: list[dict], results: Path, workers: int = 1) -> list[dict]:
    """Run jobs not yet in ``results`` (JSON lines); ``workers`` processes, each 1 thread."""
    results.parent.mkdir(parents=True, exist_ok=True)
    done = {job_key(r) for r in load(results)}
    todo = [j for j in jobs if job_key(j) not in done]
    print(f"{len(todo)} jobs to run ({len(jobs) - len(todo)} already done) -> {results}", flush=True)
    if workers <= 1:
        for j in todo:
            _write(results, _safe(j))
    else:
        import multiprocessing as mp
        with mp.get_context("spawn").Pool(workers, maxtasksperchild=1) as pool:
            for r in pool.imap_unordered(_safe, todo):
                _write(results, r)
    return load(results)


def _safe(j):
    try:
        return run_job(j)
    except Exception as e:  # record the failure, keep the benchmark going
        return dict(j, error=f"{type(e).__name__}: {e}")


def _write(path, r):
    with open(path, "a") as f:
        f.write(json.dumps(r) + "\n")
    msg = r.get("error") or (f"nll {r['nll']:.3f}" + (f" kl {r['kl_gap']:.3f}" if "kl_gap" in r else "")
                             + f" {r['steps_per_s']:.1f} it/s")
    print(f"{r['model']:8s} {r['data']:12s} seed {r['seed']}: {msg}", flush=True)


def load(path: Path) -> list[dict]:
    if not Path(path).exists():
        return []
    return [json.loads(line) for line in open(path) if line.strip()]


def median(xs):
    xs = sorted(xs)
    n = len(xs)
    return float("nan") if n == 0 else (xs[n // 2] if n % 2 else 0.5 * (xs[n // 2 - 1] + xs[n // 2]))


def machine() -> str:
    try:
        load1 = os.getloadavg()[0]
    except OSError:
        load1 = float("nan")
    return (f"{os.cpu_count()}-core CPU, torch {torch.__version__.split('+')[0]}, 1 thread per job, "
            f"Python {platform.python_version()}; load average at report time {load1:.1f}")


def git_rev() -> str:
    try:
        return subprocess.check_output(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True).strip()
    except Exception:
        return "?"


def fmt(x, nd=3):
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{nd}f}"


def command_line() -> str:
    return "python " + " ".join([Path(sys.argv[0]).as_posix().split("/work/main/")[-1], *sys.argv[1:]])
