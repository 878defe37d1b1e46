"""Neural spline flows (Durkan, Bekasov, Murray & Papamakarios 2019): monotonic rational-quadratic
splines as the element-wise bijection of coupling or autoregressive flows.

Rational-quadratic spline (RQS) on [−B, B] with K bins, knots (x_k, y_k) and positive knot
derivatives δ_k. In bin k, with ξ = (x − x_k)/w_k, s_k = h_k/w_k (eq. 4 and appendix A):

    y = y_k + h_k [s_k ξ² + δ_k ξ(1−ξ)] / [s_k + (δ_{k+1} + δ_k − 2 s_k) ξ(1−ξ)]

    dy/dx = s_k² [δ_{k+1} ξ² + 2 s_k ξ(1−ξ) + δ_k (1−ξ)²] / [s_k + (δ_{k+1} + δ_k − 2 s_k) ξ(1−ξ)]²

It is monotone (all δ, s > 0), continuous with continuous derivative at the knots, and inverted
in closed form by the root of a quadratic (eqs. 6–8). Outside [−B, B] the map is the identity
("linear tails"); the boundary derivatives are fixed to 1 so the derivative is continuous there.

Network outputs per dimension: K unnormalised widths, K heights, K − 1 interior derivatives
(n_params = 3K − 1); widths/heights go through softmax (with a minimum bin size), derivatives
through softplus (with a minimum), shifted so that zero outputs give the identity.

Variants (``variant``): ``"coupling"`` (RQ-NSF (C): half the dimensions condition the splines of
the other half, alternating) and ``"autoregressive"`` (RQ-NSF (AR): a MADE gives every dimension's
spline from the previous ones — density in one pass, sampling in D passes, like MAF).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .base import ModelError
from .flows_common import (ActNorm, Compose, ContextMLP, FlowModel, Inverse, InvertibleLinearLU, Permute, Reshape,
                           Transform, _sum_per_example)
from .maf import autoregressive_stack
from .registry import register

MIN_BIN = 1e-3
MIN_DERIV = 1e-3
_DERIV_SHIFT = math.log(math.expm1(1 - MIN_DERIV))   # softplus(0 + shift) + MIN_DERIV = 1


def _knots(raw, bound, min_size):
    K = raw.shape[-1]
    w = min_size + (1 - min_size * K) * F.softmax(raw, dim=-1)
    cum = F.pad(torch.cumsum(w, -1), (1, 0))
    cum = 2 * bound * cum - bound
    cum = torch.cat([torch.full_like(cum[..., :1], -bound), cum[..., 1:-1], torch.full_like(cum[..., :1], bound)], -1)
    return cum, cum[..., 1:] - cum[..., :-1]


def rational_quadratic_spline(x, widths, heights, derivs, bound: float = 3.0, inverse: bool = False):
    """Element-wise RQS with identity tails. ``widths``/``heights``: (..., K) unnormalised;
    ``derivs``: (..., K − 1) unnormalised interior derivatives. Returns (y, ln|dy/dx|) element-wise
    (for ``inverse=True``: (x, ln|dx/dy|)).
    """
    if widths.shape[:-1] != x.shape or heights.shape[:-1] != x.shape or derivs.shape[:-1] != x.shape:
        raise ValueError(f"spline parameters {tuple(widths.shape)}, {tuple(heights.shape)}, {tuple(derivs.shape)} "
                         f"do not match inputs {tuple(x.shape)} (+ a last axis of K, K, K-1)")
    inside = (x >= -bound) & (x <= bound)
    xin = x.clamp(-bound, bound)
    cx, w = _knots(widths, bound, MIN_BIN)
    cy, h = _knots(heights, bound, MIN_BIN)
    d = MIN_DERIV + F.softplus(derivs + _DERIV_SHIFT)
    one = torch.ones_like(d[..., :1])
    d = torch.cat([one, d, one], -1)                       # boundary derivatives 1: C¹ with the tails
    knots = cy if inverse else cx
    idx = (torch.sum(xin[..., None] >= knots[..., 1:-1], dim=-1)).unsqueeze(-1)   # bin k ∈ 0..K−1
    xk, wk = cx.gather(-1, idx)[..., 0], w.gather(-1, idx)[..., 0]
    yk, hk = cy.gather(-1, idx)[..., 0], h.gather(-1, idx)[..., 0]
    dk, dk1 = d.gather(-1, idx)[..., 0], d.gather(-1, idx + 1)[..., 0]
    sk = hk / wk
    if not inverse:
        xi = (xin - xk) / wk
        t = xi * (1 - xi)
        den = sk + (dk1 + dk - 2 * sk) * t
        y = yk + hk * (sk * xi**2 + dk * t) / den
        dydx = sk**2 * (dk1 * xi**2 + 2 * sk * t + dk * (1 - xi) ** 2) / den**2
        out, lad = y, torch.log(dydx)
    else:
        dy = xin - yk
        c2 = dk1 + dk - 2 * sk
        a = hk * (sk - dk) + dy * c2
        b = hk * dk - dy * c2
        c = -sk * dy
        disc = (b**2 - 4 * a * c).clamp(min=0)
        xi = (2 * c) / (-b - torch.sqrt(disc))
        xi = xi.clamp(0, 1)
        t = xi * (1 - xi)
        den = sk + c2 * t
        dydx = sk**2 * (dk1 * xi**2 + 2 * sk * t + dk * (1 - xi) ** 2) / den**2
        out, lad = xk + xi * wk, -torch.log(dydx)
    return torch.where(inside, out, x), torch.where(inside, lad, torch.zeros_like(lad))


class SplineElementwise:
    """RQS as the element-wise map of autoregressive layers (``maf.MaskedAutoregressive``)."""

    def __init__(self, bins: int = 8, bound: float = 3.0):
        self.bins, self.bound = bins, bound
        self.n_params = 3 * bins - 1

    def _split(self, p):
        K = self.bins
        return p[..., :K], p[..., K:2 * K], p[..., 2 * K:]

    def forward(self, u, p):
        w, h, d = self._split(p)
        return rational_quadratic_spline(u, w, h, d, self.bound)

    def inverse(self, v, p):
        w, h, d = self._split(p)
        return rational_quadratic_spline(v, w, h, d, self.bound, inverse=True)


class SplineCoupling(Transform):
    """Coupling layer with RQS transformer: z_B = RQS(x_B; θ(x_A, context)), z_A = x_A (mask b on A).

    ln|det| = Σ_{i ∈ B} ln RQS'(x_i). ``net`` maps (b ⊙ x, context) to D · (3K − 1) outputs.
    """

    def __init__(self, mask: torch.Tensor, net, bins: int = 8, bound: float = 3.0):
        super().__init__()
        self.register_buffer("mask", mask.reshape(1, -1))
        self.net = net
        self.el = SplineElementwise(bins, bound)

    def _apply_spline(self, v, context, inverse):
        b = self.mask.to(v.dtype)
        p = self.net(v * b, context).reshape(v.shape[0], v.shape[1], self.el.n_params)
        out, lad = (self.el.inverse if inverse else self.el.forward)(v, p)
        keep = b.bool()
        out = torch.where(keep, v, out)
        lad = torch.where(keep, torch.zeros_like(lad), lad)
        return out, _sum_per_example(lad)

    def forward(self, x, context=None):
        return self._apply_spline(x, context, False)

    def inverse(self, z, context=None):
        return self._apply_spline(z, context, True)


@register("nsf")
class NSF(FlowModel):
    """Neural spline flow (Durkan et al. 2019): rational-quadratic splines in coupling or autoregressive layers."""

    likelihood = "exact"   # "bound" per instance on discrete data

    @dataclass
    class Config:
        variant: str = "coupling"               # coupling | autoregressive
        num_layers: int = 4
        hidden: tuple[int, ...] = (128, 128)
        bins: int = 8
        tail_bound: float = 4.0                 # splines act on [−B, B]; identity outside
        actnorm: bool = True
        linear: str = "lu"                      # coupling: mixing between layers: lu | reverse | random
        act: str = "relu"
        dropout: float = 0.0                     # dropout in the conditioners (small data overfit: digits)
        preprocess: str = "logit"               # discrete data: logit | affine | none
        logit_alpha: float = 0.05
        dequant: str = "uniform"                 # discrete data: uniform | variational (learned q(u|x), Flow++)
        deq_layers: int = 4                      # variational dequantiser: layers
        deq_hidden: int = 32                     # variational dequantiser: conv channels (MLP: 2× this)
        conditional: bool = False               # p(x | y): labels/conditions feed the conditioners
        cond_embed: int = 16
        seed: int = 0

    @classmethod
    def default_config(cls, info):
        if info.modality == "image" or info.dim > 16:
            return cls.Config(num_layers=4, hidden=(64, 64), bins=8, tail_bound=4.0, dropout=0.3)
        return cls.Config()

    def build_flow(self, context_dim):
        c = self.config
        D = self.info.dim
        if c.variant == "autoregressive":
            ts = autoregressive_stack(D, c.num_layers, c.hidden, lambda: SplineElementwise(c.bins, c.tail_bound),
                                      context_dim, "density", c.actnorm, c.act, c.dropout)
        elif c.variant == "coupling":
            if D < 2:
                raise ModelError("nsf variant='coupling' needs at least 2 dimensions; use variant='autoregressive'")
            el_params = 3 * c.bins - 1
            ts = []
            for i in range(c.num_layers):
                if c.actnorm:
                    ts.append(ActNorm(D))
                mask = torch.zeros(D)
                mask[: (D + 1) // 2] = 1
                if i % 2:
                    mask = 1 - mask
                ts.append(SplineCoupling(mask, ContextMLP(D, D * el_params, c.hidden, context_dim, c.act, dropout=c.dropout), c.bins,
                                         c.tail_bound))
                if i < c.num_layers - 1 and D > 2:
                    ts.append(InvertibleLinearLU(D, seed=c.seed + i) if c.linear == "lu"
                              else Permute(D, c.linear, seed=c.seed + i))
        else:
            raise ModelError(f"nsf: variant must be 'coupling' or 'autoregressive', got {c.variant!r}")
        shape = self.info.shape
        if len(shape) != 1:
            ts = [Reshape(shape, (D,)), *ts, Inverse(Reshape(shape, (D,)))]
        return Compose(ts)
