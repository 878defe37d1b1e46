"""Variational dequantisation (Ho et al. 2019) and the importance-weighted bound: ln q(u | x) against the
autograd Jacobian (float64), and on a 2-D discrete model whose P(x) is computed by quadrature:
Σ_x P(x) ≤ 1, the dequantisation bound ≤ ln P(x), the importance-weighted bound between the two."""
import math

import pytest
import torch

import genlab as gl
from genlab.data.base import DataInfo
from genlab.models import flows_common as fc
from genlab.models import likelihood as L
from genlab.models.base import ModelError


@pytest.mark.parametrize("info", [DataInfo(shape=(1, 4, 4), kind="discrete", num_levels=5, modality="image"),
                                  DataInfo(shape=(3,), kind="discrete", num_levels=4)])
def test_dequantizer_log_q_matches_autograd_jacobian(info):
    torch.manual_seed(0)
    deq = fc.VariationalDequantizer(info, num_layers=3, hidden=8).double()
    fc.randomize_(deq, 0.1, torch.Generator().manual_seed(1))
    x = torch.randint(0, info.num_levels, (3, *info.shape))
    u, log_q = deq(x, torch.Generator().manual_seed(5))
    assert u.shape == x.shape and (u > 0).all() and (u < 1).all()
    eps_all = torch.randn(deq._context(x).shape, generator=torch.Generator().manual_seed(5)).double()
    for i in range(3):
        ctx = deq._context(x[i:i + 1]).double()
        shape = eps_all.shape[1:]
        f = lambda e: torch.sigmoid(deq.flow.inverse(e.reshape(1, *shape), ctx)[0]).reshape(-1)  # noqa: E731
        e = eps_all[i].reshape(-1)
        assert torch.allclose(f(e), u[i].reshape(-1))
        J = torch.autograd.functional.jacobian(f, e)
        _, lad = torch.linalg.slogdet(J)
        expected = -0.5 * (e * e).sum() - 0.5 * e.numel() * math.log(2 * math.pi) - lad   # change of variables
        assert torch.allclose(log_q[i], expected, atol=1e-6), (float(log_q[i]), float(expected))
    # the noise depends on x (the conditioner sees the data)
    u2, _ = deq((x + 1) % info.num_levels, torch.Generator().manual_seed(5))
    assert not torch.allclose(u2, u)


def _exact_log_P(model, xs, n=160):
    """ln P(x) = ln ∫_{[0,1)²} p(x + u) du by the midpoint rule on an n×n grid (2-D data)."""
    g = (torch.arange(n, dtype=torch.float64) + 0.5) / n
    uu = torch.stack(torch.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2).float()
    out = []
    with torch.no_grad():
        for x in xs:
            lp = model.log_density_at(x.expand(len(uu), 2), uu)
            out.append(torch.logsumexp(lp.double(), 0) - math.log(len(uu)))
    return torch.stack(out)


@pytest.mark.parametrize("dequant", ["uniform", "variational"])
def test_bounds_below_exact_discrete_likelihood(dequant):
    torch.manual_seed(0)
    info = DataInfo(shape=(2,), kind="discrete", num_levels=3)
    model = gl.create("realnvp", data=info, num_layers=4, hidden=(16,), dequant=dequant, deq_layers=2, deq_hidden=8)
    data = torch.randint(0, 3, (64, 2))
    model.log_prob(data)                                   # ActNorm's data-dependent initialisation
    fc.randomize_(model, 0.15, torch.Generator().manual_seed(3))
    model.eval()
    xs = torch.cartesian_prod(torch.arange(3), torch.arange(3))          # all 9 discrete points
    log_P = _exact_log_P(model, xs)
    # Σ_x P(x) ≤ 1: the density's mass outside y ∈ [0, 1)^D (beyond the logit's range) is lost to the levels
    assert 0.3 < float(torch.logsumexp(log_P, 0).exp()) <= 1 + 2e-3
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        k = 400
        rep = xs.repeat_interleave(k, 0)
        lp = model.log_prob(rep, generator=g).reshape(9, k).double()       # one draw each: k draws per point
    bound = lp.mean(1)
    se = lp.std(1) / math.sqrt(k)
    iw = torch.logsumexp(lp, 1) - math.log(k)
    assert (bound <= log_P + 3 * se + 1e-4).all(), (bound - log_P)
    assert (bound < log_P - 1e-3).any()                                  # a real gap somewhere (not an identity)
    assert (iw >= bound - 1e-9).all()                                    # IW ≥ the mean of the logs (Jensen)
    assert (iw - log_P).abs().max() < (log_P - bound).abs().max()        # and closer to ln P(x)
    # the model's own importance-weighted evaluation is this estimator: log-mean-exp of its k draws
    with torch.no_grad():
        lpi = model.log_prob(xs, num_samples=3, importance=True, generator=torch.Generator().manual_seed(1))
        g1 = torch.Generator().manual_seed(1)
        draws = torch.stack([model.log_prob(xs, generator=g1) for _ in range(3)])
    assert torch.allclose(lpi, torch.logsumexp(draws, 0) - math.log(3), atol=1e-5)
    info_d = model.likelihood_info(importance=True)
    assert info_d["dequantization"] == dequant and info_d["estimator"] == "importance-weighted"


def test_variational_dequantisation_trains_and_errors():
    torch.manual_seed(0)
    tr = gl.load_dataset("digits", split="train")
    m = gl.create("realnvp", data=tr, dequant="variational", deq_layers=2, deq_hidden=8)
    m.loss({"x": tr.x[:32]})["loss"].backward()
    grads = [p.grad for p in m.dequantizer.parameters()]
    assert all(g is not None for g in grads) and sum(float(g.abs().sum()) for g in grads) > 0   # q is trained
    assert torch.isfinite(m.log_prob(tr.x[:8])).all()
    with pytest.raises(ModelError):
        gl.create("nsf", data=tr, dequant="gaussian")
    with pytest.raises(ValueError):
        L.dequantize_with(torch.zeros(2, 3, dtype=torch.long), torch.zeros(2, 4), 5)
    y, ld = L.dequantize_with(torch.tensor([[0, 4]]), torch.tensor([[0.5, 0.25]]), 5)
    assert torch.allclose(y, torch.tensor([[0.1, 0.85]])) and torch.allclose(ld, torch.tensor([2 * math.log(0.2)]))
