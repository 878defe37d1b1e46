"""Neural spline flows, MAF and IAF: spline properties, log-dets vs autograd, inversion,
normalisation on a 2-D grid, conditional flows."""
import copy

import pytest
import torch

import genlab as gl
from genlab.data.base import DataInfo
from genlab.models import flows_common as fc
from genlab.models.base import ModelError
from genlab.models.maf import AffineElementwise, MaskedAutoregressive
from genlab.models.nsf import SplineCoupling, SplineElementwise, rational_quadratic_spline
from test_flows_helpers import check_logdet, grid_mass, toy, train


def _params(n, d, K, seed=0, scale=1.5):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(n, d, k, generator=g, dtype=torch.float64) * scale for k in (K, K, K - 1)]


def test_spline_identity_tails_monotone_continuous():
    K, B, n = 6, 2.0, 20001
    x = torch.linspace(-5, 5, n, dtype=torch.float64)
    w, h, d = [p[0, 0] for p in _params(1, 1, K)]
    ex = lambda n: dict(widths=w.expand(n, K), heights=h.expand(n, K), derivs=d.expand(n, K - 1), bound=B)  # noqa: E731
    y, lad = rational_quadratic_spline(x, **ex(n))
    out = x.abs() > B
    assert torch.equal(y[out], x[out]) and torch.equal(lad[out], torch.zeros_like(lad[out]))
    assert (y[1:] > y[:-1]).all()                                         # strictly monotone
    assert (y[~out] >= -B).all() and (y[~out] <= B).all()
    assert ((y[1:] - y[:-1]) <= (x[1] - x[0]) * lad.exp().max() * 1.01).all()   # no jumps anywhere
    # continuity of value and derivative at every knot (and at ±B): left and right limits agree
    from genlab.models.nsf import _knots
    cx, _ = _knots(w, B, 1e-3)
    eps = 1e-10
    ks = cx.double()
    yl, ll = rational_quadratic_spline(ks - eps, **ex(len(ks)))
    yr, lr = rational_quadratic_spline(ks + eps, **ex(len(ks)))
    assert torch.allclose(yl, yr, atol=1e-6) and torch.allclose(ll, lr, atol=1e-5)
    # the derivative matches finite differences and the inverse undoes the map
    xs = torch.linspace(-B + 1e-3, B - 1e-3, 101, dtype=torch.float64)
    y, lad = rational_quadratic_spline(xs, **ex(101))
    x2, lad_inv = rational_quadratic_spline(y, **ex(101), inverse=True)
    assert torch.allclose(x2, xs, atol=1e-9) and torch.allclose(lad_inv, -lad, atol=1e-8)
    yp, _ = rational_quadratic_spline(xs + 1e-6, **ex(101))
    ym, _ = rational_quadratic_spline(xs - 1e-6, **ex(101))
    assert torch.allclose(((yp - ym) / 2e-6).log(), lad, atol=1e-5)
    with pytest.raises(ValueError):
        rational_quadratic_spline(xs[:, None], **ex(101))


def test_spline_coupling_and_autoregressive_layer_logdets():
    D = 4
    x = torch.randn(3, D, dtype=torch.float64) * 1.5
    ctx = torch.randn(3, 2, dtype=torch.float64)
    K = 5
    sc = SplineCoupling(torch.tensor([1.0, 0, 1, 0]), fc.ContextMLP(D, D * (3 * K - 1), (16,), 2), bins=K, bound=2.5)
    fc.randomize_(sc, 0.5, torch.Generator().manual_seed(0))
    check_logdet(sc, x, ctx)
    for el in (AffineElementwise(2.0), SplineElementwise(K, 2.5)):
        for fast in ("density", "sampling"):
            layer = MaskedAutoregressive(D, (16, 16), el, context_dim=2, order="reverse", fast=fast)
            fc.randomize_(layer, 0.3, torch.Generator().manual_seed(1))
            check_logdet(layer, x, ctx)


def test_maf_autoregressive_structure():
    """MAF's forward map is triangular in its ordering: z_i depends only on x_j with order(j) ≤ order(i)."""
    D = 5
    layer = MaskedAutoregressive(D, (16,), AffineElementwise(), order="reverse").double()
    fc.randomize_(layer, 0.3, torch.Generator().manual_seed(0))
    J = torch.autograd.functional.jacobian(lambda v: layer(v[None])[0][0], torch.randn(D, dtype=torch.float64))
    pos = layer.made.order
    later = pos[None, :] > pos[:, None]                   # j after i
    assert (J[later] == 0).all() and (J[~later].abs() > 0).any()


# max_gap: test NLL − true entropy after this short training; a single Gaussian scores 1.42 here
@pytest.mark.parametrize("name,kw,steps,max_gap", [
    ("nsf", dict(num_layers=4, hidden=(32, 32), bins=8), 150, 0.6),
    ("nsf", dict(variant="autoregressive", num_layers=3, hidden=(32, 32)), 150, 0.8),
    ("maf", dict(num_layers=4, hidden=(32, 32)), 200, 0.9),
    ("iaf", dict(num_layers=3, hidden=(32, 32)), 150, 1.1),
])
def test_trained_2d_flows_normalised_and_invertible(name, kw, steps, max_gap):
    torch.manual_seed(0)
    ds = toy("8gaussians", n=3000)
    m = gl.create(name, data=ds, **kw)
    train(m, ds, steps=steps, lr=5e-3)
    mass = grid_mass(m, lim=6.0, n=201)
    assert abs(mass - 1.0) < 0.01, (name, kw, mass)
    test = toy("8gaussians", n=1000, split="test")
    with torch.no_grad():
        nll = float(-m.log_prob(test.x).mean())
    assert nll < ds.entropy + max_gap, (name, nll)
    f = copy.deepcopy(m.flow)
    check_logdet(f, ds.x[:4])
    z = torch.randn(100, 2, dtype=torch.float64)
    x, _ = f.inverse(z)
    assert torch.allclose(f(x)[0], z, atol=1e-7)
    s1 = m.sample(20, generator=torch.Generator().manual_seed(1))
    assert s1.shape == (20, 2) and torch.equal(s1, m.sample(20, generator=torch.Generator().manual_seed(1)))


def test_conditional_flow_uses_labels_and_each_conditional_density_is_normalised():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    n = 3000
    y = torch.randint(0, 2, (n,), generator=g)
    centres = torch.tensor([[-2.0, 0.0], [2.0, 1.0]])
    x = centres[y] + 0.4 * torch.randn(n, 2, generator=g)
    info = DataInfo(shape=(2,), cond="label", num_classes=2, name="two-blobs")
    ds = gl.Dataset(x=x, y=y, info=info)
    m = gl.create("maf", data=ds, num_layers=3, hidden=(32, 32), cond_embed=4, conditional=True)
    train(m, ds, steps=150, lr=5e-3)
    for c in (0, 1):
        assert abs(grid_mass(m, lim=6.0, n=161, cond=c) - 1.0) < 0.01
        s = m.sample(500, cond=c, generator=torch.Generator().manual_seed(c))
        assert (s.mean(0) - centres[c]).norm() < 0.3
    pts = centres.clone()
    lp_right = m.log_prob(pts, cond=torch.tensor([0, 1]))
    lp_wrong = m.log_prob(pts, cond=torch.tensor([1, 0]))
    assert (lp_right > lp_wrong + 5).all()
    with pytest.raises(ModelError):
        m.log_prob(pts)                                    # cond missing
    with pytest.raises(ModelError):
        m.log_prob(pts, cond=torch.tensor([0, 2]))         # label out of range
    # labelled data with conditional=False (the default): labels ignored, cond= refused
    mu = gl.create("nsf", data=ds, num_layers=1, hidden=(8,))
    assert not mu.conditional_ok and mu.log_prob(pts).shape == (2,)
    with pytest.raises(ModelError):
        mu.log_prob(pts, cond=torch.tensor([0, 1]))
    with pytest.raises(ModelError):
        gl.create("nsf", data=toy(n=10), conditional=True)
    # continuous conditions go straight into the conditioner
    info2 = DataInfo(shape=(2,), cond="continuous", cond_shape=(1,), name="cont")
    ds2 = gl.Dataset(x=x, y=y.float()[:, None], info=info2)
    m2 = gl.create("realnvp", data=ds2, num_layers=2, hidden=(16,), conditional=True)
    train(m2, ds2, steps=30)
    assert m2.log_prob(pts, cond=torch.tensor([[0.0], [1.0]])).shape == (2,)
    assert m2.sample(3, cond=torch.tensor([[1.0]] * 3)).shape == (3, 2)


def test_glow_vector_and_image_logdets_after_training():
    torch.manual_seed(0)
    ds = toy("8gaussians", n=2000)
    m = gl.create("glow", data=ds, num_steps=3, hidden=(32, 32))
    train(m, ds, steps=150, lr=5e-3)
    assert abs(grid_mass(m, lim=6.0, n=201) - 1.0) < 0.01
    with torch.no_grad():
        nll = float(-m.log_prob(toy("8gaussians", n=1000, split="test").x).mean())
    assert nll < ds.entropy + 0.9, nll
    check_logdet(copy.deepcopy(m.flow), ds.x[:4])
    # images: squeeze, steps of (ActNorm, 1x1 conv, coupling), split, second level; discrete data
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 17, (128, 1, 4, 4), generator=g)
    info = DataInfo(shape=(1, 4, 4), kind="discrete", num_levels=17, modality="image", name="tiny")
    di = gl.Dataset(x=x, info=info)
    mi = gl.create("glow", data=di, num_steps=2, channels=8, levels=2)
    train(mi, di, steps=10, lr=3e-3, bs=64)
    assert mi.likelihood_info()["kind"] == "bound"
    check_logdet(copy.deepcopy(mi.flow), torch.randn(2, 1, 4, 4))
    s = mi.sample(4, generator=torch.Generator().manual_seed(0))
    assert s.shape == (4, 1, 4, 4) and s.dtype == torch.int64
    with pytest.raises(ModelError):
        gl.create("glow", data=DataInfo(shape=(1, 6, 6), modality="image"), levels=2)


@pytest.mark.parametrize("passes", [None, 3])
def test_iaf_block_passes_inverse_and_logdet(passes):
    """Block-autoregressive IAF (passes=P): the slow direction solves P blocks in P MADE passes; the
    result inverts the fast direction exactly and its log-det matches the autograd Jacobian."""
    D = 6
    layer = MaskedAutoregressive(D, (16, 16), AffineElementwise(), order="reverse", fast="sampling", passes=passes)
    fc.randomize_(layer, 0.3, torch.Generator().manual_seed(2))
    layer = layer.double()
    x = torch.randn(5, D, dtype=torch.float64)
    check_logdet(layer, x)
    calls = []
    hook = layer.made.register_forward_hook(lambda *a: calls.append(1))
    z, ld = layer(x)                                       # slow direction for IAF
    hook.remove()
    assert len(calls) == (passes or D)
    x2, ld2 = layer.inverse(z)                             # fast direction: one pass
    assert torch.allclose(x2, x, atol=1e-10) and torch.allclose(ld, -ld2, atol=1e-10)
