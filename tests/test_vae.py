"""VAE mathematics on a linear-Gaussian model whose marginal log p(x) is known in closed form.

Decoder p(x|z) = N(Wz + b, σ²I), prior N(0, I) ⇒ p(x) = N(b, WWᵀ + σ²I). With W's columns
orthogonal the exact posterior is diagonal: q*(z|x) = N(M⁻¹Wᵀ(x−b), σ²M⁻¹), M = WᵀW + σ²I.
"""
import math

import pytest
import torch

import genlab as gl
from genlab.data.base import DataInfo, Dataset
from genlab.models.base import ModelError
from genlab.models.flows_common import randomize_
from genlab.models.priors import FlowPrior, MixtureOfGaussians, VampPrior, normal_log_prob
from genlab.models.vae import active_units, decoder_log_prob, interpolate, reconstruct, traverse

D, d, SIGMA = 3, 2, 0.5


def linear_gaussian_vae(perturb: float = 0.0, kl: str = "analytic"):
    info = DataInfo(shape=(D,), name="lg")
    m = gl.create("vae", data=info, latent_dim=d, hidden=(), decoder="gaussian", kl=kl).double()
    g = torch.Generator().manual_seed(1)
    Q, _ = torch.linalg.qr(torch.randn(D, D, generator=g, dtype=torch.float64))
    s = torch.tensor([2.0, 1.0], dtype=torch.float64)
    W = Q[:, :d] * s
    b = torch.randn(D, generator=g, dtype=torch.float64)
    Minv = 1.0 / (s ** 2 + SIGMA ** 2)
    with torch.no_grad():
        m.decoder[0].weight.copy_(W)
        m.decoder[0].bias.copy_(b)
        m.logstd.fill_(math.log(SIGMA))
        A = Minv[:, None] * W.T                                # posterior mean = A (x − b)
        enc = m.encoder[0]
        enc.weight.zero_()
        enc.weight[:d] = A * (1 + perturb)
        enc.bias[:d] = -(A @ b) * (1 + perturb) + perturb
        enc.bias[d:] = torch.log(SIGMA ** 2 * Minv) + 2 * perturb
    cov = W @ W.T + SIGMA ** 2 * torch.eye(D, dtype=torch.float64)
    exact = torch.distributions.MultivariateNormal(b, covariance_matrix=cov)
    return m, exact


def data_points(n=16):
    return torch.randn(n, D, generator=torch.Generator().manual_seed(2), dtype=torch.float64) * 1.5


def test_exact_posterior_makes_every_importance_weight_equal_log_px():
    m, exact = linear_gaussian_vae(0.0, kl="mc")
    x = data_points()
    lw = m.log_weights(x, k=7, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(lw, exact.log_prob(x)[:, None].expand_as(lw), atol=1e-9, rtol=0)
    # analytic-KL ELBO is the exact log-likelihood in expectation: average many draws
    m.config.kl = "analytic"
    xs = x.repeat(4000, 1)
    elbo = m.elbo(xs, generator=torch.Generator().manual_seed(0)).reshape(4000, -1).mean(0)
    torch.testing.assert_close(elbo, exact.log_prob(x), atol=0.03, rtol=0)


def test_elbo_below_log_px_and_iwae_increases_to_log_px():
    m, exact = linear_gaussian_vae(perturb=0.3)
    x = data_points(8)
    lpx = exact.log_prob(x)
    g = torch.Generator().manual_seed(0)
    # ELBO (analytic KL), averaged over 2000 draws so the MC error is ~0.01
    elbo = m.elbo(x.repeat(2000, 1), generator=g).reshape(2000, -1).mean(0)
    gap = lpx - elbo
    assert (gap > 0.05).all(), gap                      # strictly below: the encoder is wrong
    means, ses = [], []
    for K in (1, 4, 32, 256):
        reps = 8192 // K
        lk = m.log_prob(x.repeat(reps, 1), num_samples=K, generator=g) if K > 1 else \
            m.log_weights(x.repeat(reps, 1), k=1, generator=g)[:, 0]
        lk = lk.reshape(reps, -1)
        means.append(lk.mean(0))
        ses.append(lk.std(0) / math.sqrt(reps))
    means, ses = torch.stack(means), torch.stack(ses)   # (4, 8): Monte-Carlo means and standard errors
    tol = 3 * (ses[1:] ** 2 + ses[:-1] ** 2).sqrt()
    assert (means[1:] >= means[:-1] - tol).all(), means  # non-decreasing in K
    assert (means[-1] - means[0] > 0.5 * gap).all()       # and it closes most of the gap
    assert (means <= lpx + 3 * ses).all()                 # never above log p(x) in expectation
    l5000 = m.log_prob(x, num_samples=5000, generator=g, max_rows=4096)
    # the ELBO gap is 0.5–3 nats here; K = 5000 closes it to Monte-Carlo noise (s.d. ≤ 0.05)
    torch.testing.assert_close(l5000, lpx, atol=0.15, rtol=0)
    assert abs(float((l5000 - lpx).mean())) < 0.05
    info = m.likelihood_info(num_samples=5000)
    assert info["kind"] == "estimate" and info["num_samples"] == 5000
    assert m.likelihood_info()["kind"] == "bound"


def test_analytic_kl_matches_monte_carlo_kl():
    m_a, _ = linear_gaussian_vae(perturb=0.4, kl="analytic")
    m_m, _ = linear_gaussian_vae(perturb=0.4, kl="mc")
    x = data_points(4).repeat(20000, 1)
    _, kl_a = m_a.elbo_terms(x, generator=torch.Generator().manual_seed(3))
    _, kl_m = m_m.elbo_terms(x, generator=torch.Generator().manual_seed(3))
    kl_a, kl_m = kl_a.reshape(20000, 4), kl_m.reshape(20000, 4)
    se = kl_m.std(0) / math.sqrt(20000)
    assert ((kl_m.mean(0) - kl_a[0]).abs() < 4 * se + 1e-3).all(), (kl_m.mean(0), kl_a[0], se)
    assert (kl_a[0] > 0.1).all()


def test_reparameterised_gradient_matches_score_function_and_closed_form():
    m, _ = linear_gaussian_vae(perturb=0.3)
    x = data_points(1)
    enc = m.encoder[0]
    W, b, s2 = m.decoder[0].weight.detach(), m.decoder[0].bias.detach(), SIGMA ** 2

    def closed_form():   # E_q[log p(x|z)] = −½σ⁻²(‖x − Wμ − b‖² + tr(WᵀW Σ)) − D log(σ√2π)
        mu, logvar = m.encode(x)
        r = x - mu @ W.T - b
        tr = (logvar.exp() * (W ** 2).sum(0)).sum(-1)
        return (-0.5 / s2 * ((r ** 2).sum(-1) + tr) - D * math.log(SIGMA * math.sqrt(2 * math.pi))).sum()

    def grads(f):
        m.zero_grad()
        f().backward()
        return torch.cat([enc.weight.grad.flatten(), enc.bias.grad.flatten()]).clone()

    g_true = grads(closed_form)
    N = 200_000
    g = torch.Generator().manual_seed(5)
    g_rep = grads(lambda: m.elbo_terms(x.repeat(N, 1), generator=g)[0].mean())

    def score():
        mu, logvar = m.encode(x)
        z = (mu + torch.exp(0.5 * logvar) * torch.randn(N, d, generator=g, dtype=torch.float64)).detach()
        f = m.log_px(x.expand(N, D), m.decode(z)).detach()
        return ((f - f.mean()) * normal_log_prob(z, mu, logvar)).mean()   # REINFORCE with a baseline
    g_sf = grads(score)
    scale = g_true.abs().max()
    assert (g_rep - g_true).abs().max() < 0.01 * scale, (g_rep, g_true)
    assert (g_sf - g_true).abs().max() < 0.06 * scale, (g_sf, g_true)


def test_discrete_decoders_are_normalised():
    L = 17
    x = torch.arange(L).reshape(L, 1)
    g = torch.Generator().manual_seed(0)
    logistic = (torch.randn(1, 9, 1, generator=g) * 1.5).expand(L, 9, 1)   # 3 mixture components
    cat = torch.randn(1, L, 1, generator=g).expand(L, L, 1)
    for kind, p in (("logistic", logistic), ("categorical", cat)):
        total = decoder_log_prob(kind, p, x, L).exp().sum()
        torch.testing.assert_close(total, torch.tensor(1.0), atol=1e-5, rtol=0)
    bern = torch.randn(1, 1, 1).expand(2, 1, 1)
    torch.testing.assert_close(decoder_log_prob("bernoulli", bern, torch.arange(2).reshape(2, 1)).exp().sum(),
                               torch.tensor(1.0))


def test_decoder_samples_follow_their_distributions():
    from genlab.models.vae import decoder_sample
    L, N = 5, 20000
    g = torch.Generator().manual_seed(0)
    logits = torch.tensor([0.5, -1.0, 1.0, 0.0, -0.5])
    s = decoder_sample("categorical", logits.view(1, L, 1).expand(N, L, 1), L, generator=g)[:, 0]
    freq, p = torch.bincount(s, minlength=L).float() / N, torch.softmax(logits, 0)
    assert ((freq - p).abs() < 4 * (p * (1 - p) / N).sqrt()).all(), (freq, p)
    params = torch.randn(1, 9, 1, generator=g).expand(N, 9, 1)             # 3-component logistic mixture
    s = decoder_sample("logistic", params, L, generator=g)[:, 0]
    freq = torch.bincount(s, minlength=L).float() / N
    p = decoder_log_prob("logistic", params[:L], torch.arange(L).view(L, 1), L).exp()
    assert ((freq - p).abs() < 4 * (p * (1 - p) / N).sqrt() + 1e-3).all(), (freq, p)


def test_flow_and_vamp_priors_are_densities():
    torch.manual_seed(0)
    flow = randomize_(FlowPrior(3).double(), 0.3, torch.Generator().manual_seed(0))   # not the identity
    z = torch.randn(5, 3, dtype=torch.float64)
    # change of variables against the autograd Jacobian of the map z → u = f(z)
    def to_base(v):
        return flow.flow(v)[0]
    for zi in z:
        J = torch.autograd.functional.jacobian(to_base, zi[None])[0, :, 0, :]
        u = to_base(zi[None])[0]
        assert (u - zi).abs().max() > 0.05                       # the flow moved the point
        ref = -0.5 * (math.log(2 * math.pi) * 3 + (u ** 2).sum()) + torch.linalg.slogdet(J)[1]
        torch.testing.assert_close(flow.log_prob(zi[None])[0], ref)
    # samples are the inverse map of base noise: f(sample) = u
    g = torch.Generator().manual_seed(3)
    zs = flow.sample(4, generator=g)
    torch.testing.assert_close(to_base(zs), torch.randn(4, 3, generator=torch.Generator().manual_seed(3)).double())
    # the mixture prior integrates to one on a grid
    mog = MixtureOfGaussians(2, 3)
    t = torch.linspace(-8, 8, 401)
    grid = torch.stack(torch.meshgrid(t, t, indexing="ij"), -1).reshape(-1, 2)
    mass = mog.log_prob(grid).exp().sum() * (t[1] - t[0]) ** 2
    torch.testing.assert_close(mass, torch.tensor(1.0), atol=2e-3, rtol=0)
    # VampPrior = average of the encoder's posteriors at its pseudo-inputs
    vamp = VampPrior(2, (3,), components=4)
    enc = torch.nn.Linear(3, 4)
    def encode(u):
        return enc(u).chunk(2, -1)
    mu, lv = encode(vamp.pseudo)
    zz = torch.randn(6, 2)
    ref = torch.logsumexp(torch.stack([normal_log_prob(zz, mu[k], lv[k]) for k in range(4)], 1), 1) - math.log(4)
    torch.testing.assert_close(vamp.log_prob(zz, encode=encode), ref)


@pytest.fixture(scope="module")
def small_images():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 5, (64, 1, 6, 6), generator=g)
    y = torch.randint(0, 3, (64,), generator=g)
    info = DataInfo(shape=(1, 6, 6), kind="discrete", num_levels=5, modality="image", cond="label",
                    num_classes=3, name="tiny")
    return Dataset(x=x, y=y, info=info)


@pytest.mark.parametrize("kw", [dict(), dict(net="conv", decoder="logistic"), dict(prior="vamp", iwae_k=3),
                                dict(prior="mog", warmup=4), dict(prior="flow"), dict(conditional=True)])
def test_options_train_sample_and_reload(tmp_path, small_images, kw):
    ds = small_images
    m = gl.create("vae", data=ds, latent_dim=4, hidden=(32,), channels=(8, 8), prior_components=3, **kw)
    gl.train(m, ds, steps=4, batch_size=16, progress=False)
    assert int(m.step) == 4
    if kw.get("warmup"):
        assert m.beta_now() == 1.0
        m.step.fill_(2)
        assert m.beta_now() == 0.5
    cond = torch.arange(5) % 3 if kw.get("conditional") else None
    a = m.sample(5, cond=cond, generator=torch.Generator().manual_seed(7))
    b = m.sample(5, cond=cond, generator=torch.Generator().manual_seed(7))
    assert a.shape == (5, 1, 6, 6) and a.dtype == torch.int64 and torch.equal(a, b)
    assert int(a.min()) >= 0 and int(a.max()) <= 4
    c = ds.y[:8] if kw.get("conditional") else None
    lp = m.log_prob(ds.x[:8], cond=c, num_samples=20, generator=torch.Generator().manual_seed(1))
    assert lp.shape == (8,) and torch.isfinite(lp).all() and (lp < 0).all()
    m.save_pretrained(tmp_path / "m")
    m2 = gl.load(tmp_path / "m")
    assert int(m2.step) == int(m.step)
    lp2 = m2.log_prob(ds.x[:8], cond=c, num_samples=20, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(lp, lp2)


def test_conditional_errors_and_diagnostics(small_images):
    ds = small_images
    m = gl.create("vae", data=ds, latent_dim=3, hidden=(16,), conditional=True)
    with pytest.raises(ModelError, match="cond"):
        m.sample(3)
    with pytest.raises(ModelError, match="bernoulli"):
        gl.create("vae", data=ds, decoder="bernoulli")
    u = gl.create("vae", data=ds, latent_dim=3, hidden=(16,))
    n, var = active_units(u, ds.x)
    assert var.shape == (3,) and n == int((var > 0.01).sum())
    assert reconstruct(u, ds.x[:4]).shape == (4, 1, 6, 6)
    assert interpolate(u, ds.x[0], ds.x[1], steps=5).shape == (5, 1, 6, 6)
    assert traverse(u, ds.x[0], dims=[0, 2], values=[-1, 0, 1]).shape == (2, 3, 1, 6, 6)


# ---- hierarchical VAE ------------------------------------------------------------------------------
def test_gaussian_kl_matches_torch_distributions():
    from genlab.models.hvae import gaussian_kl
    g = torch.Generator().manual_seed(0)
    a, b, c, e = (torch.randn(5, 3, generator=g) for _ in range(4))
    ref = torch.distributions.kl_divergence(torch.distributions.Normal(a, (0.5 * b).exp()),
                                            torch.distributions.Normal(c, (0.5 * e).exp())).sum(-1)
    torch.testing.assert_close(gaussian_kl(a, b, c, e), ref)


def test_hvae_elbo_paths_agree_and_iwae_tightens(small_images):
    ds = small_images
    torch.manual_seed(0)
    m = gl.create("hvae", data=ds, latent_dim=3, latent2_dim=2, hidden=(32, 32)).double()
    x = ds.x[:6]
    g = torch.Generator().manual_seed(0)
    R = 3000
    elbo = m.elbo(x.repeat(R, 1, 1, 1), generator=g).reshape(R, -1)           # analytic KLs
    lw1 = m.log_weights(x, k=R, generator=g)                                    # (6, R) log w, MC
    se = (elbo.var(0) / R + lw1.var(1) / R).sqrt()
    assert ((elbo.mean(0) - lw1.mean(1)).abs() < 4 * se).all()               # same bound, two estimators
    l100 = m.log_prob(x, num_samples=100, generator=g)
    assert (l100 > elbo.mean(0) + 0.1).all()
    z = m.sample_latent(4, generator=torch.Generator().manual_seed(1))
    assert z.shape == (4, 3)
    s = m.sample(4, generator=torch.Generator().manual_seed(1))
    assert s.shape == (4, 1, 6, 6) and torch.equal(s, m.sample(4, generator=torch.Generator().manual_seed(1)))
    gl.train(m.float(), ds, steps=3, batch_size=16, progress=False)
    with pytest.raises(ModelError, match="vamp|Vamp"):
        gl.create("hvae", data=ds, prior="vamp")


def test_dropout_only_while_training():
    ds = gl.load_dataset("digits", split="val")
    m = gl.create("vae", data=ds, latent_dim=4, hidden=(32,), dropout=0.5)
    assert sum(isinstance(mod, torch.nn.Dropout) for mod in m.modules()) == 2    # encoder and decoder
    x = ds.x[:16]
    a = m.log_prob(x, generator=torch.Generator().manual_seed(0))
    b = m.log_prob(x, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(a, b)                    # evaluation: dropout off, same z, same ELBO
    assert m.training                                   # log_prob restores the training mode
    torch.manual_seed(0)
    l1 = m.loss({"x": x})["loss"]
    torch.manual_seed(0)
    m.eval()
    l2 = m.loss({"x": x})["loss"]
    assert not torch.isclose(l1, l2)                    # training: dropout changes the loss
