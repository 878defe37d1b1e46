"""Likelihood bookkeeping: units, dequantisation bound, pre-processing Jacobians, discretised laws."""
import math

import pytest
import torch

from genlab.models import likelihood as L


def test_units_against_hand_numbers():
    # digits: D = 64, 1 bit/dim = 64 ln 2 = 44.3614 nats/image; MNIST: 784 ln 2 = 543.43
    assert L.bits_per_dim_to_nats(1.0, 64) == pytest.approx(44.3614, abs=1e-4)
    assert L.bits_per_dim_to_nats(1.0, 784) == pytest.approx(543.43, abs=1e-2)
    assert L.nats_to_bits_per_dim(181.33, 64) == pytest.approx(4.08756, abs=1e-5)
    # uniform over 17 levels: 64 ln 17 = 181.33 nats = log2(17) = 4.0875 bits/dim
    assert L.nats_to_bits_per_dim(64 * math.log(17), 64) == pytest.approx(math.log2(17), rel=1e-12)
    assert L.per_dim(128.0, 64) == 2.0 and L.per_example(2.0, 64) == 128.0
    t = torch.tensor([10.0, 20.0])
    assert torch.allclose(L.bits_per_dim_to_nats(L.nats_to_bits_per_dim(t, 64), 64), t)


def test_nll_record():
    lp = torch.tensor([-44.3614 * 2, -44.3614 * 4], dtype=torch.float64)
    r = L.NLLRecord.from_log_prob(lp, dim=64, kind="bound", dequantization="uniform", num_samples=1)
    assert r.value == pytest.approx(3 * 44.3614) and r.bits_per_dim == pytest.approx(3.0, abs=1e-5)
    d = r.to_dict()
    assert d["kind"] == "bound" and d["dequantization"] == "uniform" and d["units"] == "nats/example"
    assert "≥" in str(r)


def test_dequantize_range_and_jacobian():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 17, (500, 1, 8, 8), generator=g)
    y, ld = L.uniform_dequantize(x, 17, generator=g)
    assert y.shape == x.shape and y.dtype == torch.float32
    assert (y >= 0).all() and (y < 1).all()
    assert torch.equal(L.quantize(y, 17), x)
    assert torch.allclose(ld, torch.full((500,), -64 * math.log(17)))
    y2, ld2 = L.uniform_dequantize(x, 17, generator=g, low=-1.0, high=1.0)
    assert (y2 >= -1).all() and (y2 < 1).all() and torch.equal(L.quantize(y2, 17, -1.0, 1.0), x)
    assert torch.allclose(ld2, torch.full((500,), 64 * math.log(2 / 17)))
    with pytest.raises(ValueError):
        L.uniform_dequantize(x.float(), 17)


def _bound_by_quadrature(log_q, K, n=4000):
    """−E_u ln p(x+u) for every level x of a 1-D density q on y = (x+u)/K, by midpoint quadrature;
    the dequantisation log-Jacobian is −ln K (the function under test)."""
    u = (torch.arange(n, dtype=torch.float64) + 0.5) / n
    out = []
    for k in range(K):
        y = ((k + u) / K)[:, None]
        _, ld = L.uniform_dequantize(torch.full((n, 1), k), K, dtype=torch.float64)
        out.append(-(log_q(y)[:, 0] + ld).mean())
    return torch.stack(out)


def test_dequantization_bound_tight_for_piecewise_constant_and_strict_for_smooth():
    K = 5
    P = torch.tensor([0.1, 0.4, 0.2, 0.25, 0.05], dtype=torch.float64)
    true_nll = -P.log()
    # piecewise-constant density on [0,1): q(y) = K P(floor(Ky)); the bound is exact
    pc = lambda y: torch.log(K * P[L.quantize(y, K)])  # noqa: E731
    b = _bound_by_quadrature(pc, K)
    assert torch.allclose(b, true_nll, atol=1e-10)
    # a smooth density on [0,1) (Beta(2,3)): P(k) = its mass in bin k; the bound is strictly looser
    beta = torch.distributions.Beta(torch.tensor(2.0, dtype=torch.float64), torch.tensor(3.0, dtype=torch.float64))
    sm = lambda y: beta.log_prob(y.clamp(1e-12, 1 - 1e-12))  # noqa: E731
    edges = torch.linspace(0, 1, K + 1, dtype=torch.float64)
    # Beta(2,3) CDF: 6y^2 − 8y^3 + 3y^4
    cdf = 6 * edges**2 - 8 * edges**3 + 3 * edges**4
    Ps = cdf[1:] - cdf[:-1]
    bs = _bound_by_quadrature(sm, K)
    gap = bs - (-Ps.log())
    assert (gap > 1e-4).all(), gap
    # and the expected gap is the KL inside each bin, small but far from zero
    assert float((Ps * gap).sum()) < 0.2


def test_logit_jacobian_vs_autograd():
    torch.manual_seed(1)
    y = torch.rand(3, 4, dtype=torch.float64)
    z, ld = L.logit_transform(y, alpha=0.05)
    for i in range(3):
        J = torch.autograd.functional.jacobian(lambda v: L.logit_transform(v[None], 0.05)[0][0], y[i])
        assert torch.allclose(ld[i], torch.linalg.slogdet(J)[1], atol=1e-10)
    y_back, ld_inv = L.logit_inverse(z, alpha=0.05)
    assert torch.allclose(y_back, y, atol=1e-12)
    assert torch.allclose(ld_inv, -ld, atol=1e-10)
    z2, ld2 = L.affine_transform(y, scale=-2.5, shift=1.0)
    J = torch.autograd.functional.jacobian(lambda v: L.affine_transform(v[None], -2.5, 1.0)[0][0], y[0])
    assert torch.allclose(ld2[0], torch.linalg.slogdet(J)[1])
    y3, ld3 = L.affine_inverse(z2, -2.5, 1.0)
    assert torch.allclose(y3, y) and torch.allclose(ld3, -ld2)


@pytest.mark.parametrize("K", [2, 17, 256])
def test_discretized_logistic_sums_to_one(K):
    torch.manual_seed(0)
    mean = torch.randn(7, dtype=torch.float64) * 1.5
    log_scale = torch.randn(7, dtype=torch.float64) - 2.0
    levels = torch.arange(K)
    lp = L.discretized_logistic_log_prob(levels[:, None].expand(K, 7), mean[None], log_scale[None], K)
    assert torch.isfinite(lp).all()
    assert torch.allclose(lp.exp().sum(0), torch.ones(7, dtype=torch.float64), atol=1e-10)
    # middle bins against the plain formula σ(plus) − σ(minus)
    c = L.levels_to_unit(levels, K, torch.float64)[:, None]
    h = 1 / (K - 1)
    s = log_scale.exp()[None]
    ref = torch.sigmoid((c + h - mean) / s) - torch.sigmoid((c - h - mean) / s)
    mid = slice(1, K - 1)
    assert torch.allclose(lp.exp()[mid], ref[mid], atol=1e-12)


def test_discretized_logistic_tails_stable():
    # far in the tails the naive difference is 0 and its log −inf; ours stays finite and accurate
    K = 256
    x = torch.tensor([128, 128])
    mean = torch.tensor([-40.0, 40.0], dtype=torch.float64)
    ls = torch.tensor([0.0, 0.0], dtype=torch.float64)
    lp = L.discretized_logistic_log_prob(x, mean, ls, K)
    c = L.levels_to_unit(x, K, torch.float64)
    # ln p ≈ ln(2h) + ln density at c: ln σ'(t) = −|t| − 2 ln(1 + e^{−|t|})
    approx = math.log(2 / (K - 1)) - (c - mean).abs()
    assert torch.isfinite(lp).all() and torch.allclose(lp, approx, atol=1e-3)


def test_mixture_and_categorical_sum_to_one_and_sampling():
    torch.manual_seed(0)
    K, M = 17, 4
    logits, means, ls = torch.randn(5, M), torch.randn(5, M) * 0.5, torch.randn(5, M) * 0.3 - 1.5
    levels = torch.arange(K)[:, None].expand(K, 5)
    lp = L.discretized_mix_logistic_log_prob(levels, logits[None], means[None], ls[None], K)
    assert torch.allclose(lp.exp().sum(0), torch.ones(5), atol=1e-5)
    cl = torch.randn(5, K)
    lpc = L.categorical_log_prob(cl[None].expand(K, 5, K), levels)
    assert torch.allclose(lpc.exp().sum(0), torch.ones(5), atol=1e-6)
    # sampling matches the pmf (chi-square-free check: total variation on 20 000 draws)
    g = torch.Generator().manual_seed(0)
    n = 20000
    s = L.sample_discretized_mix_logistic(logits[:1].expand(n, M), means[:1].expand(n, M), ls[:1].expand(n, M), K,
                                          generator=g)
    emp = torch.bincount(s, minlength=K).double() / n
    tv = 0.5 * (emp - lp[:, 0].exp().double()).abs().sum()
    assert tv < 0.03, tv
