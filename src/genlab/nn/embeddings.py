"""Time (noise-level) embeddings for diffusion, score and flow-matching networks.

- Sinusoidal (Vaswani et al. 2017; used for the diffusion step by Ho et al. 2020):
  ``emb(t) = [sin(s·t·ω_k), cos(s·t·ω_k)]``, ``ω_k = 10000^{−k/(d/2−1)}``; genlab feeds ``t ∈ [0, 1]``
  and scales it by ``s = 1000`` so the frequencies match the usual discrete-step embeddings.
- Random Fourier features (Tancik et al. 2020; Song et al. 2021 for score SDEs):
  ``emb(t) = [sin(2π W t), cos(2π W t)]``, ``W ~ N(0, σ²)`` fixed (a buffer, saved with the model).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .mlp import activation


class SinusoidalEmbedding(nn.Module):
    """``t`` (B,) in [0, 1] → (B, dim): ``[sin(scale·t·ω_k), cos(scale·t·ω_k)]``."""

    def __init__(self, dim: int, scale: float = 1000.0, max_period: float = 10000.0):
        super().__init__()
        if dim % 2:
            raise ValueError(f"SinusoidalEmbedding dim must be even, got {dim}")
        self.dim, self.scale = dim, scale
        half = dim // 2
        self.register_buffer("freqs", torch.exp(-math.log(max_period) * torch.arange(half) / max(half - 1, 1)),
                             persistent=False)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        a = self.scale * t.reshape(-1, 1).to(self.freqs) * self.freqs  # ω_k · s · t
        return torch.cat([a.sin(), a.cos()], dim=-1)


class FourierEmbedding(nn.Module):
    """Gaussian random Fourier features ``[sin(2πWt), cos(2πWt)]``, ``W ~ N(0, σ²)`` (a saved buffer)."""

    def __init__(self, dim: int, sigma: float = 16.0, seed: int = 0):
        super().__init__()
        if dim % 2:
            raise ValueError(f"FourierEmbedding dim must be even, got {dim}")
        g = torch.Generator().manual_seed(seed)
        self.register_buffer("W", torch.randn(dim // 2, generator=g) * sigma)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        a = 2 * math.pi * t.reshape(-1, 1).to(self.W) * self.W
        return torch.cat([a.sin(), a.cos()], dim=-1)


def time_embedding(kind: str, dim: int) -> nn.Module:
    """``"sinusoidal"`` or ``"fourier"`` followed by a 2-layer MLP (as in DDPM / NCSN++)."""
    if kind == "sinusoidal":
        base = SinusoidalEmbedding(dim)
    elif kind == "fourier":
        base = FourierEmbedding(dim)
    else:
        raise ValueError(f"unknown time embedding {kind!r}; choose 'sinusoidal' or 'fourier'")
    return nn.Sequential(base, nn.Linear(dim, dim * 2), activation("silu"), nn.Linear(dim * 2, dim))


__all__ = ["SinusoidalEmbedding", "FourierEmbedding", "time_embedding"]
