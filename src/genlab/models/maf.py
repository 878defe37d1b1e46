"""Masked autoregressive flows: MAF (Papamakarios, Pavlakou & Murray 2017) and IAF (Kingma et al. 2016).

Both stack autoregressive element-wise bijections whose parameters come from a MADE
(``genlab.nn.masked.MADE``; Germain et al. 2015), with the ordering reversed between layers.
With h(u; θ) = u · exp(s) + t (log-scale bounded, s = B tanh(ŝ/B)):

MAF (data → latent):  z_i = h(x_i; θ_i(x_<i)),        ln|det ∂z/∂x| = Σ_i s_i(x_<i)
    density  ln p(x) = ln N(z) + Σ s_i  — ONE MADE pass (all θ_i computed from x at once): fast;
    sampling x_i = h⁻¹(z_i; θ_i(x_<i)) needs x_<i first — D sequential MADE passes: slow.

IAF (latent → data):  x_i = h(z_i; θ_i(z_<i)),        ln|det ∂x/∂z| = Σ_i s_i(z_<i)
    sampling: ONE pass (θ from z, which we have): fast; density needs z from x, solved
    dimension by dimension — D sequential passes: slow. IAF is the natural choice when sampling
    (and the density of one's own samples) matters, e.g. as a VAE posterior; MAF when density
    evaluation (training by maximum likelihood) matters. Both are trained here by maximum
    likelihood, so IAF training costs D passes per layer per step.

``made`` (MAF with ``transform="spline"``) is the autoregressive neural spline flow; see ``nsf``.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..nn.masked import MADE, block_degrees
from .base import ModelError
from .flows_common import ActNorm, Compose, FlowModel, Inverse, Reshape, Transform, soft_clamp
from .registry import register


class AffineElementwise:
    """h(u; ŝ, t) = u · exp(s) + t with s = B tanh(ŝ/B); n_params = 2."""

    n_params = 2

    def __init__(self, scale_bound: float = 2.0):
        self.scale_bound = scale_bound

    def forward(self, u, p):
        s = soft_clamp(p[..., 0], self.scale_bound)
        return u * torch.exp(s) + p[..., 1], s

    def inverse(self, v, p):
        s = soft_clamp(p[..., 0], self.scale_bound)
        return (v - p[..., 1]) * torch.exp(-s), -s


class MaskedAutoregressive(Transform):
    """Autoregressive layer on vectors (N, D) with MADE parameters θ_i = MADE(·)_<i.

    ``fast="density"`` (MAF): forward x → z = h(x; θ(x)) in one pass, inverse sequential.
    ``fast="sampling"`` (IAF): inverse z → x = h(z; θ(z)) in one pass, forward sequential.
    ``elementwise`` provides ``forward(u, params) -> (v, logabsdet)`` and ``inverse``.
    """

    def __init__(self, dim, hidden, elementwise, context_dim=0, order="natural", fast="density", act="relu",
                 seed=0, dropout=0.0, passes=None):
        super().__init__()
        if fast not in ("density", "sampling"):
            raise ValueError("fast must be 'density' (MAF) or 'sampling' (IAF)")
        self.dim, self.fast, self.el = dim, fast, elementwise
        self.made = MADE(dim, hidden, elementwise.n_params, cond_dim=context_dim, order=order, seed=seed, act=act,
                         zero_last=True, dropout=dropout, passes=passes)

    def _one_pass(self, u, context):
        v, ld = self.el.forward(u, self.made(u, context))
        return v, ld.sum(-1)

    def _sequential(self, v, context):
        """Solve v = h(u; θ(u_<)) for u, one block of the ordering per MADE pass (a block is one
        dimension unless the MADE has ``passes``): pass b fixes block b, whose θ sees only blocks < b,
        already final. In the last pass every θ_i sees its final inputs, so its output and log-det
        are exact for all dimensions: P passes in all (D when fully autoregressive)."""
        degree = block_degrees(self.made.order, self.made.passes).to(v.device)
        u = torch.zeros_like(v)
        blocks = int(degree.max())
        for b in range(1, blocks + 1):
            out, ld = self.el.inverse(v, self.made(u, context))
            u = out if b == blocks else torch.where(degree <= b, out, u)
        return u, ld.sum(-1)

    def forward(self, x, context=None):
        return self._one_pass(x, context) if self.fast == "density" else self._sequential(x, context)

    def inverse(self, z, context=None):
        return self._sequential(z, context) if self.fast == "density" else self._one_pass(z, context)


def autoregressive_stack(dim, num_layers, hidden, make_elementwise, context_dim, fast, actnorm, act, dropout=0.0,
                         passes=None):
    """[ActNorm] → autoregressive layer, orderings alternating natural / reverse (``passes``: see MADE)."""
    ts = []
    for i in range(num_layers):
        if actnorm:
            ts.append(ActNorm(dim))
        ts.append(MaskedAutoregressive(dim, hidden, make_elementwise(), context_dim,
                                       order="natural" if i % 2 == 0 else "reverse", fast=fast, act=act, seed=i,
                                       dropout=dropout, passes=passes))
    return ts


class _ARFlow(FlowModel):
    fast = "density"

    @dataclass
    class Config:
        num_layers: int = 5
        hidden: tuple[int, ...] = (128, 128)
        scale_bound: float = 2.0
        actnorm: bool = True
        act: str = "relu"
        dropout: float = 0.0                 # dropout in the MADEs (small data overfit: digits)
        passes: int | None = None            # None: fully autoregressive; P: P blocks (slow direction = P passes)
        preprocess: str = "logit"            # discrete data: logit | affine | none
        logit_alpha: float = 0.05
        conditional: bool = False               # p(x | y): labels/conditions feed the conditioners
        cond_embed: int = 16

    @classmethod
    def default_config(cls, info):
        if info.modality == "image" or info.dim > 16:
            return cls.Config(num_layers=5, hidden=(256,), dropout=0.3)   # small data (digits) overfit quickly
        return cls.Config()

    def build_flow(self, context_dim):
        c = self.config
        D = self.info.dim
        ts = autoregressive_stack(D, c.num_layers, c.hidden, lambda: AffineElementwise(c.scale_bound), context_dim,
                                  self.fast, c.actnorm, c.act, c.dropout, c.passes)
        shape = self.info.shape
        if len(shape) != 1:
            ts = [Reshape(shape, (D,)), *ts, Inverse(Reshape(shape, (D,)))]
        return Compose(ts)


@register("maf")
class MAF(_ARFlow):
    """Masked autoregressive flow (Papamakarios et al. 2017): density in one pass, sampling in D passes."""

    likelihood = "exact"   # "bound" per instance on discrete data
    fast = "density"


@register("iaf")
class IAF(_ARFlow):
    """Inverse autoregressive flow (Kingma et al. 2016): sampling in one pass, density in D passes."""

    likelihood = "exact"   # "bound" per instance on discrete data
    fast = "sampling"

    @classmethod
    def check_data(cls, info):
        super().check_data(info)
        if info.dim > 1024:
            raise ModelError(f"iaf: density evaluation costs D={info.dim} sequential passes per layer; "
                             "use 'maf' or a coupling flow for data this large")
