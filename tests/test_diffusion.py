"""Diffusion mathematics: schedules, posterior, parameterisations, DDIM vs DDPM, the variational
bound and DDIM inversion, with the analytic optimal denoiser of Gaussian data as the "network"."""
import math

import pytest
import torch
from torch import nn

import genlab as gl
from genlab.data import DataInfo
from genlab.models.ddpm import discretized_gaussian_log_prob, spaced_timesteps
from genlab.models.schedules import (DiffusionSchedule, cosine_alpha_bar, eps_to_score, eps_to_x0, linear_betas,
                                     make_betas, score_to_eps, to_eps_x0, v_target, v_to_eps, v_to_x0, x0_to_eps)

MU, S = torch.tensor([1.0, -2.0]), 0.5     # Gaussian data N(MU, S² I)


class AnalyticEps(nn.Module):
    """E[ε | x_t] for data N(μ, s² I): x_t ~ N(√ᾱ μ, (ᾱ s² + 1 − ᾱ) I), Cov(ε, x_t) = √(1−ᾱ) I."""

    def __init__(self, alpha_bar, T, mu=MU, s=S, out="eps"):
        super().__init__()
        self.ab, self.T, self.mu, self.s, self.out = alpha_bar, T, mu, s, out

    def forward(self, x, t, y=None):
        ab = self.ab[(t * self.T).round().long()].to(x.dtype)[:, None]
        eps = (1 - ab).sqrt() * (x - ab.sqrt() * self.mu) / (ab * self.s ** 2 + 1 - ab)
        if self.out == "eps":
            return eps
        x0 = eps_to_x0(x, eps, ab)
        return x0 if self.out == "x0" else v_target(x0, eps, ab)


def analytic_ddpm(T=100, parameterization="eps", **kw):
    m = gl.create("ddpm", data=DataInfo(shape=(2,)), T=T, parameterization=parameterization, width=8, depth=1, **kw)
    m.net = AnalyticEps(m.schedule.alpha_bar, T, out=parameterization)
    return m


def test_schedules_closed_forms():
    b = linear_betas(1000)
    assert torch.allclose(b[[0, -1]], torch.tensor([1e-4, 0.02], dtype=torch.float64))
    s = DiffusionSchedule(b)
    assert torch.allclose(s.alpha_bar, torch.cumprod(1 - b, 0))
    assert abs(s.alpha_bar[-1].item() - math.exp(torch.log1p(-b).sum().item())) < 1e-12
    # cosine: ᾱ_t = f(t/T)/f(0) exactly where β is not clipped
    T = 50
    sc = DiffusionSchedule(make_betas("cosine", T))
    tau = torch.arange(1, T + 1, dtype=torch.float64) / T
    ab = cosine_alpha_bar(tau)
    ok = sc.betas < 0.999
    assert torch.allclose(sc.alpha_bar[:20], ab[:20], rtol=1e-10) and ok[:20].all()
    # any ᾱ(τ): from_alpha_bar reproduces it
    sf = DiffusionSchedule.from_alpha_bar(lambda u: torch.exp(-5 * u ** 2), 40)
    assert torch.allclose(sf.alpha_bar, torch.exp(-5 * (torch.arange(1, 41, dtype=torch.float64) / 40) ** 2))


def test_q_sample_moments():
    s = DiffusionSchedule(linear_betas(100))
    x0 = torch.tensor([[2.0, -1.0]]).expand(40000, 2)
    t = torch.full((40000,), 30)
    xt = s.q_sample(x0, t, torch.randn(40000, 2))
    mean, var = s.q_mean_var(x0[:1], t[:1])
    assert torch.allclose(xt.mean(0), mean[0], atol=0.02)
    assert torch.allclose(xt.var(0), var[0], atol=0.02)
    assert abs(mean[0, 0].item() - 2 * s.alpha_bar[30].sqrt().item()) < 1e-6


def test_posterior_matches_bayes_rule_numerically():
    """q(x_{t−1} | x_t, x_0) ∝ q(x_t | x_{t−1}) q(x_{t−1} | x_0), on a 1-D grid."""
    s = DiffusionSchedule(make_betas("cosine", 20))
    x0, xt, t = 0.7, -0.3, 9
    grid = torch.linspace(-6, 6, 200001, dtype=torch.float64)
    a_t, ab_prev = s.alphas[t], s.alpha_bar[t - 1]
    log_lik = -0.5 * (xt - a_t.sqrt() * grid) ** 2 / (1 - a_t)
    log_prior = -0.5 * (grid - ab_prev.sqrt() * x0) ** 2 / (1 - ab_prev)
    w = torch.softmax(log_lik + log_prior, 0)
    m_num = (w * grid).sum()
    v_num = (w * (grid - m_num) ** 2).sum()
    mean, var = s.q_posterior(torch.tensor([[x0]], dtype=torch.float64), torch.tensor([[xt]], dtype=torch.float64),
                              torch.tensor([t]))
    assert abs(mean.item() - m_num.item()) < 1e-6
    assert abs(var.item() - v_num.item()) < 1e-6


def test_parameterisation_conversions_roundtrip():
    torch.manual_seed(0)
    x0, eps = torch.randn(10, 3, dtype=torch.float64), torch.randn(10, 3, dtype=torch.float64)
    ab = torch.rand(10, 1, dtype=torch.float64) * 0.98 + 0.01
    xt = ab.sqrt() * x0 + (1 - ab).sqrt() * eps
    assert torch.allclose(eps_to_x0(xt, eps, ab), x0) and torch.allclose(x0_to_eps(xt, x0, ab), eps)
    v = v_target(x0, eps, ab)
    assert torch.allclose(v_to_x0(xt, v, ab), x0) and torch.allclose(v_to_eps(xt, v, ab), eps)
    for p, pred in (("eps", eps), ("x0", x0), ("v", v)):
        e, x = to_eps_x0(pred, xt, ab, p)
        assert torch.allclose(e, eps) and torch.allclose(x, x0)
    assert torch.allclose(score_to_eps(eps_to_score(eps, ab), ab), eps)


def test_optimal_denoiser_gives_exact_score():
    """−E[ε|x_t]/√(1−ᾱ) equals ∇ log q_t(x_t) of the Gaussian marginal (autograd)."""
    m = analytic_ddpm(T=100)
    t = torch.full((5,), 40)
    ab = m.schedule.alpha_bar[40].float()
    x = torch.randn(5, 2, requires_grad=True)
    var = ab * S ** 2 + 1 - ab
    logq = (-0.5 * (x - ab.sqrt() * MU) ** 2 / var).sum()
    true_score = torch.autograd.grad(logq, x)[0]
    eps = m.net(x.detach(), t.float() / 100)
    assert torch.allclose(eps_to_score(eps, ab), true_score, atol=1e-5)


@pytest.mark.parametrize("param", ["eps", "x0", "v"])
def test_parameterisations_give_the_same_sampler(param):
    ref = analytic_ddpm(parameterization="eps").sample(300, generator=torch.Generator().manual_seed(3), steps=25)
    other = analytic_ddpm(parameterization=param).sample(300, generator=torch.Generator().manual_seed(3), steps=25)
    assert torch.allclose(ref, other, atol=1e-3)


def test_ddim_eta1_matches_ddpm_posterior():
    m = analytic_ddpm(T=100)
    ab, abp = float(m.schedule.alpha_bar[50]), float(m.schedule.alpha_bar[49])
    assert abs(m.ddim_sigma(ab, abp, 1.0) ** 2 - float(m.schedule.post_var[50])) < 1e-12
    # the whole trajectories agree under the same generator, on all steps and on a subset of steps
    for steps in (100, 17):
        a = m.sample(200, sampler="ddpm", steps=steps, generator=torch.Generator().manual_seed(1))
        b = m.sample(200, sampler="ddim", eta=1.0, steps=steps, generator=torch.Generator().manual_seed(1))
        assert torch.allclose(a, b, atol=1e-4)


def test_samplers_reach_the_gaussian():
    m = analytic_ddpm(T=500)
    # DDIM η=0 is a first-order ODE discretisation: at 100 of 1000 steps its std is 0.486 (−3 %)
    for sampler, steps, eta in (("ddpm", 500, None), ("ddim", 250, 0.0), ("ddim", 250, 0.5)):
        x = m.sample(6000, sampler=sampler, steps=steps, eta=eta, generator=torch.Generator().manual_seed(0))
        assert torch.allclose(x.mean(0), MU, atol=0.02), sampler
        assert torch.allclose(x.std(0), torch.tensor([S, S]), atol=0.02), (sampler, x.std(0))
    assert m.last_nfe == 250
    assert spaced_timesteps(1000, 4).tolist() == [0, 333, 666, 999]


def test_ddim_inversion_matches_the_exact_flow_and_reconstructs():
    """For N(μ, s²) data the DDIM ODE in y = x/√ᾱ, σ = √((1−ᾱ)/ᾱ) has the solution
    y(σ) = μ + (y(0) − μ) √(s² + σ²)/s; inversion follows it to first order in the step."""
    m = analytic_ddpm(T=1000)
    x = MU + S * torch.randn(100, 2)
    abT = m.schedule.alpha_bar[-1].item()
    z_exact = math.sqrt(abT) * (MU + (x - MU) * math.sqrt(S ** 2 + (1 - abT) / abT) / S)
    errs, recs = [], []
    for steps in (100, 1000):
        z = m.ddim_invert(x, steps=steps)
        errs.append((z - z_exact).abs().max().item())
        back = m.sample(100, sampler="ddim", eta=0.0, steps=steps, x_T=z)
        recs.append((back - x).abs().max().item())
    assert errs[1] < 0.02 and recs[1] < 0.01, (errs, recs)
    assert errs[1] < errs[0] / 4 and recs[1] < recs[0] / 4, (errs, recs)   # first order: ×10 steps ⇒ ≈ ÷10


def test_variational_bound_on_gaussian_data():
    """With the optimal denoiser the bound is ≥ the true NLL and its gap is the reverse-variance
    mismatch: β (fixed_large) is nearly right for spread-out data except at the decoder step, where
    Ho et al.'s β̃₁ is half the true ≈ β₀ (0.15 nats/dim); β̃ (fixed_small) is too small throughout."""
    true_nll = 2 * (0.5 * math.log(2 * math.pi * S ** 2) + 0.5)   # entropy of N(μ, s² I) in 2-D
    x = MU + S * torch.randn(3000, 2)
    gaps = {}
    for var in ("fixed_large", "fixed_small"):
        m = analytic_ddpm(T=200, variance=var)
        lp, terms = m.log_prob(x, return_terms=True)
        gaps[var] = -lp.mean().item() - true_nll
        assert terms.shape == (3000, 201) and (terms[:, 1:] >= -1e-6).all()
    se = 0.04   # measured standard error of the mean bound (one noise draw per step)
    assert 0.0 - 2 * se < gaps["fixed_large"] < 0.45, gaps
    assert gaps["fixed_small"] > gaps["fixed_large"] + 0.5, gaps
    assert m.likelihood_info()["kind"] == "bound"


def test_discretized_gaussian_decoder_sums_to_one():
    K = 5
    levels = torch.arange(K).float()
    x = 2 * levels / (K - 1) - 1
    mean, log_scale = torch.full((K,), 0.1), torch.full((K,), math.log(0.4))
    p = discretized_gaussian_log_prob(x, mean, log_scale, K).exp()
    assert abs(p.sum().item() - 1.0) < 1e-6
    cdf = lambda z: 0.5 * (1 + math.erf((z - 0.1) / (0.4 * math.sqrt(2))))  # noqa: E731
    assert abs(p[2].item() - (cdf(0.25) - cdf(-0.25))) < 1e-6
    assert abs(p[0].item() - cdf(-0.75)) < 1e-6 and abs(p[4].item() - (1 - cdf(0.75))) < 1e-6


def test_cfg_weight_zero_equals_unconditional_sampler():
    info = DataInfo(shape=(2,), cond="label", num_classes=3)
    torch.manual_seed(0)
    m = gl.create("ddpm", data=info, T=50, width=16, depth=1)
    y = torch.tensor([0, 1, 2, 1])
    for sampler in ("ddpm", "ddim"):
        a = m.sample(4, cond=y, guidance=0.0, sampler=sampler, generator=torch.Generator().manual_seed(5))
        b = m.sample(4, cond=None, sampler=sampler, generator=torch.Generator().manual_seed(5))
        c = m.sample(4, cond=y, guidance=1.0, sampler=sampler, generator=torch.Generator().manual_seed(5))
        d = m.sample(4, cond=y, guidance=3.0, sampler=sampler, generator=torch.Generator().manual_seed(5))
        assert torch.equal(a, b)
        assert not torch.allclose(a, c) and not torch.allclose(c, d)
    with pytest.raises(gl.models.ModelError):
        m.sample(2, cond=torch.tensor([0, 7]))


def test_learned_variance_loss_and_save_load(tmp_path):
    m = gl.create("ddpm", data=DataInfo(shape=(2,)), T=50, variance="learned", width=32, depth=1)
    out = m({"x": torch.randn(64, 2)})
    assert set(out) >= {"loss", "mse", "vlb"} and torch.isfinite(out["loss"])
    m.save_pretrained(tmp_path / "m")
    m2 = gl.load(tmp_path / "m")
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    assert torch.equal(m.sample(5, generator=g(), steps=10), m2.sample(5, generator=g(), steps=10))


def test_bad_options_are_refused():
    m = analytic_ddpm(T=10)
    with pytest.raises(gl.models.ModelError, match="steps"):
        m.sample(2, steps=11)
    with pytest.raises(gl.models.ModelError, match="sampler"):
        m.sample(2, sampler="euler")
    with pytest.raises(gl.models.ModelError, match="parameterization"):
        gl.create("ddpm", data=DataInfo(shape=(2,)), parameterization="score")


def test_classifier_guidance_shifts_eps_by_the_classifier_gradient():
    """ε̃ = ε − s √(1−ᾱ_t) ∇ log p_φ(y | x_t) (Dhariwal & Nichol 2021), and the noise classifier trains."""
    info = DataInfo(shape=(2,), cond="label", num_classes=2)
    clf = gl.create("noise-classifier", data=info, T=100, width=16, depth=1)
    x = torch.randn(64, 2)
    y = (x[:, 0] > 0).long()
    from genlab.data import Dataset
    run = gl.train(clf, Dataset(x, info, y=y), steps=5, batch_size=32, progress=False)
    assert run.step == 5
    m = analytic_ddpm(T=100)
    xt, t, yy = torch.randn(8, 2), torch.full((8,), 60), torch.randint(0, 2, (8,))
    _, _, eps0, _ = m.p_mean_var(xt, t)
    _, _, eps1, x01 = m.p_mean_var(xt, t, yy, classifier=clf, classifier_scale=3.0)
    xg = xt.clone().requires_grad_(True)
    logp = torch.log_softmax(clf.logits(xg, t.float() / 100), 1).gather(1, yy[:, None]).sum()
    grad = torch.autograd.grad(logp, xg)[0]
    ab = m.schedule.alpha_bar[60].float()
    assert torch.allclose(eps1, eps0 - 3.0 * (1 - ab).sqrt() * grad, atol=1e-5)
    assert torch.allclose(x01, eps_to_x0(xt, eps1, ab), atol=1e-5)
