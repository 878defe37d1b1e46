"""Tiny models registered under test-only names, for the engine tests and their subprocess scripts.

- ``test-engine-gauss``: a diagonal Gaussian N(μ, diag σ²) with learnable μ and log σ, exact
  log_prob; its loss adds a little torch.randn noise to the batch so that resuming must restore
  the RNG state to reproduce a run. Instance attributes (not config) make it misbehave on purpose:
  ``nan_at`` (training calls whose loss is NaN) and ``stall_at`` (a training call at which it
  writes ``stall_file`` and sleeps, so a test can SIGKILL it mid-run).
- ``test-engine-2phase``: two networks, phase ``a`` (×2, trains ``a``) and phase ``b`` (×1, trains
  ``b``; its loss also flows into ``a``, whose gradients the trainer must not apply).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

import genlab as gl
from genlab.data.base import DataInfo, Dataset
from genlab.models.base import GenerativeModel, Phase
from genlab.models.registry import _MODELS, register


def _register(name):
    def deco(cls):
        if name in _MODELS:          # imported twice (pytest + script): keep the first class
            return _MODELS[name]
        return register(name)(cls)
    return deco


@_register("test-engine-gauss")
class GaussToy(GenerativeModel):
    """Diagonal Gaussian with learnable mean and log-std (test only)."""

    likelihood = "exact"

    @dataclass
    class Config:
        noise: float = 0.01
        init_shift: float = 0.0

    def __init__(self, info: DataInfo, config=None):
        super().__init__(info, config)
        d = info.dim
        self.mu = nn.Parameter(torch.full((d,), self.config.init_shift) + 0.1 * torch.randn(d))
        self.log_std = nn.Parameter(0.1 * torch.randn(d))
        self.nan_at: set[int] = set()
        self.stall_at: int | None = None
        self.stall_file: str | None = None
        self.calls = 0

    def log_prob(self, x, cond=None, **options):
        self.check_input(x, cond)
        z = (x.flatten(1) - self.mu) / self.log_std.exp()
        return (-0.5 * z.pow(2) - self.log_std - 0.5 * math.log(2 * math.pi)).sum(1)

    def loss(self, batch, phase="main"):
        x = batch["x"]
        if self.training:
            self.calls += 1
            if self.stall_at is not None and self.calls >= self.stall_at:
                Path(self.stall_file).write_text(str(self.calls))
                time.sleep(120)
        x = x + self.config.noise * torch.randn_like(x)
        loss = -self.log_prob(x).mean()
        if self.training and self.calls in self.nan_at:
            loss = loss * float("nan")
        return {"loss": loss, "mean_std": self.log_std.exp().mean().detach()}

    @torch.no_grad()
    def sample(self, n, cond=None, generator=None, **options):
        z = torch.randn(n, self.info.dim, generator=generator, device=self.mu.device)
        return (self.mu + self.log_std.exp() * z).reshape(n, *self.info.shape)


@_register("test-engine-2phase")
class TwoPhaseToy(GenerativeModel):
    """Two networks trained by two phases (test only)."""

    likelihood = "none"

    @dataclass
    class Config:
        hidden: int = 8

    def __init__(self, info: DataInfo, config=None):
        super().__init__(info, config)
        d = info.dim
        self.a = nn.Sequential(nn.Linear(d, self.config.hidden), nn.Tanh(), nn.Linear(self.config.hidden, d))
        self.b = nn.Linear(d, 1)
        self.calls = {"a": 0, "b": 0}

    def phases(self):
        return [Phase("a", list(self.a.parameters()), repeats=2, lr=1e-2),
                Phase("b", list(self.b.parameters()), repeats=1, lr=5e-3, betas=(0.5, 0.9))]

    def loss(self, batch, phase="main"):
        x = batch["x"]
        if self.training:
            self.calls[phase] += 1
        if phase == "a":
            return (self.a(x) - x.flip(1)).pow(2).mean()
        return (self.b(self.a(x)) - 1.0).pow(2).mean()     # gradients reach a too

    @torch.no_grad()
    def sample(self, n, cond=None, generator=None, **options):
        return self.a(torch.randn(n, self.info.dim, generator=generator))


#: the training options of tests/engine_script.py (the subprocess runs), to reproduce them in-process
SCRIPT_KW = dict(batch_size=32, lr=0.05, log_every=1, progress=False, sample_every=-1, warmup=3, schedule="cosine")


def toy_data(n: int = 256, d: int = 2, seed: int = 0, split: str = "train") -> Dataset:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g) * torch.tensor([0.5, 2.0])[:d] + torch.tensor([1.0, -1.0])[:d]
    return Dataset(x.float(), DataInfo(shape=(d,), name="toy"), split=split,
                   source={"name": "toy", "n": n, "seed": seed})


def make(name: str = "test-engine-gauss", data: Dataset | None = None, seed: int = 0, **kw) -> GenerativeModel:
    torch.manual_seed(seed)
    return gl.create(name, data=data if data is not None else toy_data(), **kw)


def param_hash(model: nn.Module) -> str:
    import hashlib
    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()
