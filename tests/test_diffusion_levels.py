"""DDPM on discrete data: the level-posterior parameterisation and the stratified bound estimator.

Data: D independent pixels with K levels and a known categorical π, so −log P(x) is exact and the
optimal denoiser E[x₀ | x_t] is the per-pixel Bayes posterior mean; a "network" that returns the
constant logits log π makes ``parameterization="levels"`` that optimal denoiser."""
import math

import pytest
import torch
from torch import nn

import genlab as gl
from genlab.data import DataInfo

K, D = 5, 3
PI = torch.tensor([0.5, 0.05, 0.1, 0.3, 0.05])


class ConstLogits(nn.Module):
    def __init__(self, logits, D):
        super().__init__()
        self.logits, self.D = logits, D

    def forward(self, x, t, y=None):
        return self.logits.repeat(self.D).expand(x.shape[0], -1)


def levels_model(T=1000, **kw):
    info = DataInfo(shape=(D,), kind="discrete", num_levels=K)
    m = gl.create("ddpm", data=info, T=T, parameterization="levels", network="mlp", width=8, depth=1, **kw)
    m.net = ConstLogits(PI.log(), D)
    return m


def data(n, seed=0):
    return torch.multinomial(PI, n * D, replacement=True, generator=torch.Generator().manual_seed(seed)).reshape(n, D)


def test_level_posterior_is_bayes_rule():
    """x̂₀ = Σ_k c_k p(k | x_t), p(k | x_t) ∝ π_k N(x_t; √ᾱ c_k, 1 − ᾱ), computed here by brute force."""
    m = levels_model(T=100)
    c = torch.linspace(-1, 1, K, dtype=torch.float64)
    for step in (0, 10, 50, 99):
        ab = m.schedule.alpha_bar[step]
        xt = torch.linspace(-1.5, 1.5, 7, dtype=torch.float64)[:, None].expand(7, D).contiguous()
        lik = torch.exp(-(xt[..., None] - ab.sqrt() * c) ** 2 / (2 * (1 - ab))) * PI.double()
        want = (lik * c).sum(-1) / lik.sum(-1)
        got, _ = m._raw(xt.float(), torch.full((7,), step), None)
        assert torch.allclose(got.double(), want, atol=2e-5), (step, got, want)


def test_bound_with_the_optimal_denoiser_is_close_to_the_exact_nll():
    """The bound is ≥ −log P(x) (Bayes-optimal mean, Gaussian reverse steps) and close to it with T = 1000:
    the early steps round x_t to its level exactly, so the gap is the reverse-step mismatch only."""
    m = levels_model(T=1000)
    x = data(400)
    true_nll = -PI.log()[x].sum(1)
    lp = m.log_prob(x)
    gap = (-lp - true_nll).mean().item()
    se = (-lp - true_nll).std().item() / math.sqrt(len(x))
    assert -3 * se < gap < 0.1 * D, (gap, se)   # per pixel: the exact NLL is 1.35 nats, the gap a few %


def test_stratified_bound_is_unbiased_and_cheaper():
    m = levels_model(T=1000)
    x = data(300, seed=1)
    full = m.log_prob(x, generator=torch.Generator().manual_seed(0))
    strat = torch.stack([m.log_prob(x, bound_steps=20, generator=torch.Generator().manual_seed(s)) for s in range(8)])
    diff = strat.mean(0) - full
    se = strat.std(0).mean().item() / math.sqrt(8) / math.sqrt(len(x)) + full.std().item() / math.sqrt(len(x)) * 0.2
    assert abs(diff.mean().item()) < 4 * se + 0.02, (diff.mean().item(), se)
    _, terms = m.log_prob(x[:5], bound_steps=20, return_terms=True)
    assert ((terms[:, :-1] != 0).sum(1) <= 21).all()          # L_0 + one step per stratum
    assert "stratified" in m.likelihood_info(bound_steps=20)["estimator"]


def test_levels_needs_discrete_data_and_trains():
    with pytest.raises(gl.models.ModelError):
        gl.create("ddpm", data=DataInfo(shape=(2,)), parameterization="levels", width=8, depth=1)
    info = DataInfo(shape=(1, 4, 4), kind="discrete", num_levels=K, modality="image")
    m = gl.create("ddpm", data=info, T=50, parameterization="levels", variance="learned", network="unet",
                  channels=8, channel_mult=(1,), attention=False)
    out = m({"x": torch.randint(0, K, (8, 1, 4, 4))})
    assert torch.isfinite(out["loss"])
    out["loss"].backward()
    x = m.sample(3, steps=5, generator=torch.Generator().manual_seed(0))
    assert x.shape == (3, 1, 4, 4) and x.dtype == torch.long and 0 <= int(x.min()) and int(x.max()) < K


# ---- parameterization="mixture": prior π_lo δ(−1) + π_hi δ(+1) + π_g N(μ, s²) per pixel --------------------
class ConstOut(nn.Module):
    """A "network" returning fixed per-pixel outputs (3 logits, μ, log s) for every input."""

    def __init__(self, out):
        super().__init__()
        self.out = out                        # (D, 5)

    def forward(self, x, t, y=None):
        # (B, 5·C, H, W) channel-major, the shape the model's MLP/U-Net call returns for images
        return self.out.T.reshape(1, -1, *x.shape[2:]).expand(x.shape[0], -1, *x.shape[2:])


def mixture_model(T=100, **kw):
    info = DataInfo(shape=(1, 2, 1), kind="discrete", num_levels=256, modality="image")
    m = gl.create("ddpm", data=info, T=T, parameterization="mixture", network="mlp", width=8, depth=1, **kw)
    return m


def test_mixture_posterior_mean_is_bayes_rule_by_quadrature():
    """x̂₀ = ∫ x₀ p(x₀) N(x_t; a x₀, v) / ∫ p(x₀) N(x_t; a x₀, v), the Gaussian part by quadrature on a fine grid."""
    m = mixture_model()
    out = torch.tensor([[0.3, -1.0, 0.2, 0.25, math.log(0.3)],     # pixel 0: a broad Gaussian part
                        [-0.5, 0.7, 1.0, -0.6, math.log(0.05)]])   # pixel 1: a narrow one
    m.net = ConstOut(out)
    g = torch.linspace(-4, 4, 200001, dtype=torch.float64)
    for step in (0, 5, 30, 99):
        ab = m.schedule.alpha_bar[step]
        a, v = ab.sqrt(), 1 - ab
        xt = torch.tensor([-1.2, -0.99, -0.3, 0.0, 0.4, 0.98, 1.3], dtype=torch.float64)
        x = xt[:, None, None, None].expand(7, 1, 2, 1).contiguous()
        got, _ = m._raw(x.float(), torch.full((7,), step), None)
        for p in range(2):
            pi = torch.softmax(out[p, :3].double(), 0)
            mu, s = out[p, 3].double(), out[p, 4].double().exp()
            lik = lambda x0: torch.exp(-(xt[:, None] - a * x0) ** 2 / (2 * v))           # noqa: E731
            dens = torch.exp(-(g - mu) ** 2 / (2 * s * s)) / (s * math.sqrt(2 * math.pi))
            lg = lik(g) * dens                                                         # (7, grid)
            num = pi[2] * torch.trapezoid(lg * g, g) - pi[0] * lik(torch.tensor(-1.0))[:, 0] \
                + pi[1] * lik(torch.tensor(1.0))[:, 0]
            den = pi[2] * torch.trapezoid(lg, g) + pi[0] * lik(torch.tensor(-1.0))[:, 0] \
                + pi[1] * lik(torch.tensor(1.0))[:, 0]
            want = num / den
            assert torch.allclose(got[:, 0, p, 0].double(), want, atol=1e-4), (step, p, got[:, 0, p, 0], want)


def test_mixture_recognises_the_extreme_levels_at_small_t_and_trains():
    """At t = 0 a pixel noised from level 0 (−1) is read back as ≈ −1 (the point mass wins where the prior gives it
    most of the mass, as mnist5k's 81 % black pixels do): ten times closer than x_t/√ᾱ, the estimate without a
    prior, so the early KL terms of a black pixel nearly vanish. The family trains, samples and evaluates its bound."""
    m = mixture_model(T=1000)
    m.net = ConstOut(torch.tensor([[2.0, 0.0, 0.0, 0.0, 0.0]] * 2))
    x0 = -torch.ones(64, 1, 2, 1)
    xt = m.schedule.q_sample(x0, torch.zeros(64, dtype=torch.long), torch.randn(64, 1, 2, 1,
                                                                                  generator=torch.Generator().manual_seed(0)))
    got, _ = m._raw(xt, torch.zeros(64, dtype=torch.long), None)
    naive = xt / m.schedule.alpha_bar[0].sqrt().float()
    assert (got + 1).abs().mean() < 0.1 * (naive + 1).abs().mean(), ((got + 1).abs().mean(), (naive + 1).abs().mean())
    with pytest.raises(gl.models.ModelError):
        gl.create("ddpm", data=DataInfo(shape=(2,)), parameterization="mixture", width=8, depth=1)
    info = DataInfo(shape=(1, 4, 4), kind="discrete", num_levels=256, modality="image")
    for net in (dict(network="mlp", width=16, depth=1), dict(network="unet", channels=8, channel_mult=(1,), attention=False)):
        m = gl.create("ddpm", data=info, T=50, parameterization="mixture", variance="learned", **net)
        out = m({"x": torch.randint(0, 256, (8, 1, 4, 4))})
        assert torch.isfinite(out["loss"])
        out["loss"].backward()
        x = m.sample(3, steps=5, generator=torch.Generator().manual_seed(0))
        assert x.shape == (3, 1, 4, 4) and x.dtype == torch.long and 0 <= int(x.min()) and int(x.max()) < 256
        assert torch.isfinite(m.log_prob(x, bound_steps=5)).all()


def test_mixture_decoder_is_a_distribution_over_the_levels():
    """p_θ(x₀ | x_1) of the mixture parameterisation sums to one over the 256 levels for every pixel, puts the
    point-mass weight on the extreme levels, and is what the bound's L_0 uses."""
    m = mixture_model(T=1000)
    m.net = ConstOut(torch.tensor([[1.0, -0.5, 0.0, 0.1, math.log(0.02)],
                                   [-2.0, 0.5, 1.0, 0.6, math.log(0.3)]]))
    x1 = torch.tensor([-1.01, -0.5, 0.08, 0.62, 0.99])[:, None, None, None].expand(5, 1, 2, 1).contiguous()
    levels = torch.arange(256)
    lp = torch.stack([m.mixture_decoder_log_prob(m.to_model(torch.full((5, 1, 2, 1), int(k))), x1) for k in levels])
    total = lp.exp().sum(0)
    assert torch.allclose(total, torch.ones_like(total), atol=1e-4), total
    # a black pixel observed at x_1 ≈ −1 with a prior favouring δ(−1): nearly all the mass on level 0
    assert lp[0, 0, 0, 0, 0].exp() > 0.99
    # L_0 of the bound is this decoder: all-T terms at t = 0 equal −Σ log p_θ(x₀ | x_1) for the same x_1
    x = torch.randint(0, 256, (4, 1, 2, 1), generator=torch.Generator().manual_seed(0))
    noise = torch.randn(4, 1, 2, 1, generator=torch.Generator().manual_seed(1))
    x0 = m.to_model(x)
    t0 = torch.zeros(4, dtype=torch.long)
    want = -m.mixture_decoder_log_prob(x0, m.schedule.q_sample(x0, t0, noise)).flatten(1).sum(1)
    assert torch.allclose(m._bound_term(x0, None, t0, noise).float(), want, atol=1e-5)
