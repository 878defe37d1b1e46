"""Time each genlab metric on 10 000 samples per set, 1 CPU thread; check PRDC against Naeem et
al.'s reference (two N(0, I) sets, 10 000 each, d = 1000, k = 5: P 0.477 R 0.471 D 1.056 C 0.974).

    nice python benchmarks/metrics_timing.py [--repeats 3] [--n 10000]

Writes benchmarks/results/metrics.md (median wall time of ``--repeats`` runs per metric).
"""
from __future__ import annotations

import argparse
import datetime
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
import torch  # noqa: E402

import genlab as gl  # noqa: E402
from genlab import metrics as M  # noqa: E402


def timeit(fn, repeats):
    ts, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts), ts, out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--skip-anchor", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(1)
    n = a.n
    g = torch.Generator().manual_seed(0)
    # 2-D vectors (toy data) and 128-d features (the size of genlab's feature nets)
    x2, y2 = gl.load_dataset("ring8", n=n).x, gl.load_dataset("ring8", split="test", n=n).x + 0.01
    f1 = torch.randn(n, 128, generator=g)
    f2 = torch.randn(n, 128, generator=g) * 1.1
    modes = gl.load_dataset("ring8", split="test", n=10).extras["modes"]
    probs = torch.softmax(torch.randn(n, 10, generator=g) * 3, 1)
    lp = torch.randn(n, dtype=torch.float64) - 3
    cases = [
        ("nll (summary of log_prob)", "scalar", lambda: M.nll(lp, dim=2)),
        ("fd", "128-d features", lambda: M.frechet_distance(f1, f2)),
        ("kid (100 subsets of 1000)", "128-d features", lambda: M.kid(f1, f2)),
        ("prdc k=5", "128-d features", lambda: M.prdc(f1, f2, k=5)),
        ("mmd (median bandwidth)", "2-D", lambda: M.mmd(x2, y2)),
        ("mmd (5 bandwidths)", "2-D", lambda: M.mmd(x2, y2, scales=(0.25, 0.5, 1, 2, 4))),
        ("energy", "2-D", lambda: M.energy_distance(x2, y2)),
        ("wasserstein exact (3000 each, assignment)", "2-D", lambda: M.wasserstein(x2[:3000], y2[:3000], method="exact")),
        ("wasserstein sliced (256 projections)", "2-D", lambda: M.wasserstein(x2, y2, method="sliced")),
        ("c2st (mlp)", "2-D", lambda: M.c2st(x2, y2)),
        ("c2st (logistic)", "2-D", lambda: M.c2st(x2, y2, classifier="logistic")),
        ("mode_coverage (2500 samples)", "2-D", lambda: M.mode_coverage(y2[:2500], modes)),
        ("memorisation", "2-D", lambda: M.memorisation(y2, x2)),
        ("memorisation", "128-d features", lambda: M.memorisation(f2, f1)),
        ("classifier_score", "10 classes", lambda: M.classifier_score(probs)),
    ]
    rows = []
    load0 = os.getloadavg()[0]
    for name, kind, fn in cases:
        med, ts, _ = timeit(fn, a.repeats)
        print(f"{name:45s} {kind:16s} {med:8.3f} s  {[round(t, 3) for t in ts]}", flush=True)
        rows.append((name, kind, med, ts))
    anchor = None
    if not a.skip_anchor:
        ga = torch.Generator().manual_seed(1)
        real = torch.randn(10_000, 1000, generator=ga)
        fake = torch.randn(10_000, 1000, generator=ga)
        t = time.perf_counter()
        anchor = M.prdc(real, fake, k=5)
        anchor_t = time.perf_counter() - t
        print("anchor", anchor, f"{anchor_t:.1f} s", flush=True)
    load1 = os.getloadavg()[0]
    out = Path(__file__).parent / "results" / "metrics.md"
    old_anchor = ""
    if anchor is None and out.exists() and "## PRDC reference" in out.read_text():
        old_anchor = out.read_text()[out.read_text().index("## PRDC reference"):]
    lines = ["# Metrics: timings and a reference check", "",
             f"Command: `nice python benchmarks/metrics_timing.py --repeats {a.repeats} --n {n}"
             + (" --skip-anchor` (the PRDC reference section is kept from an earlier full run)  " if a.skip_anchor
                else "`  "),
             f"Machine: 2-core CPU, torch {torch.__version__}, 1 thread; date {datetime.date.today()}. "
             f"Other sessions were loading the machine (1-minute load average {load0:.0f} at the start and "
             f"{load1:.0f} at the end, on 2 cores), so these times are upper bounds, several times those of a "
             "quiet machine.", "",
             f"## Time per call, {n} samples in each set (median of {a.repeats})", "",
             "| metric | data | median s | runs (s) |", "|---|---|---|---|"]
    lines += [f"| {nm} | {k} | {m:.3f} | {', '.join(f'{t:.3f}' for t in ts)} |" for nm, k, m, ts in rows]
    if anchor:
        lines += ["", "## PRDC reference (Naeem et al. 2020)", "",
                  "Two independent N(0, I) sets, 10 000 points each, d = 1000, k = 5 (torch seed 1), float32:", "",
                  "| | precision | recall | density | coverage | time s |", "|---|---|---|---|---|---|",
                  "| paper | 0.477 | 0.471 | 1.056 | 0.974 | |",
                  f"| genlab | {anchor['precision']:.4f} | {anchor['recall']:.4f} | {anchor['density']:.4f} | "
                  f"{anchor['coverage']:.4f} | {anchor_t:.1f} |"]
    elif old_anchor:
        lines += ["", old_anchor.rstrip("\n")]
    out.write_text("\n".join(lines) + "\n")
    print("wrote", out)


if __name__ == "__main__":
    main()
