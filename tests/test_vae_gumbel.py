"""Gumbel-softmax VAE: the Gumbel-max trick, and bounds against the exact marginal of a tiny model."""
import itertools
import math

import torch
import torch.nn.functional as F

import genlab as gl
from genlab.data.base import DataInfo, Dataset
from genlab.models.gumbel import gumbel_softmax


def test_gumbel_softmax_argmax_follows_softmax_and_hard_passes_gradients():
    logits = torch.tensor([[1.0, 0.0, -1.0, 0.5]]).expand(40000, 4)
    y = gumbel_softmax(logits, tau=0.5, generator=torch.Generator().manual_seed(0))
    freq = F.one_hot(y.argmax(-1), 4).float().mean(0)
    p = torch.softmax(logits[0], 0)
    assert ((freq - p).abs() < 4 * (p * (1 - p) / 40000).sqrt()).all(), (freq, p)
    torch.testing.assert_close(y.sum(-1), torch.ones(40000))
    # straight-through: the forward value is the one-hot argmax of the relaxed sample drawn with the same
    # noise, and the gradient is exactly the relaxed sample's gradient (Jang et al. 2017, §2.2)
    lg = torch.randn(3, 5, requires_grad=True)
    w = torch.randn(3, 5)
    h = gumbel_softmax(lg, 1.0, hard=True, generator=torch.Generator().manual_seed(3))
    (h * w).sum().backward()
    grad_hard, lg.grad = lg.grad.clone(), None
    soft = gumbel_softmax(lg, 1.0, hard=False, generator=torch.Generator().manual_seed(3))
    (soft * w).sum().backward()
    assert torch.equal(h.detach(), F.one_hot(soft.detach().argmax(-1), 5).float())
    assert grad_hard.abs().sum() > 0
    torch.testing.assert_close(grad_hard, lg.grad)


def test_bounds_against_the_enumerated_marginal():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 2, (5, 6), generator=g)
    info = DataInfo(shape=(6,), kind="discrete", num_levels=2)
    torch.manual_seed(0)
    m = gl.create("gumbel-vae", data=info, num_latents=2, categories=3, hidden=(16,)).double()
    # exact log p(x) = log Σ_c p(x|c) p(c), p(c) = 1/9, over all 9 latent configurations
    cs = torch.tensor(list(itertools.product(range(3), repeat=2)))
    onehot = F.one_hot(cs, 3).double().flatten(1)
    lpx = torch.stack([m.log_px(x, m.decode(onehot[i:i + 1].expand(5, -1))) for i in range(9)], 1)
    exact = torch.logsumexp(lpx, 1) - math.log(9)
    elbo = m.log_prob(x.repeat(2000, 1), generator=g).reshape(2000, 5).mean(0)
    assert (elbo <= exact + 0.01).all()
    iw = m.log_prob(x, num_samples=3000, generator=g)
    torch.testing.assert_close(iw, exact, atol=0.03, rtol=0)
    # the ELBO is also exact in closed form here: Σ_c q(c|x) log p(x|c) − KL(q ‖ U)
    logq = m.logits(x)
    q = (logq[:, 0, :, None] + logq[:, 1, None, :]).exp().reshape(5, 9)
    elbo_exact = (q * lpx).sum(1) - m.kl(logq)
    torch.testing.assert_close(elbo, elbo_exact, atol=0.03, rtol=0)
    assert (elbo_exact < exact).all()                   # Jensen, strictly: q(c|x) is not the posterior


def test_training_anneals_tau_and_samples():
    g = torch.Generator().manual_seed(0)
    ds = Dataset(x=torch.randint(0, 17, (32, 1, 8, 8), generator=g),
                 info=DataInfo(shape=(1, 8, 8), kind="discrete", num_levels=17, modality="image"))
    m = gl.create("gumbel-vae", data=ds, hidden=(16,), anneal_rate=0.1, tau_min=0.3)
    run = gl.train(m, ds, steps=3, batch_size=8, progress=False)
    assert abs(m.tau() - max(0.3, math.exp(-0.3))) < 1e-9 and "tau" in run.history[-1]
    s = m.sample(3, generator=torch.Generator().manual_seed(1))
    assert s.shape == (3, 1, 8, 8) and torch.equal(s, m.sample(3, generator=torch.Generator().manual_seed(1)))
