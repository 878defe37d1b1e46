"""Two-sample distances between sets of samples or features: Fréchet distance, KID, MMD, energy
distance and Wasserstein. Every function takes (N, ...) tensors or arrays and returns floats."""
from __future__ import annotations

import math

import numpy as np
import torch

from ._util import MetricError, as_features, cdist, chunk_rows, chunks, common_dtype, rng, same_dim


# ----------------------------------------------------------------------------------------------
# Fréchet distance
# ----------------------------------------------------------------------------------------------
def _sqrt_psd(s: torch.Tensor) -> torch.Tensor:
    """Symmetric square root of a symmetric PSD matrix via its eigendecomposition (negatives → 0)."""
    w, v = torch.linalg.eigh(s)
    return (v * w.clamp_min(0).sqrt()) @ v.T


def trace_sqrt_product(sigma1, sigma2) -> float:
    """tr((Σ1 Σ2)^{1/2}) = tr((Σ1^{1/2} Σ2 Σ1^{1/2})^{1/2}) = Σ_i √λ_i(Σ1^{1/2} Σ2 Σ1^{1/2}).

    Σ1 Σ2 is similar to the symmetric PSD matrix Σ1^{1/2} Σ2 Σ1^{1/2} (same eigenvalues), so the
    trace of its principal square root is the sum of square roots of real, non-negative
    eigenvalues: no complex arithmetic (the source of scipy.linalg.sqrtm's imaginary parts).
    """
    s1 = torch.as_tensor(sigma1, dtype=torch.float64)
    s2 = torch.as_tensor(sigma2, dtype=torch.float64)
    s1 = (s1 + s1.T) / 2
    s2 = (s2 + s2.T) / 2
    r = _sqrt_psd(s1)
    m = r @ s2 @ r
    return float(torch.linalg.eigvalsh((m + m.T) / 2).clamp_min(0).sqrt().sum())


def frechet_distance_from_stats(mu1, sigma1, mu2, sigma2) -> float:
    """Fréchet (2-Wasserstein²) distance between N(μ1, Σ1) and N(μ2, Σ2) (Dowson & Landau 1982;
    FID: Heusel et al. 2017, "GANs trained by a two time-scale update rule"):

        d² = ‖μ1 − μ2‖² + tr Σ1 + tr Σ2 − 2 tr((Σ1 Σ2)^{1/2})
    """
    mu1 = torch.as_tensor(mu1, dtype=torch.float64).reshape(-1)
    mu2 = torch.as_tensor(mu2, dtype=torch.float64).reshape(-1)
    s1 = torch.as_tensor(sigma1, dtype=torch.float64)
    s2 = torch.as_tensor(sigma2, dtype=torch.float64)
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.numel(), mu1.numel()):
        raise MetricError(f"inconsistent shapes: mu {tuple(mu1.shape)}/{tuple(mu2.shape)}, "
                          f"sigma {tuple(s1.shape)}/{tuple(s2.shape)}")
    d = float(((mu1 - mu2) ** 2).sum()) + float(s1.trace() + s2.trace()) - 2 * trace_sqrt_product(s1, s2)
    return max(d, 0.0)


def feature_stats(x) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and unbiased covariance (ddof = 1, as numpy.cov / pytorch-fid) in float64."""
    x = as_features(x, dtype=torch.float64)
    if x.shape[0] < 2:
        raise MetricError("need at least 2 examples for a covariance")
    mu = x.mean(0)
    xc = x - mu
    return mu, xc.T @ xc / (x.shape[0] - 1)


def frechet_distance(x, y) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (FID when the features are
    Inception-v3 pool3; genlab uses a domain classifier, see ``genlab.features``):

        FD = ‖μ_x − μ_y‖² + tr(Σ_x + Σ_y − 2 (Σ_x Σ_y)^{1/2})

    Biased upward at small n and rank-deficient when n ≤ D (ANCHORS.md): always report n
    (``gl.evaluate`` records it). Source: Heusel et al. 2017; matrix square root via a symmetric
    eigendecomposition (``trace_sqrt_product``).
    """
    x = as_features(x, "x")
    y = as_features(y, "y")
    same_dim(x, y)
    mx, sx = feature_stats(x)
    my, sy = feature_stats(y)
    return frechet_distance_from_stats(mx, sx, my, sy)


# ----------------------------------------------------------------------------------------------
# Kernel distances
# ----------------------------------------------------------------------------------------------
def _mmd2_unbiased_from_kernels(kxx: torch.Tensor, kyy: torch.Tensor, kxy: torch.Tensor) -> float:
    """MMD²_u = 1/(m(m−1)) Σ_{i≠j} k(x_i,x_j) + 1/(n(n−1)) Σ_{i≠j} k(y_i,y_j) − 2/(mn) Σ_{i,j} k(x_i,y_j)."""
    m, n = kxx.shape[0], kyy.shape[0]
    f64 = torch.float64
    sxx = (kxx.sum(dtype=f64) - kxx.diagonal().sum(dtype=f64)) / (m * (m - 1))
    syy = (kyy.sum(dtype=f64) - kyy.diagonal().sum(dtype=f64)) / (n * (n - 1))
    return float(sxx + syy - 2 * kxy.sum(dtype=f64) / (m * n))


def kid(x, y, subsets: int = 100, subset_size: int = 1000, degree: int = 3, seed: int = 0) -> dict:
    """Kernel Inception Distance (Bińkowski et al. 2018, "Demystifying MMD GANs"): the unbiased
    MMD² with the polynomial kernel k(a, b) = (aᵀb / D + 1)³, averaged over ``subsets`` random
    subsets of ``subset_size`` points from each set (without replacement within a subset).

    Returns ``{"kid": mean, "kid_std": std over subsets, "subset_size": m, "subsets": s}``; when
    both sets have at most ``subset_size`` points there is one estimate on the full sets (std NaN). The
    estimator is unbiased (its mean is 0 for two samples of one distribution, and it can be
    negative), so KID is preferable to FD at small n.
    """
    x = as_features(x, "x")
    y = as_features(y, "y")
    same_dim(x, y)
    x, y = common_dtype(x, y)          # float32 features: kernels in float32, every sum in float64
    m = min(subset_size, x.shape[0], y.shape[0])
    if m < 2:
        raise MetricError("kid needs at least 2 examples in each set")
    if m >= x.shape[0] and m >= y.shape[0]:
        subsets = 1          # every "subset" would be the whole of both sets: one full-set estimate
    d = x.shape[1]
    g = rng(seed)
    vals = []
    for _ in range(subsets):
        a = x[torch.randperm(x.shape[0], generator=g)[:m]]
        b = y[torch.randperm(y.shape[0], generator=g)[:m]]
        k = lambda u, v: (u @ v.T / d + 1) ** degree  # noqa: E731
        vals.append(_mmd2_unbiased_from_kernels(k(a, a), k(b, b), k(a, b)))
    v = torch.tensor(vals, dtype=torch.float64)
    return {"kid": float(v.mean()), "kid_std": float(v.std(unbiased=True)) if len(vals) > 1 else float("nan"),
            "subset_size": m, "subsets": subsets}


def median_heuristic(x, y, max_points: int = 1000, seed: int = 0) -> float:
    """Median pairwise Euclidean distance in the pooled sample (Gretton et al. 2012, §8), on at
    most ``max_points`` random points."""
    x = as_features(x, "x")
    y = as_features(y, "y")
    z = torch.cat(common_dtype(x, y))
    if z.shape[0] > max_points:
        z = z[torch.randperm(z.shape[0], generator=rng(seed))[:max_points]]
    d = cdist(z, z)
    iu = torch.triu_indices(z.shape[0], z.shape[0], offset=1)
    med = float(d[iu[0], iu[1]].median())
    return med if med > 0 else 1.0


def _gauss_kernel_sums(a: torch.Tensor, b: torch.Tensor, bandwidths, same: bool) -> torch.Tensor:
    """Σ_{i,j} k(a_i, b_j) for each bandwidth h, k = exp(−‖a−b‖² / (2h²)); excludes i = j if ``same``."""
    tot = torch.zeros(len(bandwidths), dtype=torch.float64)
    inv = torch.tensor([1.0 / (2 * h * h) for h in bandwidths], dtype=a.dtype)
    for sl in chunks(a.shape[0], chunk_rows(b.shape[0], 4_000_000)):
        d2 = cdist(a[sl], b) ** 2
        for i in range(len(bandwidths)):
            kk = torch.exp(-d2 * inv[i])
            s = kk.sum(dtype=torch.float64)
            if same:
                s = s - kk.diagonal(offset=sl.start).sum(dtype=torch.float64)
            tot[i] += s
    return tot


def mmd(x, y, bandwidth: float | str | list = "median", scales=None, seed: int = 0) -> float:
    """Unbiased squared maximum mean discrepancy with Gaussian kernels (Gretton et al. 2012,
    "A kernel two-sample test", eq. 3):

        MMD²_u = 1/(m(m−1)) Σ_{i≠j} k(x_i,x_j) + 1/(n(n−1)) Σ_{i≠j} k(y_i,y_j) − 2/(mn) Σ_{i,j} k(x_i,y_j)
        k(a, b) = Σ_h exp(−‖a − b‖² / (2h²))

    ``bandwidth``: ``"median"`` (the median heuristic: h = median pairwise distance of the pooled
    sample), a number, or a list of numbers. ``scales`` (e.g. ``(0.25, 0.5, 1, 2, 4)``) multiplies
    the bandwidth(s) to give a multi-bandwidth kernel (sum of kernels; Gretton 2012 §8, as in
    MMD-GAN). The estimate is unbiased and may be slightly negative when the sets match.
    """
    x = as_features(x, "x")
    y = as_features(y, "y")
    same_dim(x, y)
    x, y = common_dtype(x, y)
    m, n = x.shape[0], y.shape[0]
    if m < 2 or n < 2:
        raise MetricError("mmd needs at least 2 examples in each set")
    if isinstance(bandwidth, str):
        if bandwidth != "median":
            raise MetricError(f"bandwidth must be 'median', a number or a list of numbers, got {bandwidth!r}")
        base = [median_heuristic(x, y, seed=seed)]
    else:
        base = [float(b) for b in (bandwidth if isinstance(bandwidth, (list, tuple)) else [bandwidth])]
    hs = [b * s for b in base for s in (scales or (1.0,))]
    if any(h <= 0 for h in hs):
        raise MetricError(f"bandwidths must be positive, got {hs}")
    kxx = _gauss_kernel_sums(x, x, hs, True).sum() / (m * (m - 1))
    kyy = _gauss_kernel_sums(y, y, hs, True).sum() / (n * (n - 1))
    kxy = _gauss_kernel_sums(x, y, hs, False).sum() / (m * n)
    return float(kxx + kyy - 2 * kxy)


# ----------------------------------------------------------------------------------------------
# Energy distance and Wasserstein
# ----------------------------------------------------------------------------------------------
def _mean_dist(a: torch.Tensor, b: torch.Tensor) -> float:
    tot = 0.0
    for sl in chunks(a.shape[0], chunk_rows(b.shape[0])):
        tot += float(cdist(a[sl], b).sum(dtype=torch.float64))
    return tot / (a.shape[0] * b.shape[0])


def energy_distance(x, y) -> float:
    """Energy distance (Székely & Rizzo 2013, "Energy statistics"):

        E(X, Y) = ( 2 E‖X − Y‖ − E‖X − X'‖ − E‖Y − Y'‖ )^{1/2}

    with the empirical (V-statistic) expectations, so that in 1-D it equals
    ``scipy.stats.energy_distance`` (= √2 × the Cramér distance) and is 0 for identical sets.
    """
    x = as_features(x, "x")
    y = as_features(y, "y")
    same_dim(x, y)
    x, y = common_dtype(x, y)
    e2 = 2 * _mean_dist(x, y) - _mean_dist(x, x) - _mean_dist(y, y)
    return math.sqrt(max(e2, 0.0))


def wasserstein_method(n_x: int, n_y: int, dim: int, method: str = "auto", max_exact: int = 3000) -> str:
    """Which computation ``wasserstein`` uses: "exact" or "sliced" (resolves ``"auto"``)."""
    if method not in ("auto", "exact", "sliced"):
        raise MetricError(f"method must be 'auto', 'exact' or 'sliced', got {method!r}")
    if method == "auto":
        return "exact" if dim == 1 or max(n_x, n_y) <= max_exact else "sliced"
    return method


def _wasserstein_1d_pp(u: torch.Tensor, v: torch.Tensor, p: float) -> torch.Tensor:
    """W_p^p between the empirical distributions of the columns of u (m, B) and v (n, B):

        W_p^p = ∫₀¹ |F⁻¹(t) − G⁻¹(t)|^p dt,

    exact: the quantile functions are step functions with jumps at i/m and j/n, so the integral
    is a finite sum over the merged breakpoints (equal sizes: the mean of |u_(i) − v_(i)|^p).
    """
    u, _ = torch.sort(u, dim=0)
    v, _ = torch.sort(v, dim=0)
    m, n = u.shape[0], v.shape[0]
    if m == n:
        return ((u - v).abs() ** p).mean(0)
    t = torch.unique(torch.cat([torch.arange(1, m + 1, dtype=torch.float64) / m,
                                torch.arange(1, n + 1, dtype=torch.float64) / n]))
    t = torch.cat([torch.zeros(1, dtype=torch.float64), t.clamp(max=1.0)])
    w = t[1:] - t[:-1]
    mid = (t[1:] + t[:-1]) / 2
    iu = (mid * m).floor().long().clamp(max=m - 1)
    iv = (mid * n).floor().long().clamp(max=n - 1)
    return ((u[iu] - v[iv]).abs() ** p * w[:, None].to(u.dtype)).sum(0)


def wasserstein(x, y, p: int = 1, method: str = "auto", n_projections: int = 256, max_exact: int = 3000,
                seed: int = 0) -> float:
    """p-Wasserstein distance between the empirical distributions of x and y (Villani 2008):

        W_p = ( min_{γ ∈ Π(1/m, 1/n)} Σ_ij γ_ij ‖x_i − y_j‖^p )^{1/p}

    ``method="exact"``: in 1-D by sorting (quantile functions); for equal sizes as an assignment
    problem (``scipy.optimize.linear_sum_assignment``: with uniform weights an optimal plan is a
    permutation); otherwise POT's network simplex (``ot.emd2``). ``"sliced"``: the sliced
    Wasserstein distance (Rabin et al. 2011; Bonneel et al. 2015) SW_p = (E_θ W_p^p(θᵀx, θᵀy))^{1/p}
    over ``n_projections`` random unit directions, each 1-D term exact by sorting (a different
    quantity, ≤ W_p). ``"auto"``: exact when the data are 1-D or both sets have ≤ ``max_exact``
    points, sliced otherwise.
    """
    x = as_features(x, "x", dtype=torch.float64)
    y = as_features(y, "y", dtype=torch.float64)
    same_dim(x, y)
    method = wasserstein_method(x.shape[0], y.shape[0], x.shape[1], method, max_exact)
    if method == "exact":
        if x.shape[1] == 1:
            return float(_wasserstein_1d_pp(x, y, p)[0]) ** (1.0 / p)
        cost = cdist(x, y) ** p
        if x.shape[0] == y.shape[0]:
            # uniform weights, equal sizes: an optimal plan is a permutation (Birkhoff–von Neumann)
            from scipy.optimize import linear_sum_assignment
            c = cost.numpy()
            r, col = linear_sum_assignment(c)
            return float(c[r, col].mean()) ** (1.0 / p)
        import ot  # POT's network simplex for unequal sizes (imported lazily: a slow import)
        a = np.full(x.shape[0], 1.0 / x.shape[0])
        b = np.full(y.shape[0], 1.0 / y.shape[0])
        return float(ot.emd2(a, b, cost.numpy(), numItermax=10_000_000)) ** (1.0 / p)
    theta = torch.randn(x.shape[1], n_projections, generator=rng(seed), dtype=torch.float64)
    theta = theta / theta.norm(dim=0, keepdim=True)           # uniform directions on the sphere
    return float(_wasserstein_1d_pp(x @ theta, y @ theta, p).mean()) ** (1.0 / p)
