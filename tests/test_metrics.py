"""Metrics against closed forms and independent implementations (scipy, brute force)."""
import math

import numpy as np
import pytest
import scipy.linalg
import scipy.stats
import torch

import genlab as gl
from genlab import metrics as M


def _rot(d, seed):
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((d, d)))
    return q


# ---------------------------------------------------------------- Fréchet distance
def test_fd_matches_scipy_sqrtm_on_random_features():
    g = np.random.default_rng(0)
    x = g.standard_normal((300, 16)) @ g.standard_normal((16, 16))
    y = g.standard_normal((250, 16)) @ g.standard_normal((16, 16)) + 0.3
    mx, my = x.mean(0), y.mean(0)
    sx, sy = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    covmean = scipy.linalg.sqrtm(sx @ sy)
    covmean = covmean.real if np.iscomplexobj(covmean) else covmean
    ref = ((mx - my) ** 2).sum() + np.trace(sx) + np.trace(sy) - 2 * np.trace(covmean)
    assert M.frechet_distance(x, y) == pytest.approx(ref, rel=1e-9)
    assert gl.metrics.fd(torch.from_numpy(x), torch.from_numpy(y)) == pytest.approx(ref, rel=1e-9)


def test_fd_closed_form_for_gaussians():
    # commuting covariances Σ1 = Q diag(a) Qᵀ, Σ2 = Q diag(b) Qᵀ: FD = ‖Δμ‖² + Σ (√a − √b)²
    d = 6
    q = _rot(d, 1)
    a, b = np.linspace(0.5, 3, d), np.linspace(2, 0.1, d)
    mu1, mu2 = np.zeros(d), np.arange(d) * 0.1
    closed = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    s1, s2 = q @ np.diag(a) @ q.T, q @ np.diag(b) @ q.T
    assert M.frechet_distance_from_stats(mu1, s1, mu2, s2) == pytest.approx(closed, rel=1e-10)
    # 1-D: W2² between N(m1, s1²) and N(m2, s2²) is (m1−m2)² + (s1−s2)²
    assert M.frechet_distance_from_stats([1.0], [[4.0]], [0.0], [[0.25]]) == pytest.approx(1 + 1.5**2)
    # from samples: converges to the closed form (non-commuting covariances, 2-D)
    g = np.random.default_rng(3)
    c1, c2 = np.array([[2.0, 0.8], [0.8, 1.0]]), np.array([[0.5, -0.2], [-0.2, 1.5]])
    x = g.multivariate_normal([0, 0], c1, size=200_000)
    y = g.multivariate_normal([1, -1], c2, size=200_000)
    exact = 2 + np.trace(c1) + np.trace(c2) - 2 * np.trace(scipy.linalg.sqrtm(c1 @ c2).real)
    assert M.frechet_distance(x, y) == pytest.approx(exact, abs=0.03)


def test_fd_rank_deficient_is_finite_and_nonnegative():
    x = torch.randn(10, 50, dtype=torch.float64)       # n < D: singular covariances
    assert M.frechet_distance(x, x) == pytest.approx(0.0, abs=1e-6)
    v = M.frechet_distance(x, torch.randn(12, 50, dtype=torch.float64))
    assert math.isfinite(v) and v > 0


# ---------------------------------------------------------------- identical sets
def test_identical_sets_give_zero():
    x = torch.randn(250, 3, dtype=torch.float64)
    n = 250
    assert M.frechet_distance(x, x) == pytest.approx(0, abs=1e-8)
    assert M.energy_distance(x, x) == 0.0
    assert M.wasserstein(x, x, method="exact") == pytest.approx(0, abs=1e-12)
    assert M.wasserstein(x, x, method="sliced") == pytest.approx(0, abs=1e-12)
    # unbiased MMD²(x, x) = −2(S − n²)/(n²(n−1)), |.| ≤ 2/(n−1): ≈ 0 at order 1/n
    assert abs(M.mmd(x, x)) <= 2 / (n - 1)
    # KID on the whole set (one subset = all n): the same O(1/n) identity as MMD, with the cubic kernel
    kk = (x @ x.T / 3 + 1) ** 3
    expect = 2 * float((kk.sum() - kk.trace()) / (n * (n - 1)) - kk.sum() / n**2)
    kid_xx = M.kid(x, x, subsets=1, subset_size=n)["kid"]
    assert kid_xx == pytest.approx(expect, rel=1e-9)
    assert abs(kid_xx) <= 2 * float(kk.diagonal().mean()) / (n - 1)           # O(1/n), like MMD above
    assert M.prdc(x, x)["precision"] == 1.0


# ---------------------------------------------------------------- KID
def test_kid_equals_direct_polynomial_mmd_on_full_sets():
    g = np.random.default_rng(0)
    x, y = g.standard_normal((60, 4)), g.standard_normal((60, 4)) + 0.2
    k = lambda a, b: (a @ b.T / 4 + 1) ** 3  # noqa: E731
    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    n = 60
    direct = ((kxx.sum() - np.trace(kxx)) + (kyy.sum() - np.trace(kyy))) / (n * (n - 1)) - 2 * kxy.mean()
    out = M.kid(x, y, subsets=1, subset_size=60)
    assert out["kid"] == pytest.approx(direct, rel=1e-10)
    # subsets larger than both sets: one full-set estimate, not 100 identical permutations
    full = M.kid(x, y, subsets=100, subset_size=1000)
    assert full["subsets"] == 1 and full["kid"] == pytest.approx(direct, rel=1e-10) and math.isnan(full["kid_std"])


def test_kid_is_unbiased():
    # 30 independent pairs of samples of one distribution: the mean KID is 0 within 3 s.e.,
    # while the biased (V-statistic) estimator would sit at a positive offset (checked below).
    vals, biased = [], []
    g = torch.Generator().manual_seed(0)
    for r in range(30):
        x = torch.randn(100, 8, generator=g, dtype=torch.float64)
        y = torch.randn(100, 8, generator=g, dtype=torch.float64)
        vals.append(M.kid(x, y, subsets=1, subset_size=100)["kid"])
        k = lambda a, b: (a @ b.T / 8 + 1) ** 3  # noqa: E731
        biased.append(float(k(x, x).mean() + k(y, y).mean() - 2 * k(x, y).mean()))
    v = torch.tensor(vals)
    se = float(v.std() / math.sqrt(len(vals)))
    assert abs(float(v.mean())) < 3 * se
    assert float(torch.tensor(biased).mean()) > 3 * se + abs(float(v.mean()))


# ---------------------------------------------------------------- MMD
def test_mmd_matches_direct_double_loop():
    g = np.random.default_rng(0)
    x, y = g.standard_normal((30, 3)), g.standard_normal((25, 3)) * 1.5
    hs = [0.7, 1.9]
    k = lambda a, b: sum(math.exp(-((a - b) ** 2).sum() / (2 * h * h)) for h in hs)  # noqa: E731
    sxx = sum(k(x[i], x[j]) for i in range(30) for j in range(30) if i != j) / (30 * 29)
    syy = sum(k(y[i], y[j]) for i in range(25) for j in range(25) if i != j) / (25 * 24)
    sxy = sum(k(x[i], y[j]) for i in range(30) for j in range(25)) / (30 * 25)
    assert M.mmd(x, y, bandwidth=hs) == pytest.approx(sxx + syy - 2 * sxy, rel=1e-10)
    # scales multiply the bandwidth: [0.7, 1.9] == 1.0 × scales (0.7, 1.9)
    assert M.mmd(x, y, bandwidth=1.0, scales=(0.7, 1.9)) == pytest.approx(sxx + syy - 2 * sxy, rel=1e-10)


def test_median_heuristic_and_detection():
    g = np.random.default_rng(0)
    z = g.standard_normal((50, 2))
    d = scipy.spatial.distance.pdist(np.concatenate([z[:25], z[25:]]))
    assert M.median_heuristic(z[:25], z[25:]) == pytest.approx(np.median(d), rel=1e-10)
    x, y = torch.randn(500, 2), torch.randn(500, 2) + 1.0
    assert M.mmd(x, y) > 20 * abs(M.mmd(x, torch.randn(500, 2)))


# ---------------------------------------------------------------- energy and Wasserstein
def test_energy_distance_matches_scipy_1d():
    g = np.random.default_rng(0)
    u, v = g.standard_normal(300), g.exponential(size=200)
    assert M.energy_distance(u, v) == pytest.approx(scipy.stats.energy_distance(u, v), rel=1e-9)


def test_exact_wasserstein_matches_scipy_1d_pot_and_linprog():
    g = np.random.default_rng(0)
    u, v = g.standard_normal(300), g.exponential(size=200)
    assert M.wasserstein(u, v) == pytest.approx(scipy.stats.wasserstein_distance(u, v), rel=1e-9)
    # W2 in 1-D (unequal sizes) against POT's 1-D solver (which returns W_p^p)
    import ot
    assert M.wasserstein(u, v, p=2) == pytest.approx(math.sqrt(ot.wasserstein_1d(u, v, p=2)), rel=1e-9)
    # n-D, equal sizes (assignment path) against POT's network simplex
    x, y = g.standard_normal((80, 3)), g.standard_normal((80, 3)) + 0.5
    c = scipy.spatial.distance.cdist(x, y)
    w = np.full(80, 1 / 80)
    assert M.wasserstein(x, y, method="exact") == pytest.approx(ot.emd2(w, w, c), rel=1e-9)
    assert M.wasserstein(x, y, p=2, method="exact") == pytest.approx(math.sqrt(ot.emd2(w, w, c**2)), rel=1e-9)
    # n-D, unequal sizes (POT path) against the transport linear programme solved by scipy's HiGHS
    a, b = g.standard_normal((9, 2)), g.standard_normal((6, 2)) * 2
    cost = scipy.spatial.distance.cdist(a, b)
    m, n = cost.shape
    A = np.vstack([np.kron(np.eye(m), np.ones(n)), np.kron(np.ones(m), np.eye(n))])
    lp = scipy.optimize.linprog(cost.ravel(), A_eq=A, b_eq=np.r_[np.full(m, 1 / m), np.full(n, 1 / n)],
                                bounds=(0, None), method="highs")
    assert M.wasserstein(a, b, method="exact") == pytest.approx(lp.fun, rel=1e-7)
    # sliced: the mean over random unit directions of exact 1-D distances (scipy), ≤ exact W
    xs, ys = g.standard_normal((70, 3)), g.standard_normal((50, 3)) + 0.5
    th = torch.randn(3, 32, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    th = (th / th.norm(dim=0)).numpy()
    ref = np.mean([scipy.stats.wasserstein_distance(xs @ th[:, i], ys @ th[:, i]) for i in range(32)])
    assert M.wasserstein(xs, ys, method="sliced", n_projections=32, seed=5) == pytest.approx(ref, rel=1e-9)
    assert 0 < M.wasserstein(x, y, p=2, method="sliced") <= M.wasserstein(x, y, p=2, method="exact")


# ---------------------------------------------------------------- c2st
def test_c2st_detects_shift_and_not_identity():
    g = np.random.default_rng(0)
    x = g.standard_normal((1000, 2))
    same = c2st_res = M.c2st(x, g.standard_normal((1000, 2)), classifier="logistic")
    assert same["ci_low"] <= 0.5 <= same["ci_high"] or same["p_value"] > 0.01
    shifted = M.c2st(x, g.standard_normal((1000, 2)) + np.array([1.0, 0.0]))
    # Bayes accuracy for a 1σ shift is Φ(0.5) = 0.691
    assert shifted["p_value"] < 1e-10 and shifted["ci_low"] > 0.6
    assert shifted["accuracy"] == pytest.approx(scipy.stats.norm.cdf(0.5), abs=0.05)
    assert c2st_res["n_test"] == 1000


# ---------------------------------------------------------------- mode coverage
def test_mode_coverage_hand_made():
    means = torch.tensor([[np.cos(2 * np.pi * k / 8), np.sin(2 * np.pi * k / 8)] for k in range(8)])
    std = 0.01
    # 100 points at each of modes 0..4 (offset 2σ: inside 3σ), 50 points off-mode (0.5 away)
    pts = [means[k] + torch.tensor([0.02, 0.0]) for k in range(5) for _ in range(100)]
    pts += [torch.tensor([0.0, 0.0])] * 50
    out = M.mode_coverage(torch.stack(pts), (means, std))
    assert out["modes_captured"] == 5 and out["num_modes"] == 8
    assert out["high_quality_pct"] == pytest.approx(100 * 500 / 550)
    assert out["reverse_kl"] == pytest.approx(math.log(8) - math.log(5))
    # unbalanced: 300 at mode 0, 100 at mode 1 → KL = ln 8 − H(¾, ¼)
    x = torch.cat([means[0].expand(300, 2), means[1].expand(100, 2)])
    h = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    assert M.mode_coverage(x, means, std=std)["reverse_kl"] == pytest.approx(math.log(8) - h)
    # a point 3.5σ away is not high quality
    assert M.mode_coverage(means[:1] + 0.035, means, std=std)["modes_captured"] == 0


def test_mode_coverage_on_ring8_data():
    ds = gl.load_dataset("ring8", split="test", n=2500)
    out = M.mode_coverage(ds.x, ds.extras["modes"])
    assert out["modes_captured"] == 8
    assert out["high_quality_pct"] == pytest.approx(100 * (1 - math.exp(-4.5)), abs=1.0)  # Rayleigh: P(r≤3σ)
    assert out["reverse_kl"] < 0.01


# ---------------------------------------------------------------- memorisation
def test_memorisation_flags_planted_copies():
    g = torch.Generator().manual_seed(0)
    train = torch.randn(500, 10, generator=g)
    fresh = torch.randn(180, 10, generator=g)
    planted_idx = torch.tensor([3, 77, 150, 222, 499, 10, 11, 12, 300, 400, 401, 402, 403, 404, 405, 406, 407, 408,
                                409, 410])
    copies = train[planted_idx] + 1e-3 * torch.randn(20, 10, generator=g)
    samples = torch.cat([fresh, copies])
    out = M.memorisation(samples, train)
    # the 16 closest pairs (n_pairs) are planted copies, each matched to its source training index
    assert {p[0] for p in out["closest_pairs"]} <= set(range(180, 200))
    assert all(p[1] == int(planted_idx[p[0] - 180]) and p[3] < 0.01 for p in out["closest_pairs"])
    # all 20 copies are flagged; fresh samples of the same distribution rarely are (here 1 of 180:
    # a fresh point can by chance sit closer to a training point than its own nearest neighbour)
    fresh_rate = M.memorisation(fresh, train)["near_copy_fraction"]
    assert fresh_rate < 0.02
    assert out["near_copy_fraction"] == pytest.approx((20 + fresh_rate * 180) / 200)
    assert M.memorisation(copies, train)["near_copy_fraction"] == 1.0


# ---------------------------------------------------------------- likelihood and classifier scores
def test_likelihood_units():
    assert M.nats_to_bits_per_dim(64 * math.log(2), 64) == pytest.approx(1.0)
    assert M.bits_per_dim_to_nats(1.0, 784) == pytest.approx(543.4, abs=0.05)      # ANCHORS: MNIST
    assert M.bits_per_dim_to_nats(1.0, 64) == pytest.approx(44.36, abs=0.005)      # ANCHORS: digits
    assert M.perplexity(math.log(65)) == pytest.approx(65)
    assert M.bits_per_char(math.log(2) * 1.5) == pytest.approx(1.5)
    lp = torch.tensor([-1.0, -2.0, -3.0])
    out = M.nll(lp, dim=2, kind="bound")
    assert out["nll"] == pytest.approx(2.0) and out["nll_se"] == pytest.approx(1 / math.sqrt(3))
    assert out["bits_per_dim"] == pytest.approx(1 / math.log(2)) and "upper bound" in out["note"]
    assert M.kl_gap(lp, entropy=1.5) == pytest.approx(0.5) and M.kl_gap(2.0, 1.5) == pytest.approx(0.5)
    assert M.dequantisation_offset(64, 0.5) == pytest.approx(64 * math.log(0.5))


def test_kl_gap_of_true_density_is_near_zero():
    ds = gl.load_dataset("8gaussians", split="test")
    assert abs(M.kl_gap(ds.log_prob(ds.x), ds.entropy)) < 0.05


def test_classifier_score_and_accuracy():
    C = 10
    assert M.classifier_score(torch.full((100, C), 1 / C))["score"] == pytest.approx(1.0)
    onehot = torch.eye(C).repeat(20, 1)                       # confident and balanced
    assert M.classifier_score(onehot, splits=2)["score"] == pytest.approx(C)
    p = torch.softmax(torch.randn(50, 4), 1)
    py = p.mean(0)
    ref = math.exp(float((p * (p.log() - py.log())).sum(1).mean()))
    assert M.classifier_score(p, splits=1)["score"] == pytest.approx(ref)
    with pytest.raises(ValueError, match="probabilities"):
        M.classifier_score(torch.randn(5, 3))
    assert M.class_conditional_accuracy(torch.eye(3)[[0, 1, 2, 0]], torch.tensor([0, 1, 1, 0])) == 0.75


def test_registry_and_errors():
    names = gl.list_metrics()
    for k in ("nll", "fd", "kid", "prdc", "mmd", "energy", "wasserstein", "c2st", "mode_coverage", "kl_gap",
              "memorisation", "classifier_score"):
        assert k in names and "needs:" in names[k]
    with pytest.raises(ValueError, match="Did you mean 'mmd'"):
        M.get_metric("mdd")
    with pytest.raises(ValueError, match="same feature dimension"):
        M.mmd(torch.randn(5, 2), torch.randn(5, 3))
    with pytest.raises(ValueError, match="NaN"):
        M.energy_distance(torch.tensor([[float("nan")]]), torch.zeros(3, 1))
