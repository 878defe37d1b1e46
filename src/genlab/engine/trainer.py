"""The one training loop for every genlab family.

MINIMAL VERSION (being extended with Accelerate, checkpoints/resume, DDP, EMA, logging).
The public API — ``train(model, data, steps=..., ...) -> Run`` — is stable.
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..data.base import Dataset
from ..models.base import GenerativeModel


@dataclass
class TrainConfig:
    steps: int = 2000
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    grad_clip: float | None = 1.0
    warmup: int = 0
    schedule: str = "constant"          # constant | cosine
    seed: int = 0
    ema: float = 0.0                    # EMA decay; 0 = off
    threads: int | None = 1
    precision: str = "fp32"             # fp32 | bf16
    eval_every: int = 0                 # validation loss every N steps (0 = only at the end)
    sample_every: int = 0
    checkpoint_every: int = 500
    log_every: int = 50
    progress: bool = True
    max_nonfinite: int = 10


@dataclass
class Run:
    model: GenerativeModel
    config: TrainConfig
    out: Path | None
    history: list[dict[str, Any]] = field(default_factory=list)
    step: int = 0
    wall_time: float = 0.0

    @property
    def final_loss(self) -> float:
        return self.history[-1]["loss"] if self.history else math.nan


def batch_at(data: Dataset, idx: torch.Tensor) -> dict[str, torch.Tensor]:
    b = {"x": data.x[idx]}
    if data.y is not None:
        b["y"] = data.y[idx]
    return b


def train(model: GenerativeModel, data: Dataset, *, steps: int = 2000, out=None, val: Dataset | None = None,
          resume: bool = False, **kwargs) -> Run:
    cfg = TrainConfig(steps=steps, **kwargs)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    g = torch.Generator().manual_seed(cfg.seed)
    phases = model.phases()
    opts = [torch.optim.AdamW(ph.params, lr=ph.lr or cfg.lr, betas=ph.betas or cfg.betas,
                              weight_decay=cfg.weight_decay if ph.weight_decay is None else ph.weight_decay)
            for ph in phases]
    run = Run(model, cfg, Path(out) if out else None)
    n = len(data)
    bs = min(cfg.batch_size, n)
    perm, pos = torch.randperm(n, generator=g), 0
    model.train()
    t0 = time.perf_counter()
    for step in range(1, steps + 1):
        logs = {}
        for ph, opt in zip(phases, opts):
            for _ in range(ph.repeats):
                if pos + bs > n:
                    perm, pos = torch.randperm(n, generator=g), 0
                batch = batch_at(data, perm[pos:pos + bs])
                pos += bs
                out_ = model(batch, phase=ph.name)
                loss = out_["loss"] if isinstance(out_, dict) else out_
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.grad_clip:
                    torch.nn.utils.clip_grad_norm_(ph.params, cfg.grad_clip)
                opt.step()
                key = "loss" if len(phases) == 1 else f"loss/{ph.name}"
                logs[key] = float(loss)
                if isinstance(out_, dict):
                    logs.update({k: float(v) for k, v in out_.items() if k != "loss"})
        if step % cfg.log_every == 0 or step == steps:
            logs["step"] = step
            if "loss" not in logs:
                logs["loss"] = sum(v for k, v in logs.items() if k.startswith("loss/"))
            run.history.append(logs)
    run.step = steps
    run.wall_time = time.perf_counter() - t0
    model.eval()
    if run.out:
        model.save_pretrained(run.out / "final")
    return run
