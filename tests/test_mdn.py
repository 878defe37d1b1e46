"""Mixture density network: log_prob against the hand formula, samples against the mixture CDF."""
import math

import numpy as np
import pytest
import torch
from scipy import stats

import genlab as gl
from genlab.data.base import DataInfo, Dataset
from genlab.models.mdn import MixtureDensityHead

INFO = DataInfo(shape=(1,), cond="continuous", cond_shape=(1,), name="toy")


def test_log_prob_matches_hand_formula():
    model = gl.create("mdn", data=INFO, components=3, hidden=(8,))
    t = torch.rand(50, 1)
    x = torch.randn(50, 1)
    with torch.no_grad():
        p = model.mixture(t)
        lp = model.log_prob(x, cond=t).double().numpy()
    pi = torch.softmax(p["logits"], -1).double().numpy()
    mu, sd = p["mean"][..., 0].double().numpy(), p["std"][..., 0].double().numpy()
    hand = np.log((pi * stats.norm.pdf(x.double().numpy(), mu, sd)).sum(1))
    np.testing.assert_allclose(lp, hand, rtol=1e-5, atol=1e-5)


def test_head_is_stable_for_far_away_points():
    head = MixtureDensityHead(4, 2, components=3)
    params = head(torch.randn(5, 4))
    lp = head.log_prob(params, torch.full((5, 2), 1e3))
    assert torch.isfinite(lp).all() and (lp < -1e4).all()


def test_samples_follow_the_mixture_cdf():
    """Kolmogorov–Smirnov test of 20 000 draws for one condition against the model's own mixture CDF."""
    model = gl.create("mdn", data=INFO, components=3, hidden=(8,))
    with torch.no_grad():
        model.head.proj.bias.copy_(torch.tensor([0.0, 1.0, -1.0, -2.0, 0.0, 2.0, -1.0, 0.0, -2.0]))  # 3 distinct modes
        t = torch.tensor([[0.3]])
        p = model.mixture(t)
        s = model.sample(20000, cond=t, generator=torch.Generator().manual_seed(0))[:, 0].double().numpy()
    pi = torch.softmax(p["logits"][0], -1).double().numpy()
    mu, sd = p["mean"][0, :, 0].double().numpy(), p["std"][0, :, 0].double().numpy()
    assert pi.min() > 0.05 and np.ptp(mu) > 1                      # genuinely multimodal
    cdf = lambda v: (pi * stats.norm.cdf(np.asarray(v)[:, None], mu, sd)).sum(1)   # noqa: E731
    assert stats.kstest(s, cdf).pvalue > 0.01
    # and a wrong distribution (one shifted mean) is rejected with this many samples
    wrong = lambda v: (pi * stats.norm.cdf(np.asarray(v)[:, None], mu + [0.2, 0, 0], sd)).sum(1)   # noqa: E731
    assert stats.kstest(s, wrong).pvalue < 1e-3


def test_sample_one_per_condition_row():
    model = gl.create("mdn", data=INFO)
    assert model.sample(7, cond=torch.rand(7, 1)).shape == (7, 1)
    with pytest.raises(gl.models.ModelError, match="rows"):
        model.sample(7, cond=torch.rand(3, 1))
    with pytest.raises(gl.models.ModelError, match="cond"):
        model.sample(7)


def test_mdn_learns_bishops_multimodal_inverse():
    """1000 points of Bishop's inverse problem: the MDN must beat the best unimodal model (≈ −0.68)."""
    g = np.random.default_rng(0)
    x = g.uniform(0, 1, (1500, 1))
    t = x + 0.3 * np.sin(2 * np.pi * x) + g.uniform(-0.1, 0.1, x.shape)
    tr = Dataset(x=torch.tensor(x[:1000], dtype=torch.float32), y=torch.tensor(t[:1000], dtype=torch.float32), info=INFO)
    model = gl.create("mdn", data=tr, components=5, hidden=(32, 32))
    gl.train(model, tr, steps=1500, batch_size=200, lr=5e-3, progress=False)
    with torch.no_grad():
        nll = -model.log_prob(torch.tensor(x[1000:], dtype=torch.float32),
                              cond=torch.tensor(t[1000:], dtype=torch.float32)).mean()
    assert float(nll) < -0.9
    assert math.isfinite(float(nll))
