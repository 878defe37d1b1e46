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
