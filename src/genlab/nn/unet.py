"""Denoiser networks ``net(x, t, y) → same shape as x`` for diffusion, score and flow matching.

- :class:`TimeMLP` for vectors: residual MLP blocks, each receiving the time (and class)
  embedding added to its hidden state.
- :class:`FourierInputNet` wraps a vector net so that it sees random Fourier features of x
  (``x_fourier`` in every denoiser family's config).
- :class:`UNet` for small images (8×8, 28×28): the DDPM U-Net of Ho et al. (2020) shrunk —
  residual blocks with GroupNorm and a time-embedding bias, self-attention at the lowest
  resolution, skip connections by concatenation.

``t`` is a float in [0, 1] per example (the family maps its own time to it); ``y`` is an integer
class in ``0 .. num_classes`` where index ``num_classes`` is the "no condition" token used by
classifier-free guidance, or None for unconditional networks.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn
import torch.nn.functional as F

from .embeddings import time_embedding
from .mlp import activation


class _CondEmbedding(nn.Module):
    """time embedding + (optional) class embedding with a learned null token at index ``num_classes``."""

    def __init__(self, dim: int, num_classes: int | None, kind: str):
        super().__init__()
        self.time = time_embedding(kind, dim)
        self.label = nn.Embedding(num_classes + 1, dim) if num_classes else None

    def forward(self, t, y):
        e = self.time(t)
        if self.label is not None:
            if y is None:  # unconditional call of a conditional net = the null token
                y = torch.full((e.shape[0],), self.label.num_embeddings - 1, dtype=torch.long, device=e.device)
            e = e + self.label(y)
        return e


class _ResMLPBlock(nn.Module):
    def __init__(self, width, emb_dim, act):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.fc1, self.fc2 = nn.Linear(width, width), nn.Linear(width, width)
        self.emb = nn.Linear(emb_dim, width)
        self.act = activation(act)

    def forward(self, h, e):
        z = self.act(self.fc1(self.norm(h)) + self.emb(e))
        return h + self.fc2(self.act(z))


class TimeMLP(nn.Module):
    """Vector denoiser: ``x ↦ Linear → [h + MLP(LN(h) + emb(t, y))]×depth → Linear``."""

    def __init__(self, dim: int, width: int = 128, depth: int = 3, emb_dim: int = 64, num_classes: int | None = None,
                 act: str = "silu", embedding: str = "sinusoidal", out_dim: int | None = None):
        super().__init__()
        self.cond = _CondEmbedding(emb_dim, num_classes, embedding)
        self.inp = nn.Linear(dim, width)
        self.blocks = nn.ModuleList(_ResMLPBlock(width, emb_dim, act) for _ in range(depth))
        self.out = nn.Sequential(nn.LayerNorm(width), activation(act), nn.Linear(width, out_dim or dim))
        self.out_dim_set = out_dim is not None and out_dim != dim

    def forward(self, x, t, y=None):
        e = self.cond(t, y)
        h = self.inp(x.flatten(1))
        for b in self.blocks:
            h = b(h, e)
        out = self.out(h)
        return out if x.ndim == 2 or self.out_dim_set else out.reshape(x.shape[0], -1, *x.shape[2:])


class FourierInputNet(nn.Module):
    """``v(x, t) = net(γ(x), t)`` with Gaussian random Fourier features of the input (Tancik et al. 2020)
    ``γ(x) = [x, sin(2π B x), cos(2π B x)]``, ``B ~ N(0, σ²)`` of shape (F, D), a saved buffer. An MLP on x
    alone learns high spatial frequencies slowly (spectral bias); near t = 1 the velocity of thin
    structure (rings of width w) turns over on the scale w. γ is smooth, so ∇·v stays exact by autograd."""

    def __init__(self, net: nn.Module, dim: int, n: int, sigma: float, seed: int = 0):
        super().__init__()
        self.net = net
        g = torch.Generator().manual_seed(seed)
        self.register_buffer("B", torch.randn(n, dim, generator=g) * sigma)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        a = 2 * math.pi * x @ self.B.to(x).T
        return torch.cat([x, a.sin(), a.cos()], dim=1)

    def forward(self, x, t, y=None):
        return self.net(self.features(x.flatten(1)), t, y).reshape(x.shape[0], -1, *x.shape[2:])


def _gn(c):
    return nn.GroupNorm(min(8, c), c)


class _ResBlock(nn.Module):
    def __init__(self, cin, cout, emb_dim, dropout=0.0):
        super().__init__()
        self.n1, self.c1 = _gn(cin), nn.Conv2d(cin, cout, 3, padding=1)
        self.emb = nn.Linear(emb_dim, cout)
        self.n2, self.c2 = _gn(cout), nn.Conv2d(cout, cout, 3, padding=1)
        self.drop = nn.Dropout(dropout)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x, e):
        h = self.c1(F.silu(self.n1(x))) + self.emb(e)[:, :, None, None]
        h = self.c2(self.drop(F.silu(self.n2(h))))
        return self.skip(x) + h


class _Attention(nn.Module):
    """Single-head self-attention over pixels (Ho et al. use it at 16×16; here at the lowest resolution)."""

    def __init__(self, c):
        super().__init__()
        self.norm, self.qkv, self.proj = _gn(c), nn.Conv2d(c, 3 * c, 1), nn.Conv2d(c, c, 1)

    def forward(self, x):
        B, C, H, W = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(B, 3, C, H * W).unbind(1)
        a = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        return x + self.proj(a.transpose(1, 2).reshape(B, C, H, W))


class UNet(nn.Module):
    """Small DDPM U-Net. ``channel_mult`` sets the levels (each but the last halves H and W)."""

    def __init__(self, in_channels: int = 1, channels: int = 32, channel_mult: Sequence[int] = (1, 2),
                 num_res_blocks: int = 1, attention: bool = True, num_classes: int | None = None,
                 dropout: float = 0.0, embedding: str = "sinusoidal", out_channels: int | None = None):
        super().__init__()
        emb_dim = channels * 4
        self.cond = _CondEmbedding(emb_dim, num_classes, embedding)
        self.inp = nn.Conv2d(in_channels, channels, 3, padding=1)
        chans = [channels * m for m in channel_mult]
        self.down, self.downsample = nn.ModuleList(), nn.ModuleList()
        skips, c = [channels], channels
        for i, co in enumerate(chans):
            blocks = nn.ModuleList()
            for _ in range(num_res_blocks):
                blocks.append(_ResBlock(c, co, emb_dim, dropout))
                c = co
                skips.append(c)
            self.down.append(blocks)
            last = i == len(chans) - 1
            self.downsample.append(nn.Identity() if last else nn.Conv2d(c, c, 3, stride=2, padding=1))
            if not last:
                skips.append(c)
        self.mid1 = _ResBlock(c, c, emb_dim, dropout)
        self.attn = _Attention(c) if attention else nn.Identity()
        self.mid2 = _ResBlock(c, c, emb_dim, dropout)
        self.up, self.upsample = nn.ModuleList(), nn.ModuleList()
        for i, co in reversed(list(enumerate(chans))):
            blocks = nn.ModuleList()
            for _ in range(num_res_blocks + 1):
                blocks.append(_ResBlock(c + skips.pop(), co, emb_dim, dropout))
                c = co
            self.up.append(blocks)
            self.upsample.append(nn.Conv2d(c, c, 3, padding=1) if i > 0 else nn.Identity())
        self.out = nn.Sequential(_gn(c), nn.SiLU(), nn.Conv2d(c, out_channels or in_channels, 3, padding=1))

    def forward(self, x, t, y=None):
        e = self.cond(t, y)
        h = self.inp(x)
        hs = [h]
        for blocks, ds in zip(self.down, self.downsample):
            for b in blocks:
                h = b(h, e)
                hs.append(h)
            if not isinstance(ds, nn.Identity):
                h = ds(h)
                hs.append(h)
        h = self.mid2(self.attn(self.mid1(h, e)), e)
        for blocks, us in zip(self.up, self.upsample):
            for b in blocks:
                h = b(torch.cat([h, hs.pop()], 1), e)
            if not isinstance(us, nn.Identity):
                target = hs[-1].shape[-2:]
                h = us(F.interpolate(h, size=target, mode="nearest"))
        return self.out(h)


__all__ = ["FourierInputNet", "TimeMLP", "UNet"]
