"""PRDC at Naeem et al.'s reference setting for several seeds (draw-to-draw spread).

    nice python benchmarks/prdc_anchor_seeds.py 2 3     # appends to benchmarks/results/metrics.md
"""
import sys
import time
from pathlib import Path

import torch

from genlab.metrics import prdc

torch.set_num_threads(1)
rows = []
for s in map(int, sys.argv[1:] or ["2", "3"]):
    g = torch.Generator().manual_seed(s)
    real, fake = torch.randn(10_000, 1000, generator=g), torch.randn(10_000, 1000, generator=g)
    t = time.perf_counter()
    r = prdc(real, fake, k=5)
    rows.append(f"| genlab, torch seed {s} | {r['precision']:.4f} | {r['recall']:.4f} | {r['density']:.4f} | "
                f"{r['coverage']:.4f} | {time.perf_counter() - t:.1f} |")
    print(rows[-1], flush=True)
out = Path(__file__).parent / "results" / "metrics.md"
out.write_text(out.read_text() + "\n".join(rows) + "\n")
