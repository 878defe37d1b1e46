"""Helpers shared by the autoregressive benchmark scripts (machine load, peak matmul, result files)."""
from __future__ import annotations

import os
import platform
import statistics
import time
from pathlib import Path

import torch

RESULTS = Path(__file__).parent / "results"
RAW = RESULTS / "autoregressive_raw"


def load() -> str:
    a, b, c = os.getloadavg()
    return f"{a:.1f}/{b:.1f}/{c:.1f} (1/5/15-min load average on {os.cpu_count()} cores)"


def machine() -> str:
    return f"{os.cpu_count()}-core CPU ({platform.machine()}), torch {torch.__version__}, {torch.get_num_threads()} thread(s)"


def peak_matmul_gflops(n: int = 1024, repeats: int = 7, cpu_time: bool = False) -> float:
    """Median fp32 GFLOP/s of an n×n×n matmul on the current thread count, per wall second or (``cpu_time``)
    per CPU second of this process (the fairer peak on a machine loaded by others)."""
    clock = time.process_time if cpu_time else time.perf_counter
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    rates = []
    for _ in range(repeats):
        t = clock()
        for _ in range(3):
            a @ b
        rates.append(3 * 2 * n ** 3 / max(clock() - t, 1e-9) / 1e9)
    return statistics.median(rates)


def write_raw(name: str, text: str) -> Path:
    RAW.mkdir(parents=True, exist_ok=True)
    p = RAW / f"{name}.md"
    p.write_text(text)
    return p


if __name__ == "__main__":      # python benchmarks/autoregressive_common.py: measure the peak now
    import json
    torch.set_num_threads(1)
    res = {"peak_gflops_wall": peak_matmul_gflops(), "peak_gflops_cpu_time": peak_matmul_gflops(cpu_time=True),
           "load": load(), "machine": machine()}
    print(json.dumps(res, indent=1))
    write_raw("peak_matmul", "```json\n" + json.dumps(res, indent=1) + "\n```\n")
