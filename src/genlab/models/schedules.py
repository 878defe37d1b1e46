"""Noise schedules and the parameterisations of a Gaussian diffusion (no network here).

Forward process (Ho et al. 2020, eq. 4): ``q(x_t | x_0) = N(√ᾱ_t x_0, (1 − ᾱ_t) I)``, with
``ᾱ_t = ∏_{s≤t} (1 − β_s)``. A schedule is *any* ``ᾱ(τ)`` on τ ∈ [0, 1] (decreasing, ᾱ(0) ≈ 1);
:class:`DiffusionSchedule` discretises it on T steps: ``ᾱ_t = ᾱ((t+1)/T) / ᾱ(0)`` for
t = 0..T−1 (0-indexed as in the reference code of Nichol & Dhariwal 2021), and
``β_t = 1 − ᾱ_t / ᾱ_{t−1}`` clipped to ``max_beta``.

- linear (Ho et al. 2020): ``β`` linear from 1e-4·1000/T to 0.02·1000/T;
- cosine (Nichol & Dhariwal 2021, eq. 17): ``ᾱ(τ) = f(τ)/f(0)``, ``f(τ) = cos²((τ + s)/(1 + s) · π/2)``, s = 0.008.

Posterior (Ho et al. eq. 6–7): ``q(x_{t−1} | x_t, x_0) = N(μ̃_t, β̃_t I)`` with
``μ̃_t = √ᾱ_{t−1} β_t/(1−ᾱ_t) x_0 + √α_t (1−ᾱ_{t−1})/(1−ᾱ_t) x_t``, ``β̃_t = (1−ᾱ_{t−1})/(1−ᾱ_t) β_t``.

Parameterisations (what the network predicts), all interconvertible given x_t and ᾱ_t
(``x_t = √ᾱ x_0 + √(1−ᾱ) ε``):
- ε (Ho et al.):     ``x_0 = (x_t − √(1−ᾱ) ε)/√ᾱ``
- x_0:               ``ε = (x_t − √ᾱ x_0)/√(1−ᾱ)``
- v (Salimans & Ho 2022): ``v = √ᾱ ε − √(1−ᾱ) x_0``; ``x_0 = √ᾱ x_t − √(1−ᾱ) v``; ``ε = √(1−ᾱ) x_t + √ᾱ v``
- score (Tweedie / Vincent 2011): ``∇ log q_t(x_t) = −E[ε | x_t]/√(1−ᾱ)``.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn


def linear_betas(T: int, beta_start: float = 1e-4, beta_end: float = 0.02) -> torch.Tensor:
    """Ho et al.'s linear β schedule, rescaled so that any T gives the same total noise as T=1000
    (Nichol & Dhariwal's convention); clipped at 0.999 for very small T."""
    scale = 1000.0 / T
    return torch.linspace(beta_start * scale, beta_end * scale, T, dtype=torch.float64).clamp(max=0.999)


def cosine_alpha_bar(tau: torch.Tensor, s: float = 0.008) -> torch.Tensor:
    """``ᾱ(τ) = f(τ)/f(0)``, ``f(τ) = cos²(π/2 · (τ + s)/(1 + s))`` (Nichol & Dhariwal 2021, eq. 17)."""
    f = lambda u: torch.cos((u + s) / (1 + s) * math.pi / 2) ** 2  # noqa: E731
    return f(tau) / f(torch.zeros_like(tau))


def linear_alpha_bar(tau: torch.Tensor, beta_min: float = 0.1, beta_max: float = 20.0) -> torch.Tensor:
    """Continuous limit of the linear schedule (the VP SDE of Song et al. 2021):
    ``ᾱ(τ) = exp(−β_min τ − (β_max − β_min) τ²/2)``."""
    return torch.exp(-beta_min * tau - 0.5 * (beta_max - beta_min) * tau**2)


def betas_from_alpha_bar(alpha_bar: torch.Tensor, max_beta: float = 0.999) -> torch.Tensor:
    """``β_t = 1 − ᾱ_t/ᾱ_{t−1}`` (with ᾱ_{−1} = 1), clipped to ``max_beta`` as in Nichol & Dhariwal."""
    prev = torch.cat([alpha_bar.new_ones(1), alpha_bar[:-1]])
    return (1 - alpha_bar / prev).clamp(max=max_beta)


def make_betas(name: str, T: int) -> torch.Tensor:
    """β_1..β_T (float64) for a named schedule: ``linear`` or ``cosine``."""
    if name == "linear":
        return linear_betas(T)
    if name == "cosine":
        tau = torch.arange(T + 1, dtype=torch.float64) / T
        ab = cosine_alpha_bar(tau)
        return betas_from_alpha_bar(ab[1:] / ab[0])
    raise ValueError(f"unknown schedule {name!r}; choose 'linear' or 'cosine' "
                     "(or build DiffusionSchedule.from_alpha_bar(fn, T))")


class DiffusionSchedule(nn.Module):
    """All per-step constants of a discrete Gaussian diffusion, as float64 buffers (not saved:
    they are rebuilt from the config). Index ``t`` is 0-based: t = 0 is the first noising step."""

    def __init__(self, betas: torch.Tensor):
        super().__init__()
        betas = betas.to(torch.float64)
        if betas.ndim != 1 or not ((betas > 0) & (betas < 1)).all():
            raise ValueError("betas must be a 1-D tensor with values in (0, 1)")
        alphas = 1 - betas
        ab = torch.cumprod(alphas, 0)
        ab_prev = torch.cat([ab.new_ones(1), ab[:-1]])
        post_var = betas * (1 - ab_prev) / (1 - ab)
        buf = dict(betas=betas, alphas=alphas, alpha_bar=ab, alpha_bar_prev=ab_prev,
                   post_var=post_var,
                   # log β̃ with β̃_0 = 0 replaced by β̃_1 (Nichol & Dhariwal's "clipped" log variance)
                   post_logvar=torch.log(torch.cat([post_var[1:2] if len(betas) > 1 else betas[:1], post_var[1:]])),
                   post_c0=betas * ab_prev.sqrt() / (1 - ab),
                   post_ct=(1 - ab_prev) * alphas.sqrt() / (1 - ab))
        for k, v in buf.items():
            self.register_buffer(k, v, persistent=False)

    @classmethod
    def named(cls, name: str, T: int) -> "DiffusionSchedule":
        return cls(make_betas(name, T))

    @classmethod
    def from_alpha_bar(cls, fn: Callable[[torch.Tensor], torch.Tensor], T: int, max_beta: float = 0.999):
        """Any schedule given as a function ``ᾱ(τ)`` on [0, 1]: ``ᾱ_t = ᾱ((t+1)/T)/ᾱ(0)``."""
        tau = torch.arange(T + 1, dtype=torch.float64) / T
        ab = fn(tau)
        return cls(betas_from_alpha_bar(ab[1:] / ab[0], max_beta))

    @property
    def T(self) -> int:
        return self.betas.shape[0]

    def at(self, name: str, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """Gather buffer ``name`` at integer steps ``t`` (B,), shaped to broadcast against ``like``."""
        v = getattr(self, name)[t.long().to(self.betas.device)]
        return v.to(like.dtype).reshape(-1, *([1] * (like.ndim - 1)))

    # ---- forward process ----------------------------------------------------------------------
    def q_mean_var(self, x0, t):
        """``q(x_t | x_0) = N(√ᾱ_t x_0, (1 − ᾱ_t) I)``."""
        ab = self.at("alpha_bar", t, x0)
        return ab.sqrt() * x0, (1 - ab).expand_as(x0)

    def q_sample(self, x0, t, noise):
        """``x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε``."""
        ab = self.at("alpha_bar", t, x0)
        return ab.sqrt() * x0 + (1 - ab).sqrt() * noise

    def q_posterior(self, x0, xt, t):
        """Mean and variance of ``q(x_{t−1} | x_t, x_0)`` (Ho et al. eq. 7)."""
        mean = self.at("post_c0", t, xt) * x0 + self.at("post_ct", t, xt) * xt
        return mean, self.at("post_var", t, xt).expand_as(xt)


# ---- parameterisation conversions (pure functions of x_t, ᾱ and one prediction) ----------------
def eps_to_x0(xt, eps, ab):
    """``x_0 = (x_t − √(1−ᾱ) ε)/√ᾱ``"""
    return (xt - (1 - ab).sqrt() * eps) / ab.sqrt()


def x0_to_eps(xt, x0, ab):
    """``ε = (x_t − √ᾱ x_0)/√(1−ᾱ)``"""
    return (xt - ab.sqrt() * x0) / (1 - ab).sqrt()


def v_target(x0, eps, ab):
    """``v = √ᾱ ε − √(1−ᾱ) x_0`` (Salimans & Ho 2022)"""
    return ab.sqrt() * eps - (1 - ab).sqrt() * x0


def v_to_x0(xt, v, ab):
    """``x_0 = √ᾱ x_t − √(1−ᾱ) v``"""
    return ab.sqrt() * xt - (1 - ab).sqrt() * v


def v_to_eps(xt, v, ab):
    """``ε = √(1−ᾱ) x_t + √ᾱ v``"""
    return (1 - ab).sqrt() * xt + ab.sqrt() * v


def eps_to_score(eps, ab):
    """``∇ log q_t(x_t) = −ε/√(1−ᾱ)``"""
    return -eps / (1 - ab).sqrt()


def score_to_eps(score, ab):
    return -score * (1 - ab).sqrt()


def to_eps_x0(pred, xt, ab, parameterization: str):
    """(ε̂, x̂_0) from a network output under ``parameterization`` ∈ {eps, x0, v}."""
    if parameterization == "eps":
        return pred, eps_to_x0(xt, pred, ab)
    if parameterization == "x0":
        return x0_to_eps(xt, pred, ab), pred
    if parameterization == "v":
        return v_to_eps(xt, pred, ab), v_to_x0(xt, pred, ab)
    raise ValueError(f"unknown parameterization {parameterization!r}; choose eps, x0 or v")


def sample_times(u: torch.Tensor, power: float = 1.0) -> torch.Tensor:
    """Training-time density of flow matching (and score-sde's ``prediction="flow"``): ``t = 1 − (1 − u)^p`` for u ~ U[0, 1]: CDF ``P(t ≤ τ) = 1 − (1 − τ)^{1/p}``, density ``(1 − t)^{1/p − 1} / p``."""
    return u if power == 1.0 else 1 - (1 - u) ** power


def gaussian_kl(mean1, logvar1, mean2, logvar2):
    """KL(N(μ₁, e^{l₁}) ‖ N(μ₂, e^{l₂})) elementwise, nats."""
    return 0.5 * (-1.0 + logvar2 - logvar1 + torch.exp(logvar1 - logvar2) + (mean1 - mean2) ** 2 * torch.exp(-logvar2))


__all__ = ["DiffusionSchedule", "linear_betas", "cosine_alpha_bar", "linear_alpha_bar", "betas_from_alpha_bar",
           "make_betas", "eps_to_x0", "x0_to_eps", "v_target", "v_to_x0", "v_to_eps", "eps_to_score",
           "score_to_eps", "to_eps_x0", "gaussian_kl", "sample_times"]
