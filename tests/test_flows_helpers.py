"""Shared checks for the flow tests (no tests here; imported by tests/test_flows*.py)."""
import math

import torch

import genlab as gl


def check_logdet(t, x, context=None, atol=1e-6):
    """Every example's forward log-det equals ln|det| of the autograd Jacobian (float64), and the
    inverse maps back with the negated log-det."""
    t = t.double()
    x = x.double()
    z, ld = t(x, context)
    shape = x.shape[1:]
    for i in range(x.shape[0]):
        ctx = None if context is None else context[i:i + 1]
        f = lambda v: t(v.reshape(1, *shape), ctx)[0].reshape(-1)  # noqa: E731
        J = torch.autograd.functional.jacobian(f, x[i].reshape(-1))
        sign, lad = torch.linalg.slogdet(J)
        assert sign != 0
        assert torch.allclose(ld[i], lad, atol=atol, rtol=1e-6), (i, float(ld[i]), float(lad))
    xr, ld_inv = t.inverse(z, context)
    assert torch.allclose(xr, x, atol=1e-8), float((xr - x).abs().max())
    assert torch.allclose(ld_inv, -ld, atol=1e-8)
    # and the log-det is far from zero: the transform under test is not the identity
    assert ld.abs().max() > 1e-2 or (z - x).abs().max() > 1e-2
    return ld


def grid_mass(model, lim=6.0, n=301, cond=None):
    """∫ p(x) dx over [−lim, lim]² by the trapezoid rule on an n×n grid."""
    g = torch.linspace(-lim, lim, n)
    xx, yy = torch.meshgrid(g, g, indexing="ij")
    pts = torch.stack([xx.reshape(-1), yy.reshape(-1)], 1)
    with torch.no_grad():
        c = None if cond is None else torch.full((pts.shape[0],), cond)
        p = model.log_prob(pts, cond=c).exp().reshape(n, n).double()
    h = (2 * lim) / (n - 1)
    w = torch.ones(n, dtype=torch.float64)
    w[0] = w[-1] = 0.5
    return float((w[:, None] * w[None, :] * p).sum() * h * h)


def toy(name="8gaussians", n=4000, split="train"):
    return gl.load_dataset(name, split=split, n=n)


def train(model, ds, steps, lr=3e-3, bs=256, seed=0):
    return gl.train(model, ds, steps=steps, batch_size=bs, lr=lr, seed=seed, progress=False)


LOG2PI = math.log(2 * math.pi)
