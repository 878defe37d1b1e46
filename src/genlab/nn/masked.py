"""Masked layers and MADE (Germain, Gregor, Murray & Larochelle 2015, "MADE: Masked Autoencoder
for Distribution Estimation"), shared by the autoregressive ``made`` family and the MAF/IAF/NSF flows.

Autoregressive property. Give each input dimension i a degree m(i) = its position in the ordering
(1..D). Hidden unit k of layer l gets a degree m^l(k) ∈ [m_min, D − 1]. Connections:

    input → hidden, hidden → hidden:  M[k, j] = 1  iff  m^l(k) ≥ m^{l−1}(j)       (eq. 12)
    hidden → output:                  M[i, k] = 1  iff  m(i)   >  m^L(k)           (eq. 13)

so output block i (its ``n_params`` parameters) depends only on inputs j with m(j) < m(i).
The first dimension in the ordering therefore depends on nothing (only biases, and the context).

Usage::

    made = MADE(dim=5, hidden=(64, 64), n_params=2)       # natural order 0,1,2,3,4
    params = made(x)                                       # (N, 5, 2): params[:, i] sees x[:, <i]
    made = MADE(5, (64,), 3, order="random", seed=1)       # a random ordering from a seed
    made.set_order("reverse"); made.resample(seed=3)       # new ordering / new hidden degrees

Context (``cond_dim > 0``): a condition vector c feeds every first-layer hidden unit unmasked
(Papamakarios et al. 2017, MAF §3.4), so all outputs may depend on c.

Orderings and hidden degrees live in buffers (``order``, and each layer's ``mask``), so a model
saved with ``state_dict`` reloads with exactly the same connectivity. Hidden degrees are
assigned cyclically (``degrees="cyclic"``: every degree equally represented, deterministic) or
at random from ``seed`` (``degrees="random"``, as in the paper); ``resample(seed)`` draws a new
random ordering and/or degrees for order-agnostic / connectivity-agnostic training (§4.2).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
import torch.nn.functional as F

from .mlp import activation


class MaskedLinear(nn.Linear):
    """y = x (W ⊙ M)^T + b, with a fixed binary mask M (a buffer; shape (out, in))."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        super().__init__(in_features, out_features, bias)
        self.register_buffer("mask", torch.ones(out_features, in_features))

    def set_mask(self, mask: torch.Tensor) -> None:
        if tuple(mask.shape) != tuple(self.mask.shape):
            raise ValueError(f"mask shape {tuple(mask.shape)} != weight shape {tuple(self.mask.shape)}")
        self.mask.copy_(mask.to(self.mask))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.mask, self.bias)


def make_order(dim: int, order="natural", seed: int = 0) -> torch.Tensor:
    """An ordering as a permutation π of 0..D−1: π[i] is the position (0-based) of dimension i.

    ``order``: "natural" (0..D−1), "reverse", "random" (from ``seed``) or a sequence/tensor of
    positions (a permutation of 0..D−1).
    """
    if isinstance(order, str):
        if order == "natural":
            return torch.arange(dim)
        if order == "reverse":
            return torch.arange(dim - 1, -1, -1)
        if order == "random":
            return torch.randperm(dim, generator=torch.Generator().manual_seed(seed))
        raise ValueError(f"order must be 'natural', 'reverse', 'random' or a permutation, got {order!r}")
    t = torch.as_tensor(order, dtype=torch.long).flatten()
    if t.numel() != dim or not torch.equal(torch.sort(t).values, torch.arange(dim)):
        raise ValueError(f"order must be a permutation of 0..{dim - 1}, got {t.tolist()}")
    return t


def block_degrees(order: torch.Tensor, passes: int | None = None) -> torch.Tensor:
    """Input degrees 1..P: m(i) = order[i] + 1 (P = D, fully autoregressive), or with ``passes=P < D``
    the ordering cut into P consecutive blocks of ⌈D/P⌉ positions, m(i) = ⌊order[i] / ⌈D/P⌉⌋ + 1:
    dimensions of one block then depend only on earlier blocks, so inverting the transform takes
    P sequential passes instead of D (zuko's ``passes``; P = 2 is a coupling layer)."""
    D = order.numel()
    if passes is None or passes >= D:
        return order.long() + 1
    if passes < 1:
        raise ValueError(f"passes must be >= 1, got {passes}")
    return torch.div(order.long(), -(-D // passes), rounding_mode="floor") + 1


def made_masks(order: torch.Tensor, hidden: Sequence[int], n_params: int = 1, degrees: str = "cyclic",
               seed: int = 0, min_degree: int = 1, passes: int | None = None) -> list[torch.Tensor]:
    """MADE masks (eqs. 12–13) for input degrees m(i) = order[i] + 1 (or block degrees with
    ``passes``, see :func:`block_degrees`).

    Returns one mask per layer (shapes (h1, D), (h2, h1), …, (n_params·D, hL)); the output units are
    laid out parameter-major: unit p·D + i is parameter p of dimension i.
    ``min_degree=0`` lets some hidden units see no input at all (only the context), which gives the
    first dimension in the ordering context-dependent parameters.
    """
    m_in = block_degrees(order, passes)
    top = int(m_in.max())                       # D, or the number of blocks
    g = torch.Generator().manual_seed(seed)
    masks, prev = [], m_in
    for h in hidden:
        lo = min(int(prev.min()), top - 1) if min_degree >= 1 else 0
        lo = max(lo, min_degree)
        hi = max(top - 1, lo)
        if degrees == "cyclic":
            m_h = lo + torch.arange(h) % (hi - lo + 1)
        elif degrees == "random":
            m_h = torch.randint(lo, hi + 1, (h,), generator=g)
        else:
            raise ValueError(f"degrees must be 'cyclic' or 'random', got {degrees!r}")
        masks.append((m_h[:, None] >= prev[None, :]).float())
        prev = m_h
    m_out = m_in.repeat(n_params)
    masks.append((m_out[:, None] > prev[None, :]).float())
    return masks


class MADE(nn.Module):
    """Masked autoencoder: x (N, D) [, context (N, cond_dim)] → parameters (N, D, n_params).

    ``params[:, i, :]`` depends only on ``x[:, j]`` with ``order[j] < order[i]`` (and the context).
    ``zero_last=True`` initialises the output layer to zero (identity start for flows; tests of such
    flows must train first). ``passes=P``: block-autoregressive (``params[:, i]`` sees the earlier of P
    blocks of the ordering, :func:`block_degrees`); None = fully autoregressive. ``act``: any name of :data:`genlab.nn.mlp.ACTIVATIONS`. ``dropout``: after
    every hidden activation (0 = off; masks are unaffected, so causality holds in train mode too).
    """

    def __init__(self, dim: int, hidden: Sequence[int] = (128, 128), n_params: int = 1, cond_dim: int = 0,
                 order="natural", seed: int = 0, degrees: str = "cyclic", act: str = "relu",
                 zero_last: bool = False, dropout: float = 0.0, passes: int | None = None):
        super().__init__()
        self.passes = passes
        if dim < 1 or not hidden:
            raise ValueError("MADE needs dim >= 1 and at least one hidden layer")
        self.dim, self.hidden, self.n_params, self.cond_dim = dim, tuple(hidden), n_params, cond_dim
        self.degrees, self.seed = degrees, seed
        self.register_buffer("order", make_order(dim, order, seed))
        sizes = [dim, *hidden]
        self.layers = nn.ModuleList(MaskedLinear(sizes[i], sizes[i + 1]) for i in range(len(hidden)))
        self.out = MaskedLinear(hidden[-1], n_params * dim)
        self.cond = nn.Linear(cond_dim, hidden[0], bias=False) if cond_dim else None
        self.act = activation(act)
        self.drop = nn.Dropout(dropout) if dropout else nn.Identity()
        if zero_last:
            nn.init.zeros_(self.out.weight)
            nn.init.zeros_(self.out.bias)
        self._apply_masks()

    def _apply_masks(self, seed: int | None = None) -> None:
        masks = made_masks(self.order, self.hidden, self.n_params, self.degrees,
                           self.seed if seed is None else seed, min_degree=0 if self.cond_dim else 1,
                           passes=self.passes)
        for layer, m in zip([*self.layers, self.out], masks):
            layer.set_mask(m)

    @torch.no_grad()
    def set_order(self, order="natural", seed: int = 0) -> None:
        """Change the ordering (``natural``/``reverse``/``random``/a permutation) and rebuild masks."""
        self.order.copy_(make_order(self.dim, order, seed).to(self.order))
        self._apply_masks()

    @torch.no_grad()
    def resample(self, seed: int, order: bool = True) -> None:
        """Order-/connectivity-agnostic training: a new random ordering (if ``order``) and, with
        ``degrees="random"``, new hidden degrees, all drawn from ``seed`` and stored in buffers."""
        if order:
            self.order.copy_(make_order(self.dim, "random", seed).to(self.order))
        self._apply_masks(seed=seed)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        if x.shape[-1] != self.dim:
            raise ValueError(f"MADE expects inputs with {self.dim} features, got shape {tuple(x.shape)}")
        h = self.layers[0](x)
        if self.cond is not None:
            if context is None:
                raise ValueError("this MADE was built with cond_dim > 0: pass context=")
            h = h + self.cond(context)
        h = self.drop(self.act(h))
        for layer in self.layers[1:]:
            h = self.drop(self.act(layer(h)))
        out = self.out(h)                                   # (N, n_params·D), parameter-major
        return out.reshape(*x.shape[:-1], self.n_params, self.dim).transpose(-1, -2)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, hidden={self.hidden}, n_params={self.n_params}, cond_dim={self.cond_dim}"


__all__ = ["MaskedLinear", "MADE", "made_masks", "make_order", "block_degrees"]
