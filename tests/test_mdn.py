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


def _mixture_logpdf(p, x):
    """log Σ_k π_k N(x; μ_k, σ_k²) in float64 with scipy, for one-dimensional x (N,) and mixtures (N, K)."""
    pi = torch.softmax(p["logits"].double(), -1).numpy()
    mu, sd = p["mean"][..., 0].double().numpy(), p["std"][..., 0].double().numpy()
    return np.log((pi * stats.norm.pdf(np.asarray(x, dtype=np.float64)[:, None], mu, sd)).sum(1))


def test_training_loss_without_noise_is_the_exact_nll():
    model = gl.create("mdn", data=INFO, components=3, hidden=(8,))
    x, t = torch.randn(40, 1), torch.rand(40, 1)
    model.train()
    with torch.no_grad():
        assert torch.allclose(model.loss({"x": x, "y": t}), -model.log_prob(x, cond=t).mean(), atol=1e-6)


def test_noisy_loss_is_the_nll_of_perturbed_data_and_its_expectation():
    """Rothfuss et al. 2019: L = E_{ξ,η}[−log p(x + ξ | t + η)], ξ ~ N(0, σ_x²), η ~ N(0, σ_t²)."""
    torch.manual_seed(0)
    sx, st = 0.05, 0.2
    model = gl.create("mdn", data=INFO, components=3, hidden=(8,), noise_x=sx, noise_cond=st)
    x, t = torch.randn(30, 1), torch.rand(30, 1)
    model.train()
    with torch.no_grad():
        model.head.proj.bias[6:].fill_(-2.5)           # σ_k ≈ 0.08 and means that move with t, so that
        model.head.proj.weight[3:6] *= 3               # a wrong σ_x or σ_t misses by many standard errors
        # (1) one seeded draw: the loss is −log p at the perturbed pair, drawn ξ first, then η
        torch.manual_seed(7)
        loss = float(model.loss({"x": x, "y": t}))
        torch.manual_seed(7)
        xi, eta = sx * torch.randn(30, 1), st * torch.randn(30, 1)
        hand = -_mixture_logpdf(model.mixture(t + eta), (x + xi)[:, 0].numpy()).mean()
        assert loss == pytest.approx(hand, abs=1e-5)
        assert abs(loss + float(model.log_prob(x, cond=t).mean())) > 1e-2      # the noise changed it
        # (2) its expectation for one pair (x0, t0), by 2-D Gauss–Hermite quadrature against the mean of
        # 20 000 one-draw losses (a batch repeating the pair); tolerance 4 standard errors
        x0, t0 = 0.3, 0.6
        g, w = np.polynomial.hermite_e.hermegauss(40)                    # ∫ f(z) N(z; 0, 1) dz ≈ Σ w f(g) / √(2π)
        w = w / w.sum()
        zx, zt = np.meshgrid(g, g, indexing="ij")
        p = model.mixture(torch.tensor(t0 + st * zt.reshape(-1, 1), dtype=torch.float32))
        expect = -(np.outer(w, w).reshape(-1) * _mixture_logpdf(p, x0 + sx * zx.reshape(-1))).sum()
        torch.manual_seed(1)
        n = 20000
        xs, ts = torch.full((n, 1), x0), torch.full((n, 1), t0)
        xi, eta = sx * torch.randn(n, 1), st * torch.randn(n, 1)
        per = -_mixture_logpdf(model.mixture(ts + eta), (xs + xi)[:, 0].numpy())
        torch.manual_seed(1)
        mc = float(model.loss({"x": xs, "y": ts}))
        assert mc == pytest.approx(per.mean(), abs=1e-4)                  # same draws, same numbers
        assert abs(mc - expect) < 4 * per.std() / math.sqrt(n)
        # (3) evaluation is exact: in eval mode the loss is the noise-free NLL
        model.eval()
        assert float(model.loss({"x": x, "y": t})) == pytest.approx(-float(model.log_prob(x, cond=t).mean()), abs=1e-6)


def test_members_form_one_mixture_of_m_times_k_components():
    """p = (1/M) Σ_m p_m (one MDN with M·K components); training loss = mean of the members' NLLs."""
    torch.manual_seed(0)
    model = gl.create("mdn", data=INFO, components=2, hidden=(8,), members=3)
    x, t = torch.randn(25, 1), torch.rand(25, 1)
    with torch.no_grad():
        ps = model.member_mixtures(t)
        assert len(ps) == 3 and not torch.allclose(ps[0]["mean"], ps[1]["mean"])    # independent initialisations
        each = np.stack([_mixture_logpdf(p, x[:, 0].numpy()) for p in ps])          # (M, N)
        hand = np.log(np.exp(each).mean(0))
        np.testing.assert_allclose(model.log_prob(x, cond=t).double().numpy(), hand, rtol=1e-5, atol=1e-5)
        assert model.mixture(t)["logits"].shape == (25, 6)
        model.train()
        assert float(model.loss({"x": x, "y": t})) == pytest.approx(-each.mean(), abs=1e-5)
        model.eval()
        assert float(model.loss({"x": x, "y": t})) == pytest.approx(-hand.mean(), abs=1e-5)
    assert model.sample(10, cond=t[:1]).shape == (10, 1)


def test_dropout_acts_in_training_only():
    model = gl.create("mdn", data=INFO, components=2, hidden=(16, 16), dropout=0.5)
    x, t = torch.randn(25, 1), torch.rand(25, 1)
    model.eval()
    with torch.no_grad():
        a, b = model.log_prob(x, cond=t), model.log_prob(x, cond=t)
        assert torch.equal(a, b)
        model.train()
        assert float(model.loss({"x": x, "y": t})) != pytest.approx(-float(a.mean()), abs=1e-4)


def test_unconditional_weights_saved_under_the_old_key_still_load(tmp_path):
    """Before the ensemble option an unconditional MDN stored its learned features as ``features``;
    such a state dict still loads (renamed to ``net.features``) and gives the same density."""
    info = DataInfo(shape=(1,), name="toy1d")
    torch.manual_seed(0)
    model = gl.create("mdn", data=info, components=2, hidden=(4,))
    with torch.no_grad():
        model.net.features.normal_()
    state = {("features" if k == "net.features" else k): v.clone() for k, v in model.state_dict().items()}
    assert "features" in state and "net.features" not in state
    fresh = gl.create("mdn", data=info, components=2, hidden=(4,))
    fresh.load_state_dict(state, strict=True)
    x = torch.randn(7, 1)
    with torch.no_grad():
        torch.testing.assert_close(fresh.log_prob(x), model.log_prob(x))
