"""Flow matching: the conditional path and velocity against Lipman et al.'s formulas, the OT
coupling against brute force, and the ODE likelihood / sampler with the exact marginal velocity
of Gaussian data as the "network"."""
import itertools
import math

import pytest
import torch
from torch import nn

import genlab as gl
from genlab.data import DataInfo
from genlab.models.base import ModelError
from genlab.models.flow_matching import conditional_velocity, ot_pairing, path_mean_std, path_sample

MU, S = torch.tensor([1.0, -2.0], dtype=torch.float64), 0.5


def test_conditional_path_moments_and_velocity():
    torch.manual_seed(0)
    sig = 0.1
    x1 = torch.tensor([[2.0, -1.0]], dtype=torch.float64)
    t = torch.tensor([0.3], dtype=torch.float64)
    x0 = torch.randn(50000, 2, dtype=torch.float64)
    xt = path_sample(x0, x1.expand(50000, 2), t.expand(50000), sig)
    mean, std = path_mean_std(x1, t, sig)
    assert torch.allclose(mean, 0.3 * x1) and torch.allclose(std, torch.full_like(x1, 1 - 0.9 * 0.3))
    assert torch.allclose(xt.mean(0), mean[0], atol=0.01) and torch.allclose(xt.std(0), std[0], atol=0.01)
    # u_t(ψ_t(x0) | x1) = d/dt ψ_t(x0) = x1 − (1 − σ_min) x0   (Lipman et al. eq. 21–23)
    x0s = x0[:5]
    u = conditional_velocity(path_sample(x0s, x1.expand(5, 2), t.expand(5), sig), x1.expand(5, 2), t.expand(5), sig)
    h = 1e-6
    fd = (path_sample(x0s, x1.expand(5, 2), (t + h).expand(5), sig)
          - path_sample(x0s, x1.expand(5, 2), (t - h).expand(5), sig)) / (2 * h)
    assert torch.allclose(u, x1 - (1 - sig) * x0s, atol=1e-10) and torch.allclose(u, fd, atol=1e-6)


def test_ot_pairing_is_the_optimal_permutation():
    torch.manual_seed(1)
    x0, x1 = torch.randn(6, 2), torch.randn(6, 2)
    perm = ot_pairing(x0, x1)
    cost = lambda p: ((x0[list(p)] - x1) ** 2).sum().item()  # noqa: E731
    best = min(cost(p) for p in itertools.permutations(range(6)))
    assert abs(cost(perm.tolist()) - best) < 1e-5
    assert sorted(perm.tolist()) == list(range(6))


class GaussianVelocity(nn.Module):
    """Marginal velocity of the path ψ_t = a_t x0 + t x1, a_t = 1 − (1−σ)t, for x1 ~ N(μ, s² I):
    v(x, t) = μ + (t s² − (1−σ) a_t)/(t² s² + a_t²) · (x − t μ)."""

    def __init__(self, sig):
        super().__init__()
        self.sig = sig
        self.register_buffer("mu", MU.clone())

    def forward(self, x, t, y=None):
        t = t.to(x.dtype)[:, None]
        a = 1 - (1 - self.sig) * t
        var = t ** 2 * S ** 2 + a ** 2
        return MU.to(x) + (t * S ** 2 - (1 - self.sig) * a) / var * (x - t * MU.to(x))


def analytic_fm(path="cfm", sig=1e-2):
    m = gl.create("flow-matching", data=DataInfo(shape=(2,)), path=path, sigma_min=sig, width=8, depth=1)
    m.net = GaussianVelocity(m.sigma_min)
    return m.double()


def _closed_form_logp(x, sig):
    v = S ** 2 + sig ** 2
    return (-0.5 * (x - MU) ** 2 / v - 0.5 * math.log(2 * math.pi * v)).sum(1)


@pytest.mark.parametrize("path", ["cfm", "rectified"])
def test_fm_ode_likelihood_matches_closed_form(path):
    m = analytic_fm(path)
    x = (MU + 0.8 * torch.randn(20, 2, dtype=torch.float64))
    lp = m.log_prob(x, sampler="dopri5", rtol=1e-7, atol=1e-7)
    assert torch.allclose(lp, _closed_form_logp(x, m.sigma_min), atol=1e-4)
    lp_h = torch.stack([m.log_prob(x, trace="hutchinson", sampler="rk4", steps=20,
                                   generator=torch.Generator().manual_seed(i)) for i in range(20)]).mean(0)
    # the marginal velocity is linear in x, so Rademacher-Hutchinson is exact up to the rk4 error
    assert torch.allclose(lp_h, _closed_form_logp(x, m.sigma_min), atol=1e-3)
    assert m.likelihood_info()["kind"] == "estimate"


def test_fm_sampler_reaches_the_gaussian():
    m = analytic_fm("cfm", 0.0)
    for sampler, steps in (("euler", 100), ("rk4", 10)):
        x = m.sample(20000, sampler=sampler, steps=steps, generator=torch.Generator().manual_seed(0))
        assert torch.allclose(x.mean(0), MU, atol=0.02) and torch.allclose(x.std(0), torch.tensor([S, S]).double(),
                                                                         atol=0.02), (sampler, x.std(0))
    assert m.last_nfe == 40


def test_fm_cfg_weight_zero_equals_unconditional_and_reflow_pairs():
    info = DataInfo(shape=(2,), cond="label", num_classes=4)
    m = gl.create("flow-matching", data=info, width=16, depth=1)
    y = torch.tensor([0, 3, 1])
    a = m.sample(3, cond=y, guidance=0.0, generator=torch.Generator().manual_seed(2), steps=8)
    b = m.sample(3, generator=torch.Generator().manual_seed(2), steps=8)
    c = m.sample(3, cond=y, guidance=2.0, generator=torch.Generator().manual_seed(2), steps=8)
    assert torch.equal(a, b) and not torch.allclose(a, c)
    assert m.last_nfe == 16
    pairs = m.reflow_pairs(10, steps=4, generator=torch.Generator().manual_seed(0))
    assert pairs.x.shape == (10, 2) and pairs.y.shape == (10, 3)
    # x is the model's own ODE image of the noise stored in y[:, :2]; y[:, 2] is the label
    labels = pairs.y[:, 2].long()
    assert torch.allclose(pairs.x, m.sample(10, cond=labels, x0=pairs.y[:, :2], steps=4, sampler="rk4"), atol=1e-6)
    loss = m({"x": pairs.x, "y": pairs.y})
    assert loss.ndim == 0 and torch.isfinite(loss)
    run = gl.train(m, pairs, steps=2, batch_size=5, progress=False)   # the engine accepts the pairs
    assert run.step == 2


def test_ot_pairing_matches_scipy_assignment_cost(monkeypatch):
    """POT's network simplex (the default) and scipy's Hungarian fallback reach the same optimal cost."""
    import sys
    from scipy.optimize import linear_sum_assignment
    torch.manual_seed(2)
    x0, x1 = torch.randn(200, 2), torch.randn(200, 2) * 2 + 1
    cost = torch.cdist(x0.double(), x1.double()).pow(2)
    r, c = linear_sum_assignment(cost.numpy())
    best = cost[r, c].sum().item()
    perm = ot_pairing(x0, x1)
    assert sorted(perm.tolist()) == list(range(200))
    assert abs(cost[perm, torch.arange(200)].sum().item() - best) < 1e-8 * best
    monkeypatch.setitem(sys.modules, "ot", None)          # POT missing → scipy
    perm2 = ot_pairing(x0, x1)
    assert abs(cost[perm2, torch.arange(200)].sum().item() - best) < 1e-8 * best


def test_ot_coupling_shortens_paths_in_training_batches():
    """Minibatch OT pairs have a smaller mean squared transport cost than independent pairs."""
    torch.manual_seed(0)
    x1 = torch.randn(256, 2) * 0.3     # W2² to N(0, I) is 2 (1 − 0.3)² = 0.98; independent pairs: 2.18
    x0 = torch.randn(256, 2)
    perm = ot_pairing(x0, x1)
    ot, ind = ((x0[perm] - x1) ** 2).sum(1).mean(), ((x0 - x1) ** 2).sum(1).mean()
    assert ot < 0.6 * ind and ot > 0.8, (ot, ind)


class _TimeEcho(nn.Module):
    """'Network' v(x, t) = t in every coordinate: the loss then measures the training-time distribution."""

    def forward(self, x, t, y=None):
        return t.to(x)[:, None].expand_as(x)


@pytest.mark.parametrize("p", [1.0, 2.0, 0.5])
def test_training_time_distribution_t_power(p):
    from scipy import stats
    from genlab.models.flow_matching import sample_times
    u = torch.rand(200_000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    t = sample_times(u, p)
    # CDF P(t ≤ τ) = 1 − (1 − τ)^{1/p}: Kolmogorov–Smirnov distance of 200 000 draws
    ks = stats.kstest(t.numpy(), lambda tau: 1 - (1 - tau) ** (1 / p)).statistic
    assert ks < 0.005, ks
    if p != 1.0:   # and not the uniform one
        assert stats.kstest(t.numpy(), "uniform").statistic > 0.05
    # the model's loss draws its times from it: data x₁ = 0, v(x, t) = t, target −(1 − σ) x₀, so the
    # loss is E[t²] + (1 − σ)², with E[t²] = 1 − 2/(p + 1) + 1/(2p + 1)
    sig = 0.1
    m = gl.create("flow-matching", data=DataInfo(shape=(2,)), sigma_min=sig, t_power=p, width=8, depth=1)
    m.net = _TimeEcho()
    torch.manual_seed(1)
    loss = m.loss({"x": torch.zeros(400_000, 2)}).item()
    assert loss == pytest.approx(1 - 2 / (p + 1) + 1 / (2 * p + 1) + (1 - sig) ** 2, abs=6e-3)
    with pytest.raises(ModelError, match="t_power"):
        gl.create("flow-matching", data=DataInfo(shape=(2,)), t_power=0.0)


def test_fourier_input_features_formula_density_and_save(tmp_path):
    """x_fourier: γ(x) = [x, sin 2πBx, cos 2πBx]; the ODE density through γ still integrates to 1 on a grid
    (the exact divergence differentiates through the features), and B survives save/load."""
    torch.manual_seed(0)
    m = gl.create("flow-matching", data=DataInfo(shape=(2,)), x_fourier=6, x_fourier_sigma=0.3, width=16, depth=1)
    f = m.net
    x = torch.randn(7, 2)
    a = 2 * math.pi * x @ f.B.T
    assert f.B.shape == (6, 2) and torch.allclose(f.features(x), torch.cat([x, a.sin(), a.cos()], 1))
    m = m.double().eval()
    g = torch.linspace(-8, 8, 161, dtype=torch.float64)     # spacing 0.1: the density peaks at ≈ 0.55
    xy = torch.cartesian_prod(g, g)
    lp = m.log_prob(xy, sampler="rk4", steps=8)
    mass = lp.exp().sum().item() * (g[1] - g[0]).item() ** 2
    assert abs(mass - 1) < 0.005, mass
    # the (untrained) field is far from zero: inside radius 3 the density differs from N(0, I) by nats
    prior = -0.5 * xy.pow(2).sum(1) - math.log(2 * math.pi)
    assert (lp - prior)[xy.norm(dim=1) < 3].abs().max() > 1.0
    m.save_pretrained(tmp_path / "m")
    same = gl.load(tmp_path / "m").double()
    assert torch.equal(same.net.B, m.net.B)
    assert torch.allclose(same.log_prob(xy[:50], sampler="rk4", steps=8), lp[:50], atol=1e-8)


class _MixOut(nn.Module):
    """A "network" with fixed per-pixel mixture outputs (3 logits, μ, log s), and for labelled data a
    second set for the null label (classifier-free guidance)."""

    def __init__(self, out, out_null=None):
        super().__init__()
        self.register_buffer("out", out)                   # (D, 5); buffers follow .double()
        self.out_null = out_null

    def forward(self, x, t, y=None):
        B = x.shape[0]
        one = lambda o: o.T.reshape(1, -1, *x.shape[2:]).expand(B, -1, *x.shape[2:])   # noqa: E731
        if y is None or self.out_null is None:
            return one(self.out)
        return torch.where((y == 2).reshape(-1, 1, 1, 1), one(self.out_null), one(self.out))


MIX_OUT = torch.tensor([[0.3, -1.0, 0.2, 0.25, math.log(0.3)],      # pixel 0: a broad Gaussian part
                        [-0.5, 0.7, 1.0, -0.6, math.log(0.05)]])    # pixel 1: a narrow one


@pytest.mark.parametrize("path", ["cfm", "rectified"])
def test_fm_mixture_velocity_is_the_marginal_velocity_by_quadrature(path):
    """``prediction="mixture"``: v(x, t) = E[u_t(x | x₁) | x_t = x] with x₁ from the network's prior
    π_lo δ(−1) + π_hi δ(+1) + π_g N(μ, s²) and x_t | x₁ ~ N(t x₁, σ_t²), computed here by quadrature
    over x₁ with Lipman et al.'s conditional velocity (independent of the model's Bayes formula)."""
    info = DataInfo(shape=(1, 2, 1), kind="discrete", num_levels=256, modality="image")
    m = gl.create("flow-matching", data=info, path=path, prediction="mixture", network="mlp", width=8, depth=1,
                  sigma_min=0.01)
    m.net = _MixOut(MIX_OUT)
    sm = m.sigma_min
    g = torch.linspace(-4, 4, 200001, dtype=torch.float64)
    xs = torch.tensor([-1.2, -0.99, -0.3, 0.0, 0.4, 0.98, 1.3], dtype=torch.float64)
    for t in (0.0, 0.2, 0.6, 0.9, 0.98):
        x = xs[:, None, None, None].expand(7, 1, 2, 1).contiguous()
        got = m.net_eval(x.float(), torch.full((7,), t))
        st = 1 - (1 - sm) * t
        lik = lambda x1: torch.exp(-(xs[:, None] - t * x1) ** 2 / (2 * st * st))          # noqa: E731
        u = lambda x1: (x1 - (1 - sm) * xs[:, None]) / st                                 # noqa: E731
        for p in range(2):
            pi = torch.softmax(MIX_OUT[p, :3].double(), 0)
            mu, s = MIX_OUT[p, 3].double(), MIX_OUT[p, 4].double().exp()
            dens = torch.exp(-(g - mu) ** 2 / (2 * s * s)) / (s * math.sqrt(2 * math.pi))
            lo, hi = torch.tensor(-1.0, dtype=torch.float64), torch.tensor(1.0, dtype=torch.float64)
            num = (pi[2] * torch.trapezoid(lik(g) * dens * u(g), g) + pi[0] * (lik(lo) * u(lo))[:, 0]
                   + pi[1] * (lik(hi) * u(hi))[:, 0])
            den = pi[2] * torch.trapezoid(lik(g) * dens, g) + pi[0] * lik(lo)[:, 0] + pi[1] * lik(hi)[:, 0]
            want = num / den
            assert torch.allclose(got[:, 0, p, 0].double(), want, rtol=1e-4, atol=1e-4), (path, t, p, got[:, 0, p, 0], want)


def test_fm_mixture_loss_is_the_velocity_loss_guidance_combines_velocities_and_it_trains():
    """The mixture loss ‖x̂₁ − x₁‖²/σ_t² equals the CFM loss ‖v̂ − (x₁ − (1 − σ_min) x₀)‖² at the same draw
    (σ_t ≥ 0.01, where the weight is not capped); classifier-free guidance mixes the two velocities,
    ``v_null + w (v_y − v_null)``; continuous data is refused; a small model trains and samples levels."""
    info = DataInfo(shape=(1, 2, 1), kind="discrete", num_levels=256, modality="image", cond="label", num_classes=2)
    m = gl.create("flow-matching", data=info, prediction="mixture", network="mlp", width=8, depth=1)
    m.net = _MixOut(MIX_OUT, MIX_OUT.flip(0) * 0.7)
    x1 = m.to_model(torch.randint(0, 256, (64, 1, 2, 1), generator=torch.Generator().manual_seed(0)))
    x0 = torch.randn(64, 1, 2, 1, generator=torch.Generator().manual_seed(1))
    t = torch.rand(64, generator=torch.Generator().manual_seed(2)) * 0.99
    xt = path_sample(x0, x1, t, m.sigma_min)
    y = torch.randint(0, 2, (64,), generator=torch.Generator().manual_seed(3))
    v = m.net_eval(xt, t, y)
    x1_hat = m.mixture_x1(m._net(xt, t, y), xt, t)
    sig = m.path_std(t, xt)
    assert torch.allclose((v - (x1 - (1 - m.sigma_min) * x0)) ** 2, (x1_hat - x1) ** 2 / sig ** 2, rtol=1e-3, atol=1e-4)
    null = torch.full_like(y, 2)
    for w in (0.0, 1.0, 3.0):
        want = m.net_eval(xt, t, null) + w * (m.net_eval(xt, t, y) - m.net_eval(xt, t, null))
        assert torch.allclose(m.net_eval(xt, t, y, guidance=w), want, atol=1e-5), w
    with pytest.raises(ModelError, match="discrete"):
        gl.create("flow-matching", data=DataInfo(shape=(2,)), prediction="mixture")
    with pytest.raises(ModelError, match="prediction"):
        gl.create("flow-matching", data=info, prediction="x0")
    img = DataInfo(shape=(1, 4, 4), kind="discrete", num_levels=256, modality="image")
    m = gl.create("flow-matching", data=img, path="rectified", prediction="mixture", network="mlp", width=16, depth=1)
    loss = m({"x": torch.randint(0, 256, (8, 1, 4, 4))})
    assert torch.isfinite(loss)
    loss.backward()
    for sampler in ("euler", "rk4"):
        x = m.sample(3, steps=4, sampler=sampler, generator=torch.Generator().manual_seed(0))
        assert x.shape == (3, 1, 4, 4) and x.dtype == torch.long and 0 <= int(x.min()) and int(x.max()) < 256


@pytest.mark.parametrize("k", [0, 3, 7])
def test_fm_mixture_log_prob_is_the_variational_bound_by_quadrature(k):
    """``prediction="mixture"`` log_prob = log p_s(x_s) + log P_θ(k | x_s) − log q(x_s | k), x_s ~ N(s c_k, σ_end²).
    With a fixed prior as the network the velocity is exact, so the ODE density p_s and the level posterior are
    the true ones and the mean over draws is ``∫ q log p(x, k)/q dx`` with the joint
    ``p(x, k) = Σ_i π_i ∫_{bin k} prior_i(x₁) N(x; s x₁, σ_end²) dx₁`` — computed here by quadrature over x₁ and x
    (not by the model's Bayes formula). It lies below the exact log P(k), by little at the point-mass levels."""
    K = 8
    info = DataInfo(shape=(1, 1, 1), kind="discrete", num_levels=K, modality="image")
    m = gl.create("flow-matching", data=info, prediction="mixture", network="mlp", width=8, depth=1, sigma_min=1e-4)
    out = torch.tensor([[0.4, -0.3, 0.5, 0.1, math.log(0.6)]])
    m.net = _MixOut(out)
    m.double()
    n = 3000
    lp = m.log_prob(torch.full((n, 1, 1, 1), k), sampler="dopri5", rtol=1e-7, atol=1e-7,
                    generator=torch.Generator().manual_seed(k))
    se, s = 1.0 / (K - 1), (1 - 1.0 / (K - 1)) / (1 - 1e-4)             # σ_end = half a bin (default)
    pi = torch.softmax(out[0, :3].double(), 0)
    mu, S = out[0, 3].double(), out[0, 4].double().exp()
    ck, h = 2 * k / (K - 1) - 1, 1.0 / (K - 1)
    lo, hi = (-30.0 if k == 0 else ck - h), (30.0 if k == K - 1 else ck + h)
    x1 = torch.linspace(max(lo, -30.0), min(hi, 30.0), 20001, dtype=torch.float64)
    x = torch.linspace(s * ck - 9 * se, s * ck + 9 * se, 2001, dtype=torch.float64)
    npdf = lambda z, m_, sd: torch.exp(-(z - m_) ** 2 / (2 * sd * sd)) / (sd * math.sqrt(2 * math.pi))   # noqa: E731
    joint = pi[2] * torch.trapezoid(npdf(x1[None], mu, S) * npdf(x[:, None], s * x1[None], se), x1, dim=1)
    if k == 0:
        joint = joint + pi[0] * npdf(x, -s, se)
    if k == K - 1:
        joint = joint + pi[1] * npdf(x, s, se)
    q = npdf(x, s * ck, se)
    want = torch.trapezoid(q * (torch.log(joint) - torch.log(q)), x)
    P_k = pi[2] * torch.trapezoid(npdf(x1, mu, S), x1) + (pi[0] if k == 0 else pi[1] if k == K - 1 else 0.0)
    err = 4 * lp.std() / math.sqrt(n) + 2e-3
    assert abs(lp.mean() - want) < err, (k, lp.mean(), want, err)
    assert want <= torch.log(P_k) + 1e-6
    if k in (0, K - 1):   # the gap is KL(q ‖ p(x | k)): small where the point mass dominates the outer bin
        assert torch.log(P_k) - want < 0.05, (torch.log(P_k), want)   # k = 0: 0.005, k = 7: 0.027
    info_ = m.likelihood_info()
    assert info_["kind"] == "estimate" and "bound" in info_["method"]
    with pytest.raises(ModelError, match="sigma_end"):
        m.log_prob(torch.zeros(2, 1, 1, 1, dtype=torch.long), sigma_end=2.0)
