"""Training speed of the engine with 1 vs 2 torch threads (the reason for TrainConfig.threads=1).

    nice python benchmarks/engine_threads.py [--repeats 5] [--out benchmarks/results/engine.md]

Two small models trained through ``gl.train`` exactly as users do:
- ``realnvp`` on ``moons`` (the family's default config: an MLP-coupling flow), batch 256;
- a small convolutional denoiser on 8×8 ``digits`` (3×3 convs, 16 channels, 4 layers), batch 64.
Each trial trains a fresh model (same seed) for a fixed number of steps and reads the loop's
steps/s from the returned Run (the time to build the Accelerator and model is not counted).
Trials with 1 and 2 threads alternate (1,2 then 2,1, ...) so that both see the same background
load; the median over repeats is reported, with the load average before and after.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

import genlab as gl
from genlab.models.base import GenerativeModel


class ConvDenoiser(GenerativeModel):
    """A small conv network trained to denoise digits (a stand-in for a small conv family)."""

    likelihood = "none"
    name = "bench-conv"

    @dataclass
    class Config:
        channels: int = 16

    def __init__(self, info, config=None):
        super().__init__(info, config)
        c = self.config.channels
        self.net = nn.Sequential(nn.Conv2d(1, c, 3, padding=1), nn.SiLU(), nn.Conv2d(c, c, 3, padding=1), nn.SiLU(),
                                 nn.Conv2d(c, c, 3, padding=1), nn.SiLU(), nn.Conv2d(c, 1, 3, padding=1))

    def loss(self, batch, phase="main"):
        x = batch["x"].float() / (self.info.num_levels - 1)
        noisy = x + 0.3 * torch.randn_like(x)
        return (self.net(noisy) - x).pow(2).mean()


def make(kind: str):
    torch.manual_seed(0)
    if kind == "realnvp/moons":
        ds = gl.load_dataset("moons")
        return gl.create("realnvp", data=ds), ds, 256
    ds = gl.load_dataset("digits")
    return ConvDenoiser(ds.info), ds, 64


def trial(kind: str, threads: int, steps: int) -> float:
    model, ds, bs = make(kind)
    run = gl.train(model, ds, steps=steps, batch_size=bs, threads=threads, progress=False, log_every=steps,
                   eval_every=-1, sample_every=-1)
    return run.steps_per_s


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "engine.md"))
    a = p.parse_args()
    kinds = {"realnvp/moons": 30, "conv/digits": 20}
    load0 = os.getloadavg()
    t0 = time.time()
    for kind, steps in kinds.items():          # warm-up (imports, first-call allocations)
        trial(kind, 1, 5)
    res = {(k, t): [] for k in kinds for t in (1, 2)}
    for r in range(a.repeats):
        for kind, steps in kinds.items():
            for t in ((1, 2) if r % 2 == 0 else (2, 1)):
                res[kind, t].append(trial(kind, t, steps))
                print(f"repeat {r} {kind} threads={t}: {res[kind, t][-1]:.1f} steps/s", flush=True)
        write(a, kinds, res, load0, t0, r + 1)


def write(a, kinds, res, load0, t0, done):
    load1 = os.getloadavg()
    m = {k: statistics.median(v) for k, v in res.items()}
    res = {k: [round(x, 1) for x in v] for k, v in res.items()}
    lines = [
        "# Engine: training speed with 1 vs 2 torch threads",
        "",
        f"Command: `nice python benchmarks/engine_threads.py --repeats {a.repeats}` ({done} repeats done) "
        f"(date {time.strftime('%Y-%m-%d')}, {time.time() - t0:.0f} s).",
        f"Machine: 2-core CPU ({os.cpu_count()} logical CPUs seen), torch {torch.__version__}, "
        f"Python {platform.python_version()}; `gl.train(..., threads=T)` in one process.",
        f"Load average (1/5/15 min) before: {load0[0]:.1f}/{load0[1]:.1f}/{load0[2]:.1f}, after: "
        f"{load1[0]:.1f}/{load1[1]:.1f}/{load1[2]:.1f} — other sessions were using the machine, "
        "as they usually are here.",
        "",
        "Each trial trains a fresh model for the given steps; steps/s of the training loop; trials with",
        "1 and 2 threads alternate so they see the same background load. Median (all trials in brackets).",
        "",
        "| model | batch | steps | 1 thread steps/s | 2 threads steps/s | 2 threads / 1 thread |",
        "|---|---|---|---|---|---|",
    ]
    for kind, steps in kinds.items():
        bs = 256 if kind.startswith("realnvp") else 64
        lines.append(f"| {kind} | {bs} | {steps} | {m[kind, 1]:.1f} ({', '.join(map(str, res[kind, 1]))}) | "
                     f"{m[kind, 2]:.1f} ({', '.join(map(str, res[kind, 2]))}) | {m[kind, 2] / m[kind, 1]:.2f} |")
    lines += [
        "",
        "A ratio below 1 means 2 threads were slower. With other processes busy on the 2 cores, a 2-thread",
        "torch op waits for its second thread at every parallel region, so 2 threads collapse while 1 thread",
        "keeps its share; hence `TrainConfig.threads = 1` by default. On a quiet or larger machine more threads",
        "can pay off (DESIGN §5 quotes about 1.6x for 2 threads on large fp32 matmuls on a quiet machine; not",
        "re-measured here): pass `threads=N` (or `threads=None` to keep torch's setting).",
    ]
    text = "\n".join(lines) + "\n"
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    if Path(a.out).exists() and "<!-- threads -->" in Path(a.out).read_text():
        pre, _, post = Path(a.out).read_text().partition("<!-- threads -->")
        post = post.split("<!-- /threads -->", 1)[-1]
        text = pre + "<!-- threads -->\n" + text + "<!-- /threads -->" + post
    Path(a.out).write_text(text)
    print(text)


if __name__ == "__main__":
    sys.exit(main())
