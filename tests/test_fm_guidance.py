"""Classifier guidance for flow matching, checked against closed forms on a two-class Gaussian mixture.

Data: class k ∈ {0, 1} with prior π_k, x₁ | k ~ N(μ_k, s² I). On the path x_t = t x₁ + a_t x₀,
a_t = 1 − (1 − σ_min) t, everything is Gaussian: p_t(x | k) = N(t μ_k, (t² s² + a_t²) I), the class
velocity is v_k(x, t) = μ_k + (t s² − (1 − σ_min) a_t)/(t² s² + a_t²) · (x − t μ_k), the marginal
velocity is Σ_k p_t(k | x) v_k and the Bayes classifier is p_t(k | x). So the guided velocity
v + 1 · λ(t) ∇ log p_t(y | x) must equal v_y exactly, and samples guided with s = 1 must follow N(μ_y, s² I).
"""
import math

import pytest
import torch
from torch import nn

import genlab as gl
from genlab.data import DataInfo
from genlab.data.base import Dataset
from genlab.models.base import ModelError
from genlab.models.flow_matching import guidance_coef
from genlab.sampling.guidance import classifier_guided_velocity, gaussian_path_guidance_coef

MU = torch.tensor([[2.0, 0.5], [-1.5, -1.0]], dtype=torch.float64)
PI = torch.tensor([0.3, 0.7], dtype=torch.float64)
S = 0.4


def _var(t, sig):
    a = 1 - (1 - sig) * t
    return t ** 2 * S ** 2 + a ** 2, a


def class_log_density(x, t, sig):
    """(B, 2): log π_k + log N(x; t μ_k, var_t I)."""
    t = t.to(x)[:, None]
    var, _ = _var(t, sig)
    d2 = ((x[:, None, :] - t[:, :, None] * MU.to(x)[None]) ** 2).sum(-1)
    return torch.log(PI.to(x)) - 0.5 * d2 / var - x.shape[1] / 2 * torch.log(2 * math.pi * var)


def class_velocity(x, t, sig):
    """(B, 2, D): v_k(x, t) for both classes."""
    t = t.to(x)[:, None, None]
    var, a = _var(t, sig)
    return MU.to(x)[None] + (t * S ** 2 - (1 - sig) * a) / var * (x[:, None, :] - t * MU.to(x)[None])


class MixtureVelocity(nn.Module):
    """The exact unconditional marginal velocity Σ_k p_t(k | x) v_k(x, t) (ignores labels, so labels
    reach the field only through the classifier)."""

    def __init__(self, sig):
        super().__init__()
        self.sig = sig
        self.register_buffer("dummy", torch.zeros((), dtype=torch.float64))

    def forward(self, x, t, y=None):
        w = torch.softmax(class_log_density(x, t, self.sig), 1)
        return (w[:, :, None] * class_velocity(x, t, self.sig)).sum(1)


class BayesClassifier:
    def __init__(self, sig):
        self.sig = sig

    def logits(self, x, t):
        return class_log_density(x, t, self.sig)


def exact_model(path, sig=1e-2):
    info = DataInfo(shape=(2,), cond="label", num_classes=2)
    m = gl.create("flow-matching", data=info, path=path, sigma_min=sig, width=8, depth=1)
    m.net = MixtureVelocity(m.sigma_min)
    return m.double()


def test_guidance_coefficient_is_sigma_over_t():
    t = torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64)
    for sig in (0.0, 0.05):
        lam = guidance_coef(t, sig)
        assert torch.allclose(lam, (1 - (1 - sig) * t) / t)
    # VP-like path α = e^{-t}, σ = √(1 − e^{-2t}): λ = σ(α̇σ/α − σ̇) = −σ²·1 − σ̇σ = −(1 − e^{-2t}) − e^{-2t} = −1
    a, sd = torch.exp(-t), torch.sqrt(1 - torch.exp(-2 * t))
    lam = gaussian_path_guidance_coef(a, sd, -a, torch.exp(-2 * t) / sd)
    assert torch.allclose(lam, torch.full_like(t, -1.0))
    v, g = torch.ones(3, 2), torch.full((3, 2), 2.0)
    assert torch.allclose(classifier_guided_velocity(v, g, torch.tensor([1.0, 2.0, 3.0]), 0.5),
                          torch.tensor([[2.0, 2.0], [3.0, 3.0], [4.0, 4.0]]))


@pytest.mark.parametrize("path", ["cfm", "rectified"])
def test_guided_velocity_equals_the_class_velocity(path):
    m = exact_model(path)
    clf = BayesClassifier(m.sigma_min)
    torch.manual_seed(0)
    x = torch.randn(64, 2, dtype=torch.float64) * 2
    y = torch.randint(0, 2, (64,))
    for t in (0.05, 0.3, 0.7, 0.95):
        tt = torch.tensor(t, dtype=torch.float64)
        tb = tt.expand(64)
        v_y = class_velocity(x, tb, m.sigma_min)[torch.arange(64), y]
        guided = m.velocity(y, classifier=clf, classifier_scale=1.0)(tt, x)
        plain = m.velocity(y)(tt, x)
        assert torch.allclose(guided, v_y, atol=1e-9), (path, t)
        assert torch.allclose(m.velocity(y, classifier=clf, classifier_scale=0.0)(tt, x), plain)
        assert (plain - v_y).abs().max() > 0.1       # guidance changes the field: the check can fail


def test_classifier_guided_samples_follow_the_class():
    m = exact_model("cfm", sig=0.0)
    clf = BayesClassifier(0.0)
    n = 3000
    for k in (0, 1):
        x = m.sample(n, cond=torch.full((n,), k), classifier=clf, classifier_scale=1.0, sampler="rk4", steps=20,
                     generator=torch.Generator().manual_seed(k))
        assert torch.allclose(x.mean(0), MU[k], atol=0.04), (k, x.mean(0))
        assert torch.allclose(x.std(0), torch.full((2,), S, dtype=torch.float64), atol=0.03), (k, x.std(0))
    # unguided: the mixture (70 % of the mass near μ_1)
    x = m.sample(n, sampler="rk4", steps=20, generator=torch.Generator().manual_seed(5))
    frac1 = ((x - MU[1]).norm(dim=1) < (x - MU[0]).norm(dim=1)).double().mean()
    assert abs(frac1 - 0.7) < 0.03


def test_fm_classifier_trains_and_guides():
    torch.manual_seed(0)
    y = torch.randint(0, 2, (2000,))
    x = (MU[y] + S * torch.randn(2000, 2, dtype=torch.float64)).float()
    ds = Dataset(x, DataInfo(shape=(2,), cond="label", num_classes=2), y=y)
    clf = gl.create("fm-classifier", data=ds, sigma_min=1e-2, width=32, depth=1, emb_dim=16)
    gl.train(clf, ds, steps=100, batch_size=256, lr=1e-2, seed=0, progress=False)
    clf.eval()
    with torch.no_grad():
        acc1 = (clf.logits(x[:500], torch.ones(500)).argmax(1) == y[:500]).float().mean()
        p0 = torch.softmax(clf.logits(torch.randn(500, 2), torch.zeros(500)), 1)[:, 1].mean()
    assert acc1 > 0.97                   # clean data: the classes are 4 s.d. apart
    assert abs(p0 - 0.5) < 0.2          # pure noise: close to the class frequencies (0.5 here)
    m = gl.create("flow-matching", data=ds, path="cfm", sigma_min=1e-2, width=16, depth=1)
    a = m.sample(5, cond=torch.ones(5, dtype=torch.long), classifier=clf, classifier_scale=0.0, steps=4,
                 generator=torch.Generator().manual_seed(0))
    b = m.sample(5, cond=torch.ones(5, dtype=torch.long), steps=4, generator=torch.Generator().manual_seed(0))
    c = m.sample(5, cond=torch.ones(5, dtype=torch.long), classifier=clf, classifier_scale=3.0, steps=4,
                 generator=torch.Generator().manual_seed(0))
    assert torch.equal(a, b) and not torch.allclose(b, c)


def test_classifier_guidance_errors():
    info = DataInfo(shape=(2,), cond="label", num_classes=2)
    clf = gl.create("fm-classifier", data=info, sigma_min=1e-4, width=8, depth=1)
    ot = gl.create("flow-matching", data=info, path="ot", width=8, depth=1)
    with pytest.raises(ModelError, match="independent coupling"):
        ot.sample(2, cond=torch.tensor([0, 1]), classifier=clf, classifier_scale=1.0)
    cfm = gl.create("flow-matching", data=info, path="cfm", width=8, depth=1)
    with pytest.raises(ModelError, match="cond="):
        cfm.sample(2, classifier=clf, classifier_scale=1.0)
    rect = gl.create("flow-matching", data=info, path="rectified", width=8, depth=1)
    with pytest.raises(ModelError, match="sigma_min"):
        rect.sample(2, cond=torch.tensor([0, 1]), classifier=clf, classifier_scale=1.0)
    ddpm_clf = gl.create("noise-classifier", data=info, T=10, width=8, depth=1)
    with pytest.raises(ModelError, match="another noising process"):
        cfm.sample(2, cond=torch.tensor([0, 1]), classifier=ddpm_clf, classifier_scale=1.0)
    with pytest.raises(ModelError, match="does not sample"):
        clf.sample(2)
