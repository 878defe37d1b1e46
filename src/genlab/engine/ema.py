"""Exponential moving average of a model's parameters (Polyak averaging).

After every training step,  θ̄ ← d·θ̄ + (1 − d)·θ   (d = ``TrainConfig.ema``), with θ̄₀ = θ₀;
buffers (running statistics, flags) are copied, not averaged. Implemented as
``θ̄.lerp_(θ, 1 − d)`` = θ̄ + (1 − d)(θ − θ̄), the same update in one fused operation.
"""
from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    """A frozen copy of ``model`` whose floating-point parameters follow θ̄ ← d·θ̄ + (1 − d)·θ."""

    def __init__(self, model: nn.Module, decay: float):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"ema decay must lie in (0, 1), got {decay}")
        self.decay = decay
        self.model = copy.deepcopy(model)
        self.model.requires_grad_(False)
        self.model.eval()

    def _pairs(self, model: nn.Module):
        src = dict(model.named_parameters())
        return [(p, src[k]) for k, p in self.model.named_parameters() if p.dtype.is_floating_point]

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        pairs = self._pairs(model)
        if pairs:
            torch._foreach_lerp_([a for a, _ in pairs], [b.detach() for _, b in pairs], 1.0 - self.decay)
        src = dict(model.named_buffers())
        for k, b in self.model.named_buffers():
            b.copy_(src[k])

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.model.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.model.load_state_dict(state, strict=True)
