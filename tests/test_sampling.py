"""Shared samplers: ODE solver orders, NFE counting, divergence estimators, the instantaneous
change of variables, SDE solvers and guidance arithmetic."""
import math

import pytest
import torch

from genlab.sampling.guidance import cfg_combine, classifier_free, classifier_log_prob_grad
from genlab.sampling.ode import (divergence_exact, divergence_hutchinson, ode_log_prob, odeint,
                                 standard_normal_log_prob, uniform_grid)
from genlab.sampling.sde import euler_maruyama, predictor_corrector

A = torch.tensor([[-0.5, 2.0], [-2.0, -0.5]], dtype=torch.float64)   # damped rotation
X0 = torch.tensor([[1.0, 0.5]], dtype=torch.float64)


def _exact():
    return X0 @ torch.linalg.matrix_exp(A).T


@pytest.mark.parametrize("method,order,nfe", [("euler", 1, 1), ("heun", 2, 2), ("midpoint", 2, 2), ("rk4", 4, 4)])
def test_solver_order_of_convergence(method, order, nfe):
    """Error ratio between step h and h/2 on x' = Ax is 2^order (from the exact matrix exponential)."""
    f = lambda t, x: x @ A.T  # noqa: E731
    errs = []
    for steps in (16, 32, 64):
        res = odeint(f, X0, uniform_grid(0, 1, steps), method=method)
        assert res.nfe == nfe * steps
        errs.append((res.x - _exact()).norm().item())
    rates = [math.log2(errs[i] / errs[i + 1]) for i in range(2)]
    for r in rates:
        assert abs(r - order) < 0.15, (method, rates)


def test_adaptive_solver_accuracy_and_nfe():
    f = lambda t, x: x @ A.T  # noqa: E731
    loose = odeint(f, X0, uniform_grid(0, 1, 1), method="dopri5", rtol=1e-3, atol=1e-3)
    tight = odeint(f, X0, uniform_grid(0, 1, 1), method="dopri5", rtol=1e-9, atol=1e-9)
    assert (tight.x - _exact()).abs().max() < 1e-7
    assert tight.nfe > loose.nfe > 0


def test_backward_integration_and_tuple_states():
    f = lambda t, s: (s[0] @ A.T, torch.ones_like(s[1]))  # noqa: E731
    res = odeint(f, (_exact(), torch.zeros(1, dtype=torch.float64)), uniform_grid(1, 0, 200), method="rk4")
    assert torch.allclose(res.x[0], X0, atol=1e-8)
    assert torch.allclose(res.x[1], torch.tensor([-1.0], dtype=torch.float64))


def test_divergence_exact_and_hutchinson():
    torch.manual_seed(0)
    W = torch.randn(5, 5, dtype=torch.float64)
    x = torch.randn(3, 5, dtype=torch.float64, requires_grad=True)
    fx = torch.tanh(x @ W.T)
    jac = torch.stack([torch.autograd.functional.jacobian(lambda z: torch.tanh(z @ W.T), x[i]) for i in range(3)])
    true = jac.diagonal(dim1=1, dim2=2).sum(1)
    assert torch.allclose(divergence_exact(fx, x), true, atol=1e-10)
    est = torch.stack([divergence_hutchinson(torch.tanh(x @ W.T), x,
                                             torch.randint(0, 2, x.shape).double() * 2 - 1) for _ in range(1000)])
    assert torch.allclose(est.mean(0), true, atol=4 * est.std(0).max().item() / math.sqrt(1000) + 1e-3)


def test_ode_log_prob_linear_flow_closed_form():
    """dx/dt = a x maps N(0, I) at t=0 to N(0, e^{2a} I) at t=1: log p is known exactly."""
    a = 0.7
    f = lambda t, x: a * x  # noqa: E731
    x = torch.randn(50, 3, dtype=torch.float64)
    true = standard_normal_log_prob(x / math.exp(a)) - 3 * a
    for trace in ("exact", "hutchinson"):   # div of a linear map: Hutchinson with Rademacher probes is exact
        res = ode_log_prob(f, x, 1.0, 0.0, standard_normal_log_prob, method="rk4", steps=50, trace=trace)
        assert torch.allclose(res.log_prob, true, atol=1e-8)
        assert res.nfe == 200


def test_euler_maruyama_ou_process_moments():
    """Ornstein–Uhlenbeck dx = −x dt + √2 dw from x=3: mean 3e^{−t}, var 1 − e^{−2t}."""
    g = torch.Generator().manual_seed(0)
    x = torch.full((20000, 1), 3.0, dtype=torch.float64)
    out, nfe = euler_maruyama(lambda t, x: -x, lambda t: math.sqrt(2.0), x, uniform_grid(0, 1, 200), g,
                              denoise_last=False)
    assert nfe == 200
    assert abs(out.mean().item() - 3 * math.exp(-1)) < 0.03
    assert abs(out.var().item() - (1 - math.exp(-2))) < 0.03


def test_predictor_corrector_targets_stationary_gaussian():
    """With drift and score of N(0, 1) the PC sampler keeps N(0,1) (corrector leaves it invariant)."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(20000, 2, generator=g, dtype=torch.float64)
    out, nfe = predictor_corrector(lambda t, x: torch.zeros_like(x), lambda t: 0.0, lambda t, x: -x, x,
                                   uniform_grid(1, 0, 20), snr=0.1, n_corrector=2, generator=g)
    assert nfe == 20 + 40
    assert abs(out.var().item() - 1.0) < 0.05


def test_guidance_arithmetic():
    net = lambda x, t, y: x * (y.float()[:, None] + 1)  # noqa: E731   (null = 3 → 4x; label 1 → 2x)
    x, t, y = torch.ones(2, 2), torch.zeros(2), torch.tensor([1, 1])
    assert torch.equal(classifier_free(net, x, t, y, 0.0, 3), 4 * x)
    assert torch.equal(classifier_free(net, x, t, y, 1.0, 3), 2 * x)
    assert torch.allclose(classifier_free(net, x, t, y, 3.0, 3), 4 * x + 3 * (2 * x - 4 * x))
    assert torch.allclose(cfg_combine(torch.zeros(1), torch.ones(1), 2.5), torch.tensor([2.5]))
    # ∇ log softmax(Wx)_y = W_y − Σ_k p_k W_k
    W = torch.randn(3, 2)
    xx = torch.randn(4, 2)
    yy = torch.tensor([0, 1, 2, 0])
    g = classifier_log_prob_grad(lambda z, t: z @ W.T, xx, torch.zeros(4), yy)
    p = torch.softmax(xx @ W.T, 1)
    assert torch.allclose(g, W[yy] - p @ W, atol=1e-6)


def test_adaptive_solver_stays_inside_the_interval():
    """dopri5 backwards from 1 to 1e-3 never evaluates f below the end point (torchdiffeq would step past
    it and interpolate back: for a VP probability-flow ODE that is t < 0, where std_t is NaN and the step
    control then died with "underflow in dt"). Here f is NaN below the end point, as std_t is there."""
    t_end = 1e-3
    seen = []

    def f(t, x):
        seen.append(float(t))
        out = x @ A.T.to(x.dtype)
        return out if float(t) >= float(torch.tensor(t_end, dtype=x.dtype)) else out * float("nan")
    for dtype in (torch.float32, torch.float64):
        seen.clear()
        res = odeint(f, _exact().to(dtype), uniform_grid(1, t_end, 1), method="dopri5", rtol=1e-6, atol=1e-6)
        assert min(seen) >= t_end * (1 - 1e-6) and max(seen) <= 1.0
        exact = X0 @ torch.linalg.matrix_exp(A * t_end).T
        assert torch.allclose(res.x.double(), exact, atol=1e-4 if dtype == torch.float32 else 1e-6)


def test_adaptive_failure_falls_back_to_rk4_with_a_warning():
    """A right-hand side that is NaN on its first evaluation kills dopri5's step control ("underflow in dt"); the
    solver warns, solves again with RK4 on `fallback_steps` steps, and counts every evaluation."""
    calls = [0]

    def f(t, x):
        calls[0] += 1
        return x @ A.T * (float("nan") if calls[0] == 1 else 1.0)
    with pytest.warns(RuntimeWarning, match="falling back to rk4 with 100 steps"):
        res = odeint(f, X0, uniform_grid(0, 1, 1), method="dopri5", fallback_steps=100)
    assert torch.allclose(res.x, _exact(), atol=1e-7)
    assert res.nfe == calls[0] and res.nfe > 400
    calls[0] = 0
    with pytest.raises(RuntimeError, match="adaptive ODE solver 'dopri5' failed"):
        odeint(f, X0, uniform_grid(0, 1, 1), method="dopri5", fallback_steps=0)
