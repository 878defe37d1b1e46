"""Small helpers shared by the metrics: tensor conversion, chunked pairwise distances."""
from __future__ import annotations

import numpy as np
import torch


class MetricError(ValueError):
    """Bad input to a metric; the message names what is wrong and how to fix it."""


def as_features(x, name: str = "x", dtype: torch.dtype | None = None) -> torch.Tensor:
    """(N, ...) tensor or array -> (N, D) float tensor (float64 input stays float64, else float32).

    Discrete integer data are cast to float; images are flattened per example.
    """
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(np.ascontiguousarray(x))
    if not isinstance(x, torch.Tensor):
        raise MetricError(f"{name} must be a torch.Tensor or numpy array, got {type(x).__name__}")
    x = x.detach().cpu()
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim == 0 or x.shape[0] == 0:
        raise MetricError(f"{name} must hold at least one example, got shape {tuple(x.shape)}")
    x = x.reshape(x.shape[0], -1)
    if dtype is None:
        dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    x = x.to(dtype)
    if not torch.isfinite(x).all():
        raise MetricError(f"{name} contains NaN or infinite values")
    return x


def same_dim(x: torch.Tensor, y: torch.Tensor, names=("x", "y")) -> None:
    if x.shape[1] != y.shape[1]:
        raise MetricError(f"{names[0]} and {names[1]} must have the same feature dimension, "
                          f"got {x.shape[1]} and {y.shape[1]}")


def common_dtype(x: torch.Tensor, y: torch.Tensor):
    dt = torch.promote_types(x.dtype, y.dtype)
    return x.to(dt), y.to(dt)


def cdist(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Euclidean distances (|a|, |b|); exact differences (no ‖a‖²+‖b‖²−2ab cancellation) for small D."""
    mode = "donot_use_mm_for_euclid_dist" if a.shape[1] <= 16 else "use_mm_for_euclid_dist"
    return torch.cdist(a, b, compute_mode=mode).clamp_min_(0)


def chunks(n: int, size: int):
    for s in range(0, n, size):
        yield slice(s, min(s + size, n))


def chunk_rows(n_other: int, budget: int = 8_000_000) -> int:
    """Rows per chunk so that a (rows, n_other) block holds about ``budget`` numbers."""
    return max(1, min(budget // max(n_other, 1), 1 << 16))


def kth_nn_distance(x: torch.Tensor, k: int) -> torch.Tensor:
    """Distance from each row of ``x`` to its k-th nearest *other* row (self excluded)."""
    n = x.shape[0]
    if not 1 <= k < n:
        raise MetricError(f"k={k} nearest neighbours needs at least k+1={k + 1} points, got {n}")
    out = torch.empty(n, dtype=x.dtype)
    for sl in chunks(n, chunk_rows(n)):
        d = cdist(x[sl], x)
        idx = torch.arange(sl.start, sl.stop)
        d[torch.arange(len(idx)), idx] = float("inf")        # exclude self exactly
        out[sl] = d.topk(k, dim=1, largest=False).values[:, -1]
    return out


def rng(seed) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed))
