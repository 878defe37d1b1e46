"""Guidance for conditional diffusion and flow-matching samplers (family-independent).

- Classifier-free guidance (Ho & Salimans 2022): one network trained with the condition dropped
  (replaced by a null token) with probability p; at sampling
  ``ε̃ = ε(x, ∅) + w [ε(x, c) − ε(x, ∅)]``  — genlab's convention: ``w = 0`` is the
  unconditional model, ``w = 1`` the conditional one, ``w > 1`` sharpens (Ho & Salimans' weight
  is ``w − 1``). The same combination applies to scores, x₀ or velocities (it is linear).
- Classifier guidance (Dhariwal & Nichol 2021, Song et al. 2021): a classifier ``p_φ(y | x_t, t)``
  trained on noised inputs adds ``s ∇_x log p_φ(y | x_t, t)`` to the score; for ε-prediction
  ``ε̃ = ε − s √(1 − ᾱ_t) ∇_x log p_φ(y | x_t)``.
- Classifier guidance of a velocity field (flow matching): for a Gaussian path
  ``x_t = α_t x₁ + σ_t x₀`` with x₀ ~ N(0, I) independent of x₁, Tweedie's formula
  ``∇ log p_t(x) = −E[x₀ | x_t = x]/σ_t`` turns the marginal velocity ``E[α̇ x₁ + σ̇ x₀ | x_t = x]`` into
  ``v(x, t) = (α̇/α) x + σ (α̇ σ/α − σ̇) ∇ log p_t(x)``. Conditioning on y adds
  ``∇ log p_t(y | x)`` to the score, hence ``ṽ = v + s λ(t) ∇_x log p_φ(y | x_t, t)`` with
  ``λ(t) = σ_t (α̇_t σ_t/α_t − σ̇_t)`` (:func:`gaussian_path_guidance_coef`); s = 1 is the exact
  class-conditional velocity when p_φ is the Bayes classifier of the noised data.
"""
from __future__ import annotations

from typing import Callable

import torch


def cfg_combine(uncond: torch.Tensor, cond: torch.Tensor, w: float) -> torch.Tensor:
    """``uncond + w (cond − uncond)``."""
    return uncond + w * (cond - uncond)


def classifier_free(net: Callable, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None, w: float,
                    null: int) -> torch.Tensor:
    """Evaluate ``net(x, t, y)`` with classifier-free guidance weight ``w``.

    ``y is None`` or ``w == 0``: the unconditional output (the null token); ``w == 1``: the
    conditional output (one evaluation); otherwise both in one batch of size 2B.
    """
    B = x.shape[0]
    if y is None or w == 0:
        return net(x, t, torch.full((B,), null, dtype=torch.long, device=x.device))
    if w == 1:
        return net(x, t, y)
    out = net(torch.cat([x, x]), torch.cat([t, t]), torch.cat([y, torch.full_like(y, null)]))
    return cfg_combine(out[B:], out[:B], w)


def classifier_log_prob_grad(classifier: Callable, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``∇_x log p_φ(y | x, t)`` (classifier returns logits)."""
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        logp = torch.log_softmax(classifier(x, t), dim=-1).gather(1, y.reshape(-1, 1)).sum()
        return torch.autograd.grad(logp, x)[0]


def gaussian_path_guidance_coef(alpha, sigma, dalpha, dsigma):
    """``λ(t) = σ (α̇ σ/α − σ̇)``: the factor between a score term and the velocity it adds, for the
    path ``x_t = α_t x₁ + σ_t x₀`` (see the module docstring)."""
    return sigma * (dalpha * sigma / alpha - dsigma)


def classifier_guided_velocity(v: torch.Tensor, grad_log_p: torch.Tensor, coef, scale: float) -> torch.Tensor:
    """``v + s λ(t) ∇_x log p_φ(y | x_t, t)`` (``coef`` = λ(t), a number or a (B,) tensor)."""
    coef = torch.as_tensor(coef, dtype=v.dtype, device=v.device)
    if coef.ndim:
        coef = coef.reshape(-1, *([1] * (v.ndim - 1)))
    return v + scale * coef * grad_log_p


__all__ = ["cfg_combine", "classifier_free", "classifier_log_prob_grad", "gaussian_path_guidance_coef",
           "classifier_guided_velocity"]
