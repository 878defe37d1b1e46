"""Likelihood summaries and unit conversions.

A model's ``log_prob`` returns nats per example; its ``likelihood`` attribute says whether that is
``exact``, a ``bound`` (ELBO: the reported NLL is an upper bound) or an ``estimate``. Units
(ANCHORS.md):

    bits/dim  = NLL_nats / (D · ln 2)            (D = values per example: 64 for 8×8 digits)
    bits/char = NLL_nats_per_char / ln 2
    perplexity = exp(NLL_nats_per_token)

Uniform dequantisation (Theis et al. 2016, "A note on the evaluation of generative models"):
for integer data and a density p on x + u, u ~ U[0, c)^D, the discrete NLL is bounded by
−E_u ln p(x + u) + D ln c. ``dequantisation_offset`` returns that D ln c.

The bits/dim converters are those of the shared bookkeeping module ``genlab.models.likelihood``
(re-exported here); bits/char, perplexity and the summaries below are the metrics' own.
"""
from __future__ import annotations

import math

import torch

from ..models.likelihood import LN2, bits_per_dim_to_nats, nats_to_bits_per_dim  # noqa: F401  (shared units)
from ._util import MetricError


def bits_per_char(nats_per_char: float) -> float:
    """bits/char = nats/char / ln 2."""
    return float(nats_per_char) / LN2


def perplexity(nats_per_token: float) -> float:
    """perplexity = exp(mean NLL per token in nats)."""
    return math.exp(float(nats_per_token))


def dequantisation_offset(dim: int, width: float = 1.0) -> float:
    """D ln c: add to a continuous NLL (nats) of u ~ U[0, c)^D-dequantised data to bound the discrete NLL."""
    return dim * math.log(width)


def nll(log_prob, dim: int | None = None, kind: str = "exact", per: str = "example",
        tokens_per_example: int | None = None) -> dict:
    """Summary of per-example log-likelihoods (nats): mean NLL, its standard error, and units.

    NLL = −(1/N) Σ_i log p(x_i);  s.e. = std_i(log p(x_i)) / √N.
    ``dim`` (values per example) adds ``bits_per_dim``; ``tokens_per_example`` adds
    ``nats_per_token``, ``bits_per_char`` and ``perplexity`` (character/token models).
    ``kind`` is the model's likelihood kind: with ``bound`` the NLL is an upper bound.
    """
    lp = torch.as_tensor(log_prob).detach().double().reshape(-1)
    if lp.numel() == 0:
        raise MetricError("nll needs at least one log-probability")
    if torch.isnan(lp).any():
        raise MetricError("log_prob contains NaN")
    n = lp.numel()
    mean = float(-lp.mean())
    se = float(lp.std(unbiased=True) / math.sqrt(n)) if n > 1 else float("nan")
    out = {"nll": mean, "nll_se": se, "n": n, "kind": kind, "units": f"nats/{per}"}
    if dim:
        out["bits_per_dim"] = float(nats_to_bits_per_dim(mean, dim))
        out["dim"] = int(dim)
    if tokens_per_example:
        npt = mean / tokens_per_example
        out.update(nats_per_token=npt, bits_per_char=bits_per_char(npt), perplexity=perplexity(npt))
    if kind == "bound":
        out["note"] = "log_prob is a lower bound (ELBO): the NLL is an upper bound"
    elif kind == "estimate":
        out["note"] = "log_prob is a stochastic estimate"
    return out


def kl_gap(log_prob_or_nll, entropy: float) -> float:
    """KL(p_data ‖ p_model) estimate = test NLL − H(p_data) (nats/example).

    E_p[−ln q(x)] − H(p) = KL(p ‖ q) ≥ 0 (cross-entropy decomposition). Independent of the
    data's scale, unlike the NLL (ANCHORS.md). ``log_prob_or_nll``: per-example log q(x) on
    test data (tensor) or the mean NLL (float).
    """
    if entropy is None:
        raise MetricError("kl_gap needs the data's true entropy (dataset.entropy is None for this data)")
    if isinstance(log_prob_or_nll, (int, float)):
        return float(log_prob_or_nll) - float(entropy)
    return float(-torch.as_tensor(log_prob_or_nll).double().mean()) - float(entropy)
