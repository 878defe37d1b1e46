"""Exponential moving average of a model's parameters (Polyak averaging).

After training step n (n = 1, 2, …),  θ̄ₙ ← dₙ·θ̄ₙ₋₁ + (1 − dₙ)·θₙ,  with θ̄₀ = θ₀ and

    dₙ = min(d, (1 + n) / (10 + n))      (warm-up on, the default)      or      dₙ = d      (off),

d = ``TrainConfig.ema``. Without the warm-up the average starts at the random initial weights and
a run of N steps still carries dᴺ of them (0.999²⁰⁰⁰ ≈ 13.5 %); the warm-up lets the early average
follow the weights (d₁ = 2/11, d₁₀ = 0.55, d₁₀₀ ≈ 0.93) and reaches d after about 9/(1 − d) steps.
This is the schedule of TensorFlow's ``ExponentialMovingAverage(num_updates=…)``. Buffers (running
statistics, flags) are copied, not averaged. Implemented as ``θ̄.lerp_(θ, 1 − dₙ)`` =
θ̄ + (1 − dₙ)(θ − θ̄), the same update in one fused operation.
"""
from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    """A frozen copy of ``model`` whose floating-point parameters follow θ̄ ← dₙ·θ̄ + (1 − dₙ)·θ."""

    def __init__(self, model: nn.Module, decay: float, warmup: bool = True):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"ema decay must lie in (0, 1), got {decay}")
        self.decay = decay
        self.warmup = warmup
        self.model = copy.deepcopy(model)
        self.model.requires_grad_(False)
        self.model.eval()

    def _pairs(self, model: nn.Module):
        """(averaged, live) parameter and buffer lists, built once per live model (not every step)."""
        if getattr(self, "_cache_for", None) is not model:
            src = dict(model.named_parameters())
            pairs = [(p, src[k]) for k, p in self.model.named_parameters() if p.dtype.is_floating_point]
            # buffers by (module, name) pairs, looked up each step: a module may reassign a buffer tensor
            mods, avg_mods = dict(model.named_modules()), dict(self.model.named_modules())
            buffers = [(avg_mods[m], mods[m], k) for m, mod in self.model.named_modules()
                       for k, b in mod._buffers.items() if b is not None]
            self._cache = ([a for a, _ in pairs], [b for _, b in pairs], buffers)
            self._cache_for = model
        return self._cache

    def decay_at(self, n: int) -> float:
        """dₙ, the decay used by the n-th update (n ≥ 1)."""
        return min(self.decay, (1.0 + n) / (10.0 + n)) if self.warmup else self.decay

    @torch.no_grad()
    def update(self, model: nn.Module, n: int) -> None:
        """Fold in the weights after training step ``n`` (1-based; it sets the warm-up decay)."""
        avg, live, buffers = self._pairs(model)
        if avg:
            torch._foreach_lerp_(avg, [p.detach() for p in live], 1.0 - self.decay_at(n))
        for avg_mod, mod, k in buffers:
            avg_mod._buffers[k].copy_(mod._buffers[k])

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.model.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.model.load_state_dict(state, strict=True)
