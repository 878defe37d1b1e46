"""Memorisation of training data: how close are generated samples to their nearest training
examples, relative to how close training examples are to each other?"""
from __future__ import annotations

import torch

from ._util import MetricError, as_features, cdist, chunk_rows, chunks, common_dtype, kth_nn_distance, same_dim


def nearest(x: torch.Tensor, ref: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Distance and index of the nearest row of ``ref`` for each row of ``x`` (chunked)."""
    dist = torch.empty(x.shape[0], dtype=x.dtype)
    idx = torch.empty(x.shape[0], dtype=torch.long)
    for sl in chunks(x.shape[0], chunk_rows(ref.shape[0])):
        dist[sl], idx[sl] = cdist(x[sl], ref).min(1)
    return dist, idx


def memorisation(samples, train, threshold: float = 0.5, n_pairs: int = 16) -> dict:
    """Near-copy statistics of generated samples against the training set.

    For each sample s, let t*(s) be its nearest training example and d(s) = ‖s − t*(s)‖; let
    ρ(t) = ‖t − t'‖ for t' the nearest *other* training example. The relative distance

        r(s) = d(s) / ρ(t*(s))

    is < 1 when s is closer to t* than any other training point is (the "authenticity" test of
    Alaa et al. 2022, "How faithful is your synthetic data?"); a sample is a *near-copy* when
    r(s) < ``threshold`` (default ½; cf. Carlini et al. 2023, "Extracting training data from
    diffusion models", who also measure distance relative to the local neighbourhood).

    Returns the fraction of near-copies, the median r, the median d and median ρ, and the
    ``n_pairs`` closest (sample index, train index, d, r) for a picture of the worst cases.
    """
    s = as_features(samples, "samples")
    t = as_features(train, "train")
    same_dim(s, t, ("samples", "train"))
    s, t = common_dtype(s, t)
    if t.shape[0] < 2:
        raise MetricError("memorisation needs at least 2 training examples")
    rho = kth_nn_distance(t, 1)
    d, j = nearest(s, t)
    rel = d / rho[j].clamp_min(torch.finfo(rho.dtype).tiny)
    rel = torch.where(d == 0, torch.zeros_like(rel), rel)
    order = torch.argsort(rel)[:n_pairs]
    pairs = [(int(i), int(j[i]), float(d[i]), float(rel[i])) for i in order]
    return {"near_copy_fraction": float((rel < threshold).double().mean()), "median_ratio": float(rel.median()),
            "median_distance": float(d.median()), "train_nn_median": float(rho.median()),
            "threshold": threshold, "n": s.shape[0], "closest_pairs": pairs}
