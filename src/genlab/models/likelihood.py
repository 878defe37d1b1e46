"""Likelihood bookkeeping shared by every family: units, dequantisation, pre-processing,
discretised distributions. One module, tested in ``tests/test_likelihood.py``.

Units (ANCHORS "Units")
-----------------------
Every ``log_prob`` in genlab returns **nats per example**. For images the literature reports
bits per dimension::

    bits/dim = NLL_nats / (D · ln 2)                       -> :func:`nats_to_bits_per_dim`

Digits (D = 64): 1 bit/dim = 64 · ln 2 = 44.36 nats/image. MNIST (D = 784): 543.4 nats/image.

Uniform dequantisation (Theis et al. 2016; Ho et al. 2019, §3.1)
-----------------------------------------------------------------
For integer data x ∈ {0..K−1}^D and any density p on ℝ^D, the discrete model
P(x) = ∫_{[0,1)^D} p(x + u) du satisfies, by Jensen,

    −ln P(x) ≤ −E_{u ~ U[0,1)^D} ln p(x + u).

A density is usually fitted on a rescaled variable y = a·(x + u) + b (e.g. a = 1/K so that y ∈
[0, 1)). Change of variables: ln p(x + u) = ln q(y) + D · ln|a|. :func:`uniform_dequantize`
returns y together with that per-example log-Jacobian term, so the bound in nats is always

    bound(x) = −(ln q(y) + logdet),    logdet = D · ln|a|.

(With u ~ U[0, c)^D instead, subtract D · ln c: the bins then have volume c^D.)

Pre-processing transforms (Dinh et al. 2017, §4.1)
---------------------------------------------------
``logit``: z = logit(α + (1 − 2α) y) for y ∈ [0, 1) with log|dz/dy| = Σ [ln(1−2α) − ln s − ln(1−s)],
s = α + (1−2α)y. ``affine``: z = a·y + b with log|dz/dy| = D · ln|a|. Each returns its log-det so
the total bound is −(ln p_Z(z) + logdet_pre + logdet_deq).

Discretised distributions (Salimans et al. 2017, PixelCNN++)
-------------------------------------------------------------
Levels k ∈ {0..K−1} sit at centres c_k = 2k/(K−1) − 1 in [−1, 1] with bin half-width h = 1/(K−1).
Discretised logistic: P(k) = σ((c_k + h − μ)/s) − σ((c_k − h − μ)/s), with the edge bins extended
to ±∞ (P(0) = σ((c_0 + h − μ)/s), P(K−1) = 1 − σ((c_{K−1} − h − μ)/s)) so the levels sum to 1.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

LN2 = math.log(2.0)

__all__ = [
    "LN2", "nats_to_bits_per_dim", "bits_per_dim_to_nats", "per_dim", "per_example",
    "uniform_dequantize", "dequantization_log_jacobian", "quantize", "dequantize_with",
    "logit_transform", "logit_inverse", "affine_transform", "affine_inverse",
    "levels_to_unit", "unit_to_levels",
    "categorical_log_prob", "discretized_logistic_log_prob", "discretized_mix_logistic_log_prob",
    "sample_discretized_logistic", "sample_discretized_mix_logistic", "log_sigmoid_diff",
    "NLLRecord",
]


# ---------------------------------------------------------------------------------------------
# Units
# ---------------------------------------------------------------------------------------------
def nats_to_bits_per_dim(nats, dim: int):
    """bits/dim = nats / (D · ln 2)   (nats per example → bits per dimension)."""
    return nats / (dim * LN2)


def bits_per_dim_to_nats(bpd, dim: int):
    """nats = bits/dim · D · ln 2   (bits per dimension → nats per example)."""
    return bpd * dim * LN2


def per_dim(nats_per_example, dim: int):
    """nats per example → nats per dimension (divide by D)."""
    return nats_per_example / dim


def per_example(nats_per_dim, dim: int):
    """nats per dimension → nats per example (multiply by D)."""
    return nats_per_dim * dim


def _dim_of(x: torch.Tensor) -> int:
    return int(math.prod(x.shape[1:]))


# ---------------------------------------------------------------------------------------------
# Dequantisation
# ---------------------------------------------------------------------------------------------
def dequantization_log_jacobian(dim: int, num_levels: int, low: float = 0.0, high: float = 1.0) -> float:
    """log|det| of y = low + (high − low)·(x + u)/K, per example: D · ln((high − low)/K)."""
    return dim * math.log((high - low) / num_levels)


def uniform_dequantize(x: torch.Tensor, num_levels: int, generator: torch.Generator | None = None,
                       low: float = 0.0, high: float = 1.0, dtype=torch.float32):
    """Uniform dequantisation of integer levels ``x`` in ``0..K−1``.

    y = low + (high − low) · (x + u) / K,  u ~ U[0, 1)^D  (one draw per call)

    Returns ``(y, logdet)``: ``logdet`` (per example, shape (N,)) = D · ln((high − low)/K) is the
    log-Jacobian of x + u ↦ y, so that −ln P(x) ≤ −E_u[ln q(y) + logdet] for any density q on y.
    """
    if x.dtype.is_floating_point:
        raise ValueError("uniform_dequantize expects integer levels; got floats")
    u = torch.rand(x.shape, generator=generator, dtype=dtype, device=x.device)
    y = low + (high - low) * (x.to(dtype) + u) / num_levels
    logdet = torch.full((x.shape[0],), dequantization_log_jacobian(_dim_of(x), num_levels, low, high),
                        dtype=dtype, device=x.device)
    return y, logdet


def dequantize_with(x: torch.Tensor, u: torch.Tensor, num_levels: int, low: float = 0.0, high: float = 1.0):
    """Dequantise integer levels ``x`` with a given noise ``u`` ∈ [0, 1)^D (e.g. drawn from a learned
    q(u | x)): y = low + (high − low)·(x + u)/K. Returns ``(y, logdet)`` as :func:`uniform_dequantize`.

    Variational dequantisation (Ho et al. 2019, Flow++ §3.1; Hoogeboom et al. 2021): for any
    density q(u | x) on [0, 1)^D, P(x) = E_q[p(x + u) / q(u | x)], so by Jensen

        ln P(x) ≥ E_{u ~ q(·|x)} [ln p(x + u) − ln q(u | x)]

    with equality iff q(u | x) = p(x + u)/P(x); uniform dequantisation is q = 1. The caller
    subtracts ln q(u | x) from ``logdet``. With k draws, ln (1/k) Σ_j p(x + u_j)/q(u_j | x) is a
    tighter bound in expectation (importance weighting; Burda et al. 2016), still ≤ ln P(x).
    """
    if x.dtype.is_floating_point:
        raise ValueError("dequantize_with expects integer levels; got floats")
    if u.shape != x.shape:
        raise ValueError(f"noise shape {tuple(u.shape)} != data shape {tuple(x.shape)}")
    y = low + (high - low) * (x.to(u.dtype) + u) / num_levels
    logdet = torch.full((x.shape[0],), dequantization_log_jacobian(_dim_of(x), num_levels, low, high),
                        dtype=u.dtype, device=u.device)
    return y, logdet


def quantize(y: torch.Tensor, num_levels: int, low: float = 0.0, high: float = 1.0) -> torch.Tensor:
    """Inverse of :func:`uniform_dequantize` up to u: floor(K (y − low)/(high − low)), clamped to 0..K−1."""
    k = torch.floor((y - low) / (high - low) * num_levels)
    return k.clamp(0, num_levels - 1).long()


# ---------------------------------------------------------------------------------------------
# Pre-processing with log-Jacobians
# ---------------------------------------------------------------------------------------------
def logit_transform(y: torch.Tensor, alpha: float = 0.05):
    """z = logit(s), s = α + (1 − 2α) y   (Dinh et al. 2017, §4.1), for y ∈ [0, 1].

    log|dz/dy| per example = Σ_i [ln(1 − 2α) − ln s_i − ln(1 − s_i)].  Returns ``(z, logdet)``.
    """
    s = alpha + (1 - 2 * alpha) * y
    z = torch.log(s) - torch.log1p(-s)
    ld = math.log(1 - 2 * alpha) - torch.log(s) - torch.log1p(-s)
    return z, ld.reshape(y.shape[0], -1).sum(1)


def logit_inverse(z: torch.Tensor, alpha: float = 0.05):
    """y = (σ(z) − α)/(1 − 2α); returns ``(y, logdet)`` with logdet = log|dy/dz| per example."""
    s = torch.sigmoid(z)
    y = (s - alpha) / (1 - 2 * alpha)
    ld = F.logsigmoid(z) + F.logsigmoid(-z) - math.log(1 - 2 * alpha)
    return y, ld.reshape(z.shape[0], -1).sum(1)


def affine_transform(y: torch.Tensor, scale: float = 1.0, shift: float = 0.0):
    """z = scale · y + shift; log|dz/dy| = D · ln|scale| per example. Returns ``(z, logdet)``."""
    z = scale * y + shift
    ld = torch.full((y.shape[0],), _dim_of(y) * math.log(abs(scale)), dtype=y.dtype, device=y.device)
    return z, ld


def affine_inverse(z: torch.Tensor, scale: float = 1.0, shift: float = 0.0):
    """y = (z − shift)/scale; returns ``(y, logdet)`` with logdet = −D ln|scale|."""
    y = (z - shift) / scale
    ld = torch.full((z.shape[0],), -_dim_of(z) * math.log(abs(scale)), dtype=z.dtype, device=z.device)
    return y, ld


def levels_to_unit(x: torch.Tensor, num_levels: int, dtype=torch.float32) -> torch.Tensor:
    """Levels 0..K−1 → bin centres c_k = 2k/(K − 1) − 1 in [−1, 1] (PixelCNN++ convention)."""
    return x.to(dtype) * (2.0 / (num_levels - 1)) - 1.0


def unit_to_levels(c: torch.Tensor, num_levels: int) -> torch.Tensor:
    """Nearest level for values in [−1, 1] (inverse of :func:`levels_to_unit`), clamped."""
    return torch.round((c + 1.0) * (num_levels - 1) / 2.0).clamp(0, num_levels - 1).long()


# ---------------------------------------------------------------------------------------------
# Discretised distributions
# ---------------------------------------------------------------------------------------------
def categorical_log_prob(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """log P(x) = log_softmax(logits)[x], element-wise over levels (logits: (..., K), x: (...))."""
    return torch.gather(F.log_softmax(logits, dim=-1), -1, x.long().unsqueeze(-1)).squeeze(-1)


def _log1mexp(t: torch.Tensor) -> torch.Tensor:
    """ln(1 − e^t) for t ≤ 0, accurate everywhere (Mächler 2012)."""
    t = t.clamp(max=-1e-30)  # t == 0 means an empty bin: −inf is the right answer, keep it finite-safe
    return torch.where(t > -LN2, torch.log(-torch.expm1(t)), torch.log1p(-torch.exp(t)))


def log_sigmoid_diff(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """ln(σ(a) − σ(b)) for a ≥ b, stable in both tails.

    In the right tail σ(a) − σ(b) = σ(−b) − σ(−a), so flip to the left tail where ln σ ≈ identity:
    ln(σ(a) − σ(b)) = ln σ(a) + ln(1 − exp(ln σ(b) − ln σ(a))).
    """
    flip = (a + b) > 0
    a2 = torch.where(flip, -b, a)
    b2 = torch.where(flip, -a, b)
    la, lb = F.logsigmoid(a2), F.logsigmoid(b2)
    return la + _log1mexp(lb - la)


def discretized_logistic_log_prob(x: torch.Tensor, mean: torch.Tensor, log_scale: torch.Tensor,
                                  num_levels: int) -> torch.Tensor:
    """Element-wise log P(x) of a logistic(μ, s) discretised to ``num_levels`` bins on [−1, 1].

    P(k) = σ((c_k + h − μ)/s) − σ((c_k − h − μ)/s), c_k = 2k/(K−1) − 1, h = 1/(K−1);
    edges: P(0) = σ((c_0 + h − μ)/s), P(K−1) = 1 − σ((c_{K−1} − h − μ)/s)   (PixelCNN++ eq. 2).
    ``x`` holds integer levels; ``mean`` and ``log_scale`` are in the [−1, 1] units of c_k.
    """
    K = num_levels
    c = levels_to_unit(x, K, dtype=mean.dtype)
    h = 1.0 / (K - 1)
    inv_s = torch.exp(-log_scale)
    plus = (c + h - mean) * inv_s
    minus = (c - h - mean) * inv_s
    lo_edge = F.logsigmoid(plus)                  # ln σ(plus), for k = 0
    hi_edge = F.logsigmoid(-minus)                # ln(1 − σ(minus)), for k = K−1
    mid = log_sigmoid_diff(plus, minus)
    xl = x.long()
    return torch.where(xl == 0, lo_edge, torch.where(xl == K - 1, hi_edge, mid))


def discretized_mix_logistic_log_prob(x: torch.Tensor, logits: torch.Tensor, means: torch.Tensor,
                                      log_scales: torch.Tensor, num_levels: int) -> torch.Tensor:
    """Mixture of discretised logistics: log Σ_m π_m P_m(x); parameters shaped (..., M), x (...)."""
    comp = discretized_logistic_log_prob(x.unsqueeze(-1), means, log_scales, num_levels)
    return torch.logsumexp(F.log_softmax(logits, dim=-1) + comp, dim=-1)


def sample_discretized_logistic(mean: torch.Tensor, log_scale: torch.Tensor, num_levels: int,
                                generator: torch.Generator | None = None) -> torch.Tensor:
    """Exact sample: draw v ~ logistic(μ, s) and return the level whose (edge-extended) bin holds v."""
    u = torch.rand(mean.shape, generator=generator, dtype=mean.dtype, device=mean.device).clamp(1e-6, 1 - 1e-6)
    v = mean + torch.exp(log_scale) * (torch.log(u) - torch.log1p(-u))
    return unit_to_levels(v, num_levels)


def sample_discretized_mix_logistic(logits: torch.Tensor, means: torch.Tensor, log_scales: torch.Tensor,
                                    num_levels: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Pick a component m ~ Cat(π) per element, then sample its discretised logistic."""
    flat = F.softmax(logits, -1).reshape(-1, logits.shape[-1])
    m = torch.multinomial(flat, 1, generator=generator).reshape(logits.shape[:-1] + (1,))
    mu = torch.gather(means, -1, m).squeeze(-1)
    ls = torch.gather(log_scales, -1, m).squeeze(-1)
    return sample_discretized_logistic(mu, ls, num_levels, generator=generator)


# ---------------------------------------------------------------------------------------------
# Records
# ---------------------------------------------------------------------------------------------
@dataclass
class NLLRecord:
    """A negative log-likelihood with its protocol.

    value:          mean NLL in nats per example.
    dim:            D (number of scalars per example), for bits/dim.
    kind:           "exact" | "bound" | "estimate" (what ``log_prob`` is; see models/base.py).
    dequantization: "none" (continuous data or a discrete model), "uniform" (bound), or another scheme.
    num_samples:    Monte-Carlo draws per example (dequantisation noise, importance samples), if any.
    """

    value: float
    dim: int
    kind: str = "exact"
    dequantization: str = "none"
    num_samples: int | None = None
    n_examples: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    units: str = "nats/example"

    @property
    def bits_per_dim(self) -> float:
        return float(nats_to_bits_per_dim(self.value, self.dim))

    @property
    def nats_per_dim(self) -> float:
        return float(per_dim(self.value, self.dim))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["bits_per_dim"] = self.bits_per_dim
        return d

    def __str__(self) -> str:
        tag = "≥" if self.kind == "bound" else "≈" if self.kind == "estimate" else "="
        deq = f", {self.dequantization} dequantisation" if self.dequantization != "none" else ""
        return (f"NLL {tag} {self.value:.3f} nats/example ({self.bits_per_dim:.4f} bits/dim, D={self.dim}, "
                f"{self.kind}{deq})")

    @classmethod
    def from_log_prob(cls, log_prob: torch.Tensor, dim: int, **kw) -> "NLLRecord":
        """Mean NLL from per-example log-likelihoods (nats)."""
        lp = log_prob.detach().double()
        return cls(value=float(-lp.mean()), dim=dim, n_examples=int(lp.numel()), **kw)
