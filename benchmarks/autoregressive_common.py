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


def peak_matmul_gflops(n: int = 1024, repeats: int = 7) -> float:
    """Median fp32 GFLOP/s of an n×n×n matmul on the current thread count."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    rates = []
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        rates.append(2 * n ** 3 / (time.perf_counter() - t) / 1e9)
    return statistics.median(rates)


def write_raw(name: str, text: str) -> Path:
    RAW.mkdir(parents=True, exist_ok=True)
    p = RAW / f"{name}.md"
    p.write_text(text)
    return p
