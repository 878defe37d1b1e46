"""Run many ``flows_digits_tune.py`` jobs in parallel, one thread each (for a many-core machine).

    python benchmarks/flows_digits_sweep.py JOBS.jsonl OUT.jsonl [--workers 16]

Each line of JOBS.jsonl: {"model": ..., "steps": ..., "mkw": {...}, "tkw": {...}, "seed": 0, "test": false}.
Every finished job appends its JSON line (see flows_digits_tune.py) to OUT.jsonl.
"""
import argparse, json, subprocess, sys, os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent


def run(job, out):
    cmd = [sys.executable, str(HERE / "flows_digits_tune.py"), job["model"], str(job["steps"]), json.dumps(job.get("mkw", {})),
           json.dumps(job.get("tkw", {})), str(job.get("seed", 0))] + (["--test"] if job.get("test") else [])
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    line = p.stdout.strip().splitlines()[-1] if p.stdout.strip() else json.dumps(dict(job, error=p.stderr[-800:]))
    with open(out, "a") as f:
        f.write(line + "\n")
    print(line[:300], flush=True)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("jobs"); ap.add_argument("out"); ap.add_argument("--workers", type=int, default=16)
    a = ap.parse_args()
    jobs = [json.loads(l) for l in open(a.jobs) if l.strip()]
    with ThreadPoolExecutor(a.workers) as ex:
        list(ex.map(lambda j: run(j, a.out), jobs))
