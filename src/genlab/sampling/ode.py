"""ODE solvers for sampling and likelihoods, shared by every family (diffusion's probability-flow
ODE, flow matching, continuous flows). Each call counts network evaluations (NFE).

``f(t, x) → dx/dt`` with ``t`` a 0-dim tensor; ``ts`` is the time grid (increasing or decreasing).

- ``euler``: ``x_{k+1} = x_k + h f(t_k, x_k)``                                  (order 1, 1 NFE/step)
- ``heun``:  ``x̃ = x_k + h f(t_k, x_k)``, ``x_{k+1} = x_k + h/2 [f(t_k, x_k) + f(t_{k+1}, x̃)]``
  (explicit trapezoid, order 2, 2 NFE/step)
- ``midpoint``: ``x_{k+1} = x_k + h f(t_k + h/2, x_k + h/2 f(t_k, x_k))``        (order 2, 2 NFE/step)
- ``rk4``: classical Runge–Kutta                                                (order 4, 4 NFE/step)
- ``dopri5`` (adaptive, Dormand–Prince 5(4), via ``torchdiffeq``): ``rtol``/``atol`` set accuracy.
  Time is kept in float64 by the solver, and its last step is clamped to land exactly on ``ts[-1]``
  (torchdiffeq's ``step_t``): by default torchdiffeq steps past the end point and interpolates back,
  which evaluates ``f`` outside the interval — for a diffusion's probability-flow ODE integrated down
  to ``t_eps`` that is t < 0, where the noise level √(1 − m_t²) is NaN, and the step-size control then
  shrinks the step to zero ("underflow in dt"). If the adaptive solver still fails (step underflow or
  non-finite state), :func:`odeint` warns and falls back to RK4 on ``fallback_steps`` steps whose
  spacing follows ``ts`` when ``ts`` is a finer grid (e.g. log-spaced toward a stiff end), else uniform.

:func:`ode_log_prob` integrates the instantaneous change of variables (Chen et al. 2018,
FFJORD: Grathwohl et al. 2019): ``d log p(x_t)/dt = −∇·f(t, x_t)``, hence for data at time
``t_data`` and the prior at ``t_prior``:
``log p(x) = log p_prior(x(t_prior)) + ∫_{t_data}^{t_prior} ∇·f(t, x_t) dt``.
The divergence is exact (D autograd passes) or Hutchinson's estimate ``E_v[vᵀ (∂f/∂x) v]`` with one
probe ``v`` fixed along the trajectory (unbiased for the log-density, not a bound).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import warnings

import torch

FIXED = ("euler", "heun", "midpoint", "rk4")
ADAPTIVE = ("dopri5", "bosh3", "adaptive_heun", "dopri8")
SOLVERS = FIXED + ADAPTIVE
NFE_PER_STEP = {"euler": 1, "heun": 2, "midpoint": 2, "rk4": 4}


class Counted:
    """Wrap ``f`` to count its evaluations (``.nfe``)."""

    def __init__(self, f: Callable):
        self.f, self.nfe = f, 0

    def __call__(self, t, x):
        self.nfe += 1
        return self.f(t, x)


@dataclass
class ODEResult:
    x: torch.Tensor      # state at ts[-1]
    nfe: int             # number of evaluations of f


def _tree(op, *xs):
    """Apply ``op`` leafwise to tensors or tuples of tensors (augmented states)."""
    if isinstance(xs[0], tuple):
        return tuple(op(*z) for z in zip(*xs))
    return op(*xs)


def _step(f, method, t, h, x):
    add = lambda a, b, c=1.0: _tree(lambda u, v: u + c * v, a, b)  # noqa: E731
    if method == "euler":
        return add(x, f(t, x), h)
    if method == "heun":
        k1 = f(t, x)
        k2 = f(t + h, add(x, k1, h))
        return _tree(lambda u, a, b: u + 0.5 * h * (a + b), x, k1, k2)
    if method == "midpoint":
        k1 = f(t, x)
        return add(x, f(t + h / 2, add(x, k1, h / 2)), h)
    if method == "rk4":
        k1 = f(t, x)
        k2 = f(t + h / 2, add(x, k1, h / 2))
        k3 = f(t + h / 2, add(x, k2, h / 2))
        k4 = f(t + h, add(x, k3, h))
        return _tree(lambda u, a, b, c, d: u + h / 6 * (a + 2 * b + 2 * c + d), x, k1, k2, k3, k4)
    raise ValueError(f"unknown fixed-step solver {method!r}")


def odeint(f: Callable, x, ts: torch.Tensor, method: str = "euler", rtol: float = 1e-5, atol: float = 1e-5,
           progress: bool = False, fallback_steps: int = 200) -> ODEResult:
    """Integrate ``dx/dt = f(t, x)`` from ``ts[0]`` to ``ts[-1]``; ``x`` may be a tuple of tensors.

    Fixed-step methods step on the grid ``ts``; adaptive methods use only its end points (and never
    evaluate ``f`` outside them). If an adaptive solve fails, a warning is issued and the ODE is solved
    again by RK4 with ``fallback_steps`` steps (``fallback_steps=0``: raise instead). Returns the final
    state and the NFE (of all attempts).
    """
    if method not in SOLVERS:
        raise ValueError(f"unknown ODE solver {method!r}; choose from {', '.join(SOLVERS)}")
    ts = torch.as_tensor(ts, dtype=torch.float64)
    if ts.ndim != 1 or len(ts) < 2:
        raise ValueError("ts must be a 1-D grid with at least 2 times")
    cf = Counted(f)
    like = x[0] if isinstance(x, tuple) else x
    if method in FIXED:
        it = range(len(ts) - 1)
        if progress:
            from tqdm.auto import tqdm
            it = tqdm(it, desc=f"ode {method}", leave=False)
        for k in it:
            t, h = ts[k].to(like.dtype), float(ts[k + 1] - ts[k])
            x = _step(cf, method, t, h, x)
        return ODEResult(x, cf.nfe)
    from torchdiffeq import odeint as _tdq
    t2 = torch.stack([ts[0], ts[-1]]).to(like.device)       # float64: torchdiffeq keeps time in float64
    try:
        sol = _tdq(lambda t, z: cf(t, z), x, t2, method=method, rtol=rtol, atol=atol,
                   options=dict(step_t=t2[1:]))
    except AssertionError as err:      # torchdiffeq signals "underflow in dt" / non-finite state by assert
        if fallback_steps <= 0:
            raise RuntimeError(f"adaptive ODE solver {method!r} failed: {err}") from err
        grid = ts if len(ts) - 1 >= fallback_steps else uniform_grid(float(ts[0]), float(ts[-1]), fallback_steps)
        warnings.warn(f"adaptive ODE solver {method!r} failed ({str(err)[:80]}) after {cf.nfe} evaluations; "
                      f"falling back to rk4 with {len(grid) - 1} steps", RuntimeWarning, stacklevel=2)
        res = odeint(cf, x, grid, method="rk4")
        return ODEResult(res.x, cf.nfe)
    out = tuple(s[-1] for s in sol) if isinstance(x, tuple) else sol[-1]
    return ODEResult(out, cf.nfe)


def uniform_grid(t0: float, t1: float, steps: int) -> torch.Tensor:
    return torch.linspace(t0, t1, steps + 1, dtype=torch.float64)


# ---- divergence and the instantaneous change of variables -------------------------------------------------
def divergence_exact(fx: torch.Tensor, x: torch.Tensor, create_graph: bool = False) -> torch.Tensor:
    """``∇·f = Σ_i ∂f_i/∂x_i`` by one autograd pass per dimension (x must require grad)."""
    fx, xf = fx.flatten(1), x
    div = torch.zeros(fx.shape[0], dtype=fx.dtype, device=fx.device)
    for i in range(fx.shape[1]):
        g = torch.autograd.grad(fx[:, i].sum(), xf, retain_graph=True, create_graph=create_graph)[0]
        div = div + g.flatten(1)[:, i]
    return div


def divergence_hutchinson(fx: torch.Tensor, x: torch.Tensor, v: torch.Tensor, create_graph: bool = False):
    """``vᵀ (∂f/∂x) v`` with ``E[v vᵀ] = I`` (Hutchinson 1989): one vector–Jacobian product."""
    g = torch.autograd.grad((fx * v).sum(), x, create_graph=create_graph)[0]
    return (g * v).flatten(1).sum(1)


@dataclass
class LogProbResult:
    log_prob: torch.Tensor   # (B,) nats
    z: torch.Tensor          # x mapped to t_prior
    delta: torch.Tensor      # ∫ ∇·f dt from t_data to t_prior
    nfe: int


def ode_log_prob(f: Callable, x: torch.Tensor, t_data: float, t_prior: float,
                 prior_log_prob: Callable[[torch.Tensor], torch.Tensor], method: str = "dopri5", steps: int = 100,
                 trace: str = "exact", generator: torch.Generator | None = None, rtol: float = 1e-5,
                 atol: float = 1e-5) -> LogProbResult:
    """``log p(x) = log p_prior(x(t_prior)) + ∫_{t_data}^{t_prior} ∇·f(t, x_t) dt`` (FFJORD eq. 4).

    ``trace``: ``"exact"`` (D autograd passes per evaluation; use in low dimension) or
    ``"hutchinson"`` (one Rademacher probe drawn from ``generator``, fixed along the path).
    """
    if trace not in ("exact", "hutchinson"):
        raise ValueError(f"trace must be 'exact' or 'hutchinson', got {trace!r}")
    v = None
    if trace == "hutchinson":
        v = (torch.randint(0, 2, x.shape, generator=generator, dtype=torch.int64).to(x) * 2 - 1)

    def aug(t, state):
        xt, _ = state
        with torch.enable_grad():
            xt = xt.detach().requires_grad_(True)
            fx = f(t, xt)
            div = divergence_exact(fx, xt) if v is None else divergence_hutchinson(fx, xt, v)
        return fx.detach(), div.detach()

    ts = uniform_grid(t_data, t_prior, steps)
    res = odeint(aug, (x, torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)), ts, method=method,
                 rtol=rtol, atol=atol)
    z, delta = res.x
    return LogProbResult(prior_log_prob(z) + delta, z, delta, res.nfe)


def standard_normal_log_prob(z: torch.Tensor) -> torch.Tensor:
    """``log N(z; 0, I)`` summed over all but the batch dimension."""
    import math
    return (-0.5 * z.flatten(1) ** 2 - 0.5 * math.log(2 * math.pi)).sum(1)


__all__ = ["odeint", "ODEResult", "Counted", "uniform_grid", "divergence_exact", "divergence_hutchinson",
           "ode_log_prob", "LogProbResult", "standard_normal_log_prob", "SOLVERS", "FIXED", "ADAPTIVE", "NFE_PER_STEP"]
