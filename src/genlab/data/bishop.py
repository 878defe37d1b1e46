"""Bishop's inverse problem for mixture density networks (Bishop 1994; *PRML* §5.6).

Forward model: x ~ U(0, 1), t = f(x) + ε with f(x) = x + 0.3 sin(2πx) and ε ~ U(−0.1, 0.1).
The task is the *inverse* mapping: predict the target x from the condition t. Because f is not
monotone, p(x | t) is multimodal for t in the middle of the range — a unimodal regressor fails
and a mixture density network succeeds.

In genlab's terms the TARGET is ``ds.x`` (shape (N, 1)) and the CONDITION is ``ds.y = t``
(shape (N, 1), ``info.cond="continuous"``, ``cond_shape=(1,)``).

Oracle. By Bayes, p(x | t) ∝ p(x) p(t | x) = 1[0<x<1] · 5 · 1[|t − f(x)| < 0.1], so the posterior is
uniform on S(t) = {x ∈ (0, 1): |t − f(x)| < 0.1}:

    log p(x | t) = −ln |S(t)|  for x ∈ S(t),   −∞ otherwise,

and the marginal of t is p(t) = 5 |S(t)|. Hence the oracle conditional entropy

    H(x | t) = −E[log p(x | t)] = ∫ 5 |S(t)| ln |S(t)| dt  ≈ −1.282 nats/point (ANCHORS.md),

the best test NLL any conditional model can reach. ``ds.entropy`` holds this *conditional*
entropy and ``ds.extras["cond_log_prob"](x, t)`` the oracle log p(x | t) (``Dataset.log_prob``
takes no condition, so ``ds.log_prob`` is not set). |S(t)| is computed from the sorted values of
f on a fine grid: |{x: f(x) < a}| = (number of grid values below a) / grid size.

Splits are independent draws with fixed seeds: train 1000 points (the textbook size; ``n=``
overrides), val 1000, test 5000.
"""
from __future__ import annotations

import functools
import math

import numpy as np
import torch

from .base import DataError, DataInfo, Dataset
from ._util import reject_options
from .registry import register_dataset

SPLIT_SEED = {"train": 10, "val": 11, "test": 12}
SPLIT_SIZE = {"train": 1000, "val": 1000, "test": 5000}
NOISE = 0.1
_GRID = 400_000


def forward(x):
    """f(x) = x + 0.3 sin(2πx): the noiseless forward map (numpy or torch)."""
    sin = torch.sin if isinstance(x, torch.Tensor) else np.sin
    return x + 0.3 * sin(2 * math.pi * x)


@functools.lru_cache(maxsize=1)
def _sorted_f() -> np.ndarray:
    x = (np.arange(_GRID) + 0.5) / _GRID          # midpoints of a uniform grid on (0, 1)
    return np.sort(forward(x))


def support_size(t) -> np.ndarray:
    """|S(t)| = |{x ∈ (0,1): t − 0.1 < f(x) < t + 0.1}| (grid error about 1e-5)."""
    f = _sorted_f()
    t = np.asarray(t, dtype=np.float64)
    return (np.searchsorted(f, t + NOISE) - np.searchsorted(f, t - NOISE)) / len(f)


def cond_log_prob(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Oracle log p(x | t) in nats per example: −ln|S(t)| inside the support, −inf outside.

    x, t: (N, 1) or (N,). Returns (N,) in x's dtype.
    """
    x1, t1 = x.reshape(-1).detach().cpu().double(), t.reshape(-1).detach().cpu().double()
    if x1.shape != t1.shape:
        raise DataError(f"x and t must have the same number of rows, got {tuple(x.shape)} and {tuple(t.shape)}")
    size = torch.as_tensor(support_size(t1.numpy()), dtype=torch.float64)
    inside = ((x1 > 0) & (x1 < 1) & ((t1 - forward(x1)).abs() < NOISE))
    lp = torch.where(inside & (size > 0), -torch.log(size.clamp_min(1e-300)), torch.tensor(-math.inf, dtype=torch.float64))
    dt = x.dtype if x.dtype.is_floating_point else torch.float32
    return lp.to(device=x.device, dtype=dt)


@functools.lru_cache(maxsize=1)
def conditional_entropy() -> float:
    """H(x | t) = ∫ 5 |S(t)| ln |S(t)| dt by the midpoint rule on t ∈ [f_min − 0.1, f_max + 0.1]."""
    f = _sorted_f()
    lo, hi, m = f[0] - NOISE, f[-1] + NOISE, 40_000
    t = lo + (np.arange(m) + 0.5) * (hi - lo) / m
    s = support_size(t)
    integrand = np.where(s > 0, 5 * s * np.log(np.where(s > 0, s, 1.0)), 0.0)
    return float(integrand.sum() * (hi - lo) / m)


def sample(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(x, t), each (n, 1) float32, drawn with ``numpy.random.default_rng(seed)``."""
    rng = np.random.default_rng(seed)
    x = rng.random(n)
    t = forward(x) + rng.uniform(-NOISE, NOISE, n)
    return (torch.as_tensor(x, dtype=torch.float32)[:, None], torch.as_tensor(t, dtype=torch.float32)[:, None])


@register_dataset("bishop", "MDN inverse problem: target x ~ U(0,1) given t = x + 0.3 sin(2 pi x) + U(-0.1,0.1); "
                            "oracle H(x|t) = -1.282 nats")
def load_bishop(split: str = "train", n: int | None = None, **kw) -> Dataset:
    reject_options(kw, "bishop", ("n",))
    n = SPLIT_SIZE[split] if n is None else int(n)
    if n < 1:
        raise DataError(f"n must be a positive number of points, got {n}")
    x, t = sample(n, seed=SPLIT_SEED[split])
    info = DataInfo(shape=(1,), modality="vector", cond="continuous", cond_shape=(1,), name="bishop")
    ds = Dataset(x=x, y=t, info=info, split=split, entropy=conditional_entropy())
    ds.extras["cond_log_prob"] = cond_log_prob
    ds.extras["forward"] = forward
    return ds
