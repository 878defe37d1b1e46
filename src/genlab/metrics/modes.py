"""Mode coverage on Gaussian-mixture benchmarks (VEEGAN: Srivastava et al. 2017; PacGAN: Lin et
al. 2018), e.g. ``ring8`` and ``grid25`` whose datasets carry ``extras["modes"] = (means, std)``."""
from __future__ import annotations

import math

import torch

from ._util import MetricError, as_features, cdist


def mode_coverage(samples, modes, std: float | None = None, threshold: float = 3.0) -> dict:
    """PacGAN/VEEGAN mode statistics (the protocol uses 2500 samples; ANCHORS.md).

    A sample is *high quality* (HQ) if its Euclidean distance to its nearest mode μ_k is at most
    ``threshold``·σ (3σ). A mode is *captured* if at least one HQ sample is nearest to it. With
    p_k = (#HQ samples nearest to mode k) / (#HQ samples) over the K modes,

        reverse KL = KL(p ‖ U_K) = Σ_k p_k ln(K p_k) = ln K − H(p)       (0 ln 0 = 0)

    ``modes`` is the (K, d) means tensor, or the ``(means, std)`` pair in ``ds.extras["modes"]``.
    Returns modes captured, K, % HQ samples, the reverse KL (inf when no sample is HQ) and the
    per-mode HQ counts.
    """
    if isinstance(modes, (tuple, list)) and len(modes) == 2 and std is None:
        modes, std = modes
    if std is None:
        raise MetricError("mode_coverage needs the modes' std (pass std= or modes=(means, std))")
    x = as_features(samples, "samples", dtype=torch.float64)
    mu = as_features(modes, "modes", dtype=torch.float64)
    if x.shape[1] != mu.shape[1]:
        raise MetricError(f"samples have dimension {x.shape[1]} but modes have {mu.shape[1]}")
    d = cdist(x, mu)
    dist, nearest = d.min(1)
    hq = dist <= threshold * float(std)
    K = mu.shape[0]
    counts = torch.bincount(nearest[hq], minlength=K)
    n_hq = int(hq.sum())
    if n_hq:
        p = counts.double() / n_hq
        ent = float(-(p[p > 0] * p[p > 0].log()).sum())
        rkl = math.log(K) - ent
    else:
        rkl = math.inf
    return {"modes_captured": int((counts > 0).sum()), "num_modes": K,
            "high_quality_pct": 100.0 * n_hq / x.shape[0], "reverse_kl": rkl, "n": x.shape[0],
            "counts": counts.tolist(), "threshold_sigma": threshold}
