"""Score-based models: VP/VE marginals, the exact score of Gaussian data plugged in as the network,
probability-flow ODE likelihood vs the closed form, reverse-SDE / PC / ODE / annealed-Langevin
samplers reaching the Gaussian, and the score-matching objectives' optimum."""
import math

import pytest
import torch
from torch import nn

import genlab as gl
from genlab.data import DataInfo
from genlab.models.base import ModelError
from genlab.sampling.ode import ode_log_prob, uniform_grid
from genlab.sampling.sde import euler_maruyama

MU, S = torch.tensor([1.0, -2.0], dtype=torch.float64), 0.5


class GaussianEpsNet(nn.Module):
    """score-sde's optimal ``net = −std_t · ∇ log p_t`` for data N(μ, s² I):
    p_t = N(m_t μ, (m_t² s² + std_t²) I)."""

    def __init__(self, model):
        super().__init__()
        self.model = [model]
        self.register_buffer("mu", MU.clone())

    def forward(self, x, t, y=None):
        m, std = self.model[0].marginal(t.to(x.dtype))
        m, std = m[:, None], std[:, None]
        return std * (x - m * self.mu) / (m ** 2 * S ** 2 + std ** 2)


def sde_kw(sde):
    """test id → score-sde config: ``vp`` (linear β), ``vp-cosine`` (m_t = cos(πct/2)), ``ve``."""
    return dict(sde="vp", schedule="cosine") if sde == "vp-cosine" else dict(sde=sde)


def analytic_sde(sde):
    m = gl.create("score-sde", data=DataInfo(shape=(2,)), width=8, depth=1, sigma_max=50.0, **sde_kw(sde))
    m.net = GaussianEpsNet(m)
    return m.double()


def marginal_logp(m, x, t):
    mt, std = m.marginal(torch.tensor(t, dtype=torch.float64))
    v = mt ** 2 * S ** 2 + std ** 2
    return (-0.5 * (x - mt * MU) ** 2 / v - 0.5 * torch.log(2 * math.pi * v)).sum(1)


@pytest.mark.parametrize("sde", ["vp", "vp-cosine", "ve"])
def test_marginals_match_the_forward_sde(sde):
    m = analytic_sde(sde)
    g = torch.Generator().manual_seed(0)
    x = torch.full((20000, 1), 1.5, dtype=torch.float64)
    out, _ = euler_maruyama(lambda t, x: m.f_g(x, t)[0], lambda t: m.f_g(torch.zeros(()), t)[1], x,
                            uniform_grid(0, 0.6, 300), g, denoise_last=False)
    mt, std = m.marginal(torch.tensor(0.6, dtype=torch.float64))
    assert abs(out.mean().item() - 1.5 * mt.item()) < 0.03 * max(1, std.item())
    assert abs(out.std().item() / std.item() - 1) < 0.03


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_vp_marginal_solves_the_moment_odes(schedule):
    """For x_0 fixed, the VP SDE's mean and variance obey dE/dt = −½β E and dV/dt = β(1 − V) (V(0) = 0):
    an 8th-order adaptive solve (scipy DOP853, rtol 1e-12) with the model's β(t) reproduces the closed-form (m_t, std_t²), and the time
    derivatives (ṁ, (std)˙) match central finite differences of the marginal (cosine: t up to 1, where
    β(1) = πc tan(πc/2) ≈ 498)."""
    from scipy.integrate import solve_ivp
    m = gl.create("score-sde", data=DataInfo(shape=(2,)), sde="vp", schedule=schedule, width=8, depth=1)

    def rhs(t, y):
        b = float(m.beta(torch.tensor(t, dtype=torch.float64)))
        return [-0.5 * b * y[0], b * (1 - y[1])]
    ts = [0.05, 0.3, 0.7, 1.0]
    sol = solve_ivp(rhs, (0.0, 1.0), [1.0, 0.0], method="DOP853", t_eval=ts, rtol=1e-12, atol=1e-13)
    mt, std = m.marginal(torch.tensor(ts, dtype=torch.float64))
    assert torch.allclose(torch.from_numpy(sol.y[0]), mt, rtol=1e-8, atol=1e-10), (sol.y[0], mt)
    assert torch.allclose(torch.from_numpy(sol.y[1]), std ** 2, rtol=1e-8, atol=1e-10), (sol.y[1], std ** 2)
    t = torch.linspace(1e-3, 1 - 1e-3, 50, dtype=torch.float64)
    dm, dstd = m.marginal_dot(t)
    e = 1e-6
    (mp, sp), (mm, sm) = m.marginal(t + e), m.marginal(t - e)
    assert torch.allclose(dm, (mp - mm) / (2 * e), rtol=1e-6, atol=1e-9)
    assert torch.allclose(dstd, (sp - sm) / (2 * e), rtol=1e-6, atol=1e-9)
    if schedule == "cosine":      # the velocity target is bounded: |ṁ|, (std)˙ ≤ πc/2 (linear: (std)˙ ~ t^(−1/2))
        assert dstd.abs().max() <= math.pi / 2 and dm.abs().max() <= math.pi / 2


def test_cosine_schedule_is_refused_for_ve_and_c_of_one():
    with pytest.raises(ModelError, match="VP"):
        gl.create("score-sde", data=DataInfo(shape=(2,)), sde="ve", schedule="cosine")
    with pytest.raises(ModelError, match="cosine_c"):
        gl.create("score-sde", data=DataInfo(shape=(2,)), schedule="cosine", cosine_c=1.0)


@pytest.mark.parametrize("sde", ["vp", "vp-cosine", "ve"])
def test_exact_score_and_probability_flow_likelihood(sde):
    m = analytic_sde(sde)
    t = 0.4
    x = (MU + torch.randn(6, 2, dtype=torch.float64)).requires_grad_(True)
    true = torch.autograd.grad(marginal_logp(m, x, t).sum(), x)[0]
    assert torch.allclose(m.score(x.detach(), torch.tensor(t, dtype=torch.float64)), true, atol=1e-10)
    xs = MU + 0.7 * torch.randn(10, 2, dtype=torch.float64)
    true = marginal_logp(m, xs, m.config.t_eps)
    # the probability-flow ODE maps p_{t_eps} to p_1 exactly: with p_1 as the prior the formula is exact
    res = ode_log_prob(m.pf_drift(), xs, m.config.t_eps, 1.0, lambda z: marginal_logp(m, z, 1.0),
                       method="dopri5", rtol=1e-8, atol=1e-8)
    assert torch.allclose(res.log_prob, true, atol=1e-4), (res.log_prob, true)
    # the model's log_prob uses the SDE's prior N(0, σ_T² I) instead of p_1: a small, known mismatch
    lp = m.log_prob(xs, sampler="dopri5", rtol=1e-7, atol=1e-7)
    mismatch = (m.prior_log_prob(res.z) - marginal_logp(m, res.z, 1.0))
    assert torch.allclose(lp, true + mismatch, atol=1e-4)
    # (with σ_max = 5 instead of 50 the VE mismatch reaches 0.74 nats: σ_max must dwarf the data)
    assert mismatch.abs().max() < 0.1
    assert m.likelihood_info()["kind"] == "estimate" and m.likelihood_info()["trace"] == "exact"


@pytest.mark.parametrize("sde,sampler,steps", [("vp", "em", 300), ("vp", "pc", 100), ("vp", "rk4", 20),
                                               ("vp-cosine", "em", 300), ("ve", "em", 300), ("ve", "heun", 50)])
def test_score_sde_samplers_reach_the_gaussian(sde, sampler, steps):
    m = analytic_sde(sde)
    x = m.sample(8000, sampler=sampler, steps=steps, generator=torch.Generator().manual_seed(0))
    tol = 0.04
    assert torch.allclose(x.mean(0), MU, atol=tol), x.mean(0)
    assert torch.allclose(x.std(0), torch.tensor([S, S], dtype=torch.float64), atol=tol), x.std(0)


class NCSNOptimal(nn.Module):
    """NCSN's optimal ``net(x, σ) = σ ∇ log N(x; μ, (s² + σ²) I)``."""

    def __init__(self, model):
        super().__init__()
        self.model = [model]
        self.register_buffer("mu", MU.clone())

    def forward(self, x, tau, y=None):
        c = self.model[0].config
        sigma = torch.exp(tau.to(x.dtype) * (math.log(c.sigma_max) - math.log(c.sigma_min)) + math.log(c.sigma_min))
        sigma = sigma[:, None]
        return -sigma * (x - self.mu) / (S ** 2 + sigma ** 2)


def test_annealed_langevin_with_the_exact_score():
    m = gl.create("ncsn", data=DataInfo(shape=(2,)), width=8, depth=1, sigma_max=3.0, num_scales=10)
    m.net = NCSNOptimal(m)
    m.double()
    x = m.sample(8000, steps=100, step_lr=5e-5, generator=torch.Generator().manual_seed(0))
    assert m.last_nfe == 1001
    assert torch.allclose(x.mean(0), MU, atol=0.03) and torch.allclose(x.std(0), torch.tensor([S, S]).double(),
                                                                       atol=0.03), x.std(0)


@pytest.mark.parametrize("objective", ["dsm", "ssm"])
def test_score_matching_objectives_are_minimised_by_the_true_score(objective):
    """Scaling the optimal network's output by 1 ± 0.3 raises the expected loss."""
    m = gl.create("ncsn", data=DataInfo(shape=(2,)), width=8, depth=1, objective=objective)
    opt = NCSNOptimal(m)
    m.double()
    x = (MU + S * torch.randn(40000, 2, dtype=torch.float64))
    losses = {}
    for k in (0.7, 1.0, 1.3):
        m.net = nn.Module()
        m.net.forward = (lambda k_: (lambda x, t, y=None: k_ * opt(x, t)))(k)
        torch.manual_seed(3)
        losses[k] = float(m({"x": x}).detach())
    assert losses[1.0] < losses[0.7] and losses[1.0] < losses[1.3], losses


# ---- parameterisations, likelihood weighting, importance sampling ----------------------------------------
class GaussianVelocityNet(nn.Module):
    """``prediction="velocity"``'s optimum: the probability-flow drift ``f − ½g² ∇log p_t`` of data N(μ, s² I)."""

    def __init__(self, model):
        super().__init__()
        self.model = [model]
        self.register_buffer("mu", MU.clone())

    def forward(self, x, t, y=None):
        mdl = self.model[0]
        m, std = mdl.marginal(t.to(x.dtype))
        m, std = m[:, None], std[:, None]
        fx, g = mdl.f_g(x, t.to(x.dtype)[:, None])
        return fx + 0.5 * g ** 2 * (x - m * self.mu) / (m ** 2 * S ** 2 + std ** 2)


def analytic_velocity(sde, t_eps=1e-3):
    m = gl.create("score-sde", data=DataInfo(shape=(2,)), width=8, depth=1, sigma_max=50.0,
                  prediction="velocity", t_eps=t_eps, **sde_kw(sde))
    m.net = GaussianVelocityNet(m)
    return m.double()


@pytest.mark.parametrize("sde", ["vp", "vp-cosine", "ve"])
def test_velocity_parameterisation_gives_the_exact_score_and_likelihood(sde):
    """The exact drift as the network: s_θ = 2(f − net)/g² is the true score, and the model's ODE
    log-likelihood (down to t_ε = 1e-5) is the closed form (up to the known prior mismatch)."""
    assert_exact_score_and_ode_likelihood(analytic_velocity(sde, t_eps=1e-5))


def assert_exact_score_and_ode_likelihood(m):
    """The model's score is the true score of N(μ, s² I) noised, and its probability-flow ODE maps p_{t_ε} to p_1."""
    x = (MU + torch.randn(6, 2, dtype=torch.float64)).requires_grad_(True)
    for t in (1e-5, 0.4, 1.0):
        true = torch.autograd.grad(marginal_logp(m, x, t).sum(), x)[0]
        assert torch.allclose(m.score(x.detach(), torch.tensor(t, dtype=torch.float64)), true, atol=1e-8)
    xs = MU + 0.7 * torch.randn(10, 2, dtype=torch.float64)
    res = ode_log_prob(m.pf_drift(), xs, m.config.t_eps, 1.0, lambda z: marginal_logp(m, z, 1.0),
                       method="dopri5", rtol=1e-8, atol=1e-8)
    assert torch.allclose(res.log_prob, marginal_logp(m, xs, 1e-5), atol=1e-4)


@pytest.mark.parametrize("sde", ["vp", "vp-cosine", "ve"])
def test_velocity_loss_is_the_weighted_score_loss(sde):
    """Per example ‖s_θ(x_t) + z/std‖² = 4‖net − v‖²/g⁴ with v = ṁ x₀ + (std)˙ z, for any network; and
    (std)˙, ṁ against finite differences of the marginal."""
    torch.manual_seed(0)
    m = gl.create("score-sde", data=DataInfo(shape=(2,)), width=16, depth=1, prediction="velocity",
                  **sde_kw(sde)).double()
    t = torch.rand(64, dtype=torch.float64) * 0.98 + 0.01
    x0, z = torch.randn(64, 2, dtype=torch.float64), torch.randn(64, 2, dtype=torch.float64)
    mt, std = m.marginal(t)
    dm, dstd = m.marginal_dot(t)
    h = 1e-6
    (mp, sp), (mm, sm) = m.marginal(t + h), m.marginal(t - h)
    assert torch.allclose(dm, (mp - mm) / (2 * h), rtol=1e-6, atol=1e-8)
    assert torch.allclose(dstd, (sp - sm) / (2 * h), rtol=1e-6)
    xt = mt[:, None] * x0 + std[:, None] * z
    v = dm[:, None] * x0 + dstd[:, None] * z
    lhs = ((m.score(xt, t) + z / std[:, None]) ** 2).sum(1)
    g2 = m.f_g(torch.zeros(()), t)[1] ** 2
    rhs = 4 * ((m.net_eval(xt, t) - v) ** 2).sum(1) / g2 ** 2
    assert torch.allclose(lhs, rhs, rtol=1e-8)


@pytest.mark.parametrize("sde", ["vp", "vp-cosine", "ve"])
def test_importance_sampling_of_t(sde):
    """t ~ q ∝ g²/std² on [t_ε, 1]: the empirical CDF matches ∫ g²/std² by quadrature, and the weights
    w = Z std²/g² · (λ/std²) equal the hand-computed Z = ∫ g²/std² dt (eps: constant)."""
    m = gl.create("score-sde", data=DataInfo(shape=(2,)), weighting="likelihood", t_eps=1e-5,
                  sigma_max=50.0, **sde_kw(sde))
    torch.manual_seed(0)
    t, w = m.sample_t(200_000)
    grid = torch.logspace(-5, 0, 200001, dtype=torch.float64)     # fine: the cosine β ≈ 498 rises steeply at t = 1
    _, g = m.f_g(torch.zeros(()), grid)
    _, std = m.marginal(grid)
    dens = g ** 2 / std ** 2
    cdf = torch.cat([torch.zeros(1, dtype=torch.float64),
                     torch.cumsum(0.5 * (dens[1:] + dens[:-1]) * grid.diff(), 0)])
    Z = float(cdf[-1])
    assert torch.allclose(w.double(), torch.full_like(w.double(), Z), rtol=1e-3), (w[:3], Z)
    for q in (1e-4, 1e-2, 0.3, 0.8):
        i = int(torch.searchsorted(grid, torch.tensor(q, dtype=torch.float64)))
        assert abs((t < grid[i]).double().mean().item() - float(cdf[i]) / Z) < 0.005
    # the closed-form CDF against the quadrature, and its closed-form inverse against the CDF
    F = m._is_cdf(grid)
    assert torch.allclose(F[1:] - F[0], cdf[1:], rtol=1e-4, atol=1e-6)
    assert torch.allclose(m._is_inverse(F), grid, rtol=1e-9, atol=0)


def test_likelihood_weighted_loss_is_the_integral():
    """The importance-sampled loss is an unbiased estimate of ∫_{t_ε}^1 λ(t) E‖s_θ + z/std‖² dt (λ = g²),
    here for the optimal ε-network × 1.2 on Gaussian data, against quadrature of the uniform-t estimate."""
    m = analytic_sde("vp")
    m.config.weighting, m.config.t_eps = "likelihood", 1e-3
    opt = m.net
    m.net = nn.Module()
    m.net.forward = lambda x, t, y=None: 1.2 * opt(x, t)
    torch.manual_seed(0)
    x0 = MU + S * torch.randn(100_000, 2, dtype=torch.float64)
    is_loss = float(m({"x": x0}))
    # quadrature in t (log grid), E over (x0, z) by Monte Carlo with common random numbers
    grid = torch.logspace(-3, 0, 121, dtype=torch.float64)
    z = torch.randn(20_000, 2, dtype=torch.float64)
    vals = []
    for t in grid:
        tt = t.expand(20_000)
        mt, std = m.marginal(tt)
        xt = mt[:, None] * x0[:20_000] + std[:, None] * z
        g2 = m.f_g(torch.zeros(()), tt)[1] ** 2
        vals.append((g2 * ((m.score(xt, tt) + z / std[:, None]) ** 2).sum(1)).mean())
    vals = torch.stack(vals)
    quad = float((0.5 * (vals[1:] + vals[:-1]) * grid.diff()).sum())
    assert abs(is_loss / quad - 1) < 0.03, (is_loss, quad)


def test_fourier_input_features_are_shared_by_every_denoiser_family():
    """``x_fourier`` lives in the shared network config: score-sde and ddpm (with a doubled output for learned
    variances) get the same γ(x) = [x, sin 2πBx, cos 2πBx] input; a U-Net with it is refused."""
    from genlab.nn.unet import FourierInputNet
    info = DataInfo(shape=(2,))
    for name, extra in (("score-sde", {}), ("ddpm", {"variance": "learned", "T": 10})):
        m = gl.create(name, data=info, x_fourier=4, x_fourier_sigma=0.5, width=16, depth=1, **extra)
        assert isinstance(m.net, FourierInputNet) and m.net.B.shape == (4, 2)
        x = torch.randn(5, 2)
        a = 2 * math.pi * x @ m.net.B.T
        assert torch.allclose(m.net.features(x), torch.cat([x, a.sin(), a.cos()], 1))
        out = m.net(x, torch.rand(5))
        assert out.shape == (5, 2 * (2 if name == "ddpm" else 1))
        loss = m.loss({"x": x})
        assert torch.isfinite(loss["loss"] if isinstance(loss, dict) else loss).all()
    with pytest.raises(ModelError, match="x_fourier"):
        gl.create("score-sde", data=DataInfo(shape=(1, 8, 8), modality="image"), network="unet", x_fourier=4)


class GaussianFlowNet(nn.Module):
    """Flow matching's exact velocity for data N(μ, s² I) on the straight path ``x' = u x_0 + (1 − u) z``:
    ``E[x_0 − z | x'] = μ + (u s² − (1 − u))(x' − uμ)/(u² s² + (1 − u)²)`` — what ``prediction="flow"``'s
    network sees (x', u) and should output, independent of the SDE."""

    def __init__(self):
        super().__init__()
        self.register_buffer("mu", MU.clone())

    def forward(self, x, u, y=None):
        u = u.to(x.dtype)[:, None]
        return self.mu + (u * S ** 2 - (1 - u)) * (x - u * self.mu) / (u ** 2 * S ** 2 + (1 - u) ** 2)


@pytest.mark.parametrize("sde", ["vp", "vp-cosine", "ve"])
def test_flow_parameterisation_gives_the_exact_drift_score_and_likelihood(sde):
    """With flow matching's exact straight-path velocity as the network (fed x_t/(m + std) and u = m/(m + std)),
    ``prediction="flow"``'s drift is the exact probability-flow drift (the velocity parameterisation's optimum),
    its score the true score, its ODE likelihood the closed form; and for any network the drift error is
    ``(ṁ std − (std)˙ m)/(m + std)`` times the error in w, w = the network at the straight-path input."""
    m = gl.create("score-sde", data=DataInfo(shape=(2,)), width=8, depth=1, sigma_max=50.0, prediction="flow",
                  t_eps=1e-5, **sde_kw(sde))
    m.net = GaussianFlowNet()
    m.double()
    ref = analytic_velocity(sde, t_eps=1e-5)
    x = MU + torch.randn(6, 2, dtype=torch.float64)
    for t in (1e-5, 0.4, 1.0):
        tt = torch.full((6,), t, dtype=torch.float64)
        assert torch.allclose(m.net_drift(x, tt), ref.net_eval(x, tt), rtol=1e-9, atol=1e-9)
    assert_exact_score_and_ode_likelihood(m)
    # the loss: drift − v = coef · (net − (x_0 − z)) for an arbitrary network
    torch.manual_seed(0)
    m2 = gl.create("score-sde", data=DataInfo(shape=(2,)), width=16, depth=1, prediction="flow", **sde_kw(sde)).double()
    t = torch.rand(64, dtype=torch.float64) * 0.98 + 0.01
    x0, z = torch.randn(64, 2, dtype=torch.float64), torch.randn(64, 2, dtype=torch.float64)
    mt, std = m2.marginal(t)
    dm, dstd = m2.marginal_dot(t)
    xt = mt[:, None] * x0 + std[:, None] * z
    coef = ((dm * std - dstd * mt) / (mt + std))[:, None]
    lhs = m2.net_drift(xt, t) - (dm[:, None] * x0 + dstd[:, None] * z)
    assert torch.allclose(lhs, coef * (m2.net_eval(*m2.flow_input(xt, t)) - (x0 - z)), rtol=1e-8, atol=1e-10)
    with pytest.raises(gl.models.ModelError, match="prediction"):
        gl.create("score-sde", data=DataInfo(shape=(2,)), prediction="x0")


@pytest.mark.parametrize("sde", ["vp", "vp-cosine", "ve"])
def test_flow_training_times_are_uniform_on_the_straight_path(sde):
    """``prediction="flow"`` (default weighting) draws u = m/(m + std) uniformly on [u(1), u(t_ε)] — a KS
    distance against the uniform CDF — through an inverse of u(t) exact to 1e-9, and its loss is flow
    matching's ‖w − (x_0 − z)‖² at those times."""
    m = gl.create("score-sde", data=DataInfo(shape=(2,)), width=8, depth=1, prediction="flow", t_eps=1e-5,
                  sigma_max=50.0, **sde_kw(sde))
    tt = torch.linspace(1e-5, 1.0, 101, dtype=torch.float64)
    assert torch.allclose(m.time_of_straight(m.straight_time(tt)), tt, atol=1e-9)
    torch.manual_seed(0)
    t, w = m.sample_t(100_000)
    assert torch.all(w == 1) and float(t.min()) >= 1e-5 and float(t.max()) <= 1.0
    u = m.straight_time(t.double()).sort().values
    lo, hi = float(m.straight_time(torch.tensor(1.0, dtype=torch.float64))), float(m.straight_time(torch.tensor(1e-5, dtype=torch.float64)))
    ks = ((u - lo) / (hi - lo) - torch.arange(1, len(u) + 1, dtype=torch.float64) / len(u)).abs().max()
    assert ks < 1.63 / math.sqrt(len(u)), ks            # 1 % level
    x = MU + S * torch.randn(8, 2, dtype=torch.float64)
    m.double()
    torch.manual_seed(1)
    loss = m({"x": x})
    torch.manual_seed(1)
    t, _ = m.sample_t(8)
    mt, std = m.marginal(t.double())
    z = torch.randn_like(x)
    xt = mt[:, None] * x + std[:, None] * z
    want = ((m.net_eval(*m.flow_input(xt, t.double())) - (x - z)) ** 2).sum(1).mean()
    assert torch.allclose(loss, want, rtol=1e-6), (loss, want)
    # t_power = p: the normalised u has flow matching's CDF 1 − (1 − τ)^{1/p}
    mp = gl.create("score-sde", data=DataInfo(shape=(2,)), width=8, depth=1, prediction="flow", t_eps=1e-5,
                   sigma_max=50.0, t_power=2.0, **sde_kw(sde))
    torch.manual_seed(0)
    v = ((mp.straight_time(mp.sample_t(100_000)[0].double()) - lo) / (hi - lo)).sort().values
    ks = (1 - (1 - v).clamp_min(0) ** 0.5 - torch.arange(1, len(v) + 1, dtype=torch.float64) / len(v)).abs().max()
    assert ks < 1.63 / math.sqrt(len(v)), ks
    with pytest.raises(gl.models.ModelError, match="t_power"):
        gl.create("score-sde", data=DataInfo(shape=(2,)), prediction="velocity", t_power=2.0)
