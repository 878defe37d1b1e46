"""Langevin dynamics, shared by energy-based models and score-based models (NCSN).

Unadjusted Langevin algorithm (Roberts & Tweedie 1996; Welling & Teh 2011 for SGLD; Song &
Ermon 2019, Alg. 1 for annealed use with a score network):

    x_{t+1} = x_t + ε · s(x_t) + σ_noise · ξ_t,    ξ_t ~ N(0, I),

with s(x) = ∇_x log p(x) = −∇_x E(x) for an energy (``kind="energy"``) or the network's output
for a score model (``kind="score"``). The textbook choice σ_noise = √(2ε) (``noise_scale=None``)
leaves p invariant as ε → 0; EBM practice (Du & Mordatch 2019; Grathwohl et al. 2020) decouples
the two (e.g. ε = 1, σ_noise = 0.01) and runs a few dozen steps from a replay buffer.

Samplers never import families: ``energy_or_score_fn`` is any callable ``x -> (B,)`` energies or
``x -> x.shape`` scores.
"""
from __future__ import annotations

import math
from typing import Callable

import torch


def energy_gradient(energy_fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """∇_x Σ_i E(x_i) without touching any parameter's .grad."""
    with torch.enable_grad():
        xg = x.detach().requires_grad_(True)
        g, = torch.autograd.grad(energy_fn(xg).sum(), xg)
    return g


def langevin(energy_or_score_fn: Callable[[torch.Tensor], torch.Tensor], x0: torch.Tensor, steps: int,
             step_size: float, noise_scale: float | None = None, generator: torch.Generator | None = None,
             kind: str = "energy", clamp: tuple | None = None, return_trajectory: bool = False,
             grad_clip: float | None = None):
    """Run ``steps`` Langevin updates from ``x0``; returns the final x (detached), or (x, trajectory).

    energy_or_score_fn: E(x) → (B,) for ``kind="energy"``, or s(x) → like x for ``kind="score"``.
    step_size:   ε, the multiplier of the score (of −∇E).
    noise_scale: σ_noise; None = √(2ε).
    generator:   torch.Generator for the noise (seeded sampling); noise is drawn on the CPU.
    clamp:       (low, high) scalars or tensors broadcastable to x: x is clamped after every step.
    grad_clip:   clamp each element of the score to [−grad_clip, grad_clip] (stabilises EBM training).
    """
    if kind not in ("energy", "score"):
        raise ValueError(f"kind must be 'energy' or 'score', got {kind!r}")
    if steps < 0 or step_size <= 0:
        raise ValueError("langevin needs steps >= 0 and step_size > 0")
    sigma = math.sqrt(2.0 * step_size) if noise_scale is None else float(noise_scale)
    x = x0.detach().clone()
    traj = [x.clone()] if return_trajectory else None
    for _ in range(steps):
        if kind == "energy":
            s = -energy_gradient(energy_or_score_fn, x)
        else:
            with torch.no_grad():
                s = energy_or_score_fn(x)
        if grad_clip is not None:
            s = s.clamp(-grad_clip, grad_clip)
        noise = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device) if sigma > 0 else 0.0
        x = (x + step_size * s + sigma * noise).detach()
        if clamp is not None:
            x = torch.maximum(torch.minimum(x, torch.as_tensor(clamp[1], dtype=x.dtype, device=x.device)),
                              torch.as_tensor(clamp[0], dtype=x.dtype, device=x.device))
        if return_trajectory:
            traj.append(x.clone())
    return (x, torch.stack(traj)) if return_trajectory else x


__all__ = ["langevin", "energy_gradient"]
