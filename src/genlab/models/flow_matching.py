"""Flow matching (Lipman et al. 2023), rectified flow with reflow (Liu et al. 2023), minibatch
optimal-transport coupling (Tong et al. 2024; Pooladian et al. 2023), with classifier-free guidance.

Time runs from t = 0 (noise x₀ ~ N(0, I)) to t = 1 (data x₁). Conditional Gaussian path
(Lipman et al. eq. 20–23): ``p_t(x | x₁) = N(t x₁, (1 − (1 − σ_min) t)² I)``, i.e.
``ψ_t(x₀) = (1 − (1 − σ_min) t) x₀ + t x₁`` with conditional velocity
``u_t(x | x₁) = (x₁ − (1 − σ_min) x) / (1 − (1 − σ_min) t)``, which at x = ψ_t(x₀) is
``x₁ − (1 − σ_min) x₀``. The CFM loss (eq. 9) is ``E_{t, x₀, x₁} ‖v_θ(ψ_t(x₀), t) − (x₁ − (1 − σ_min) x₀)‖²``.

``path``:
- ``cfm``: independent coupling (x₀, x₁) ~ N(0, I) ⊗ data, σ_min from the config.
- ``rectified``: σ_min = 0 (the straight line ``x_t = (1 − t) x₀ + t x₁``); :meth:`FlowMatching.reflow_pairs`
  draws (z, ODE(z)) pairs from the trained model to retrain on ("reflow"), which straightens the
  flow so that few Euler steps suffice. (Any path can be reflowed.)
- ``ot``: minibatch OT coupling — within each batch the noise is re-paired with the data by the
  exact assignment minimising ``Σ ‖x₀ − x₁‖²`` (scipy's ``linear_sum_assignment``).

Sampling integrates ``dx/dt = v_θ(x, t)`` from 0 to 1 with a solver from ``genlab.sampling.ode``;
``log_prob`` integrates the instantaneous change of variables backwards (kind ``"estimate"``,
see :meth:`FlowMatching.likelihood_info`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..data.base import DataInfo, Dataset
from ..sampling.ode import SOLVERS, ode_log_prob, odeint, standard_normal_log_prob, uniform_grid
from .base import ModelError
from .ddpm import DenoiserFamily, NetConfig
from .registry import register

PATHS = ("cfm", "rectified", "ot")


# ---- the objective, independent of the network (tested against the formulas) --------------------------
def path_sample(x0: torch.Tensor, x1: torch.Tensor, t: torch.Tensor, sigma_min: float) -> torch.Tensor:
    """``ψ_t(x₀) = (1 − (1 − σ_min) t) x₀ + t x₁``"""
    t = t.reshape(-1, *([1] * (x1.ndim - 1)))
    return (1 - (1 - sigma_min) * t) * x0 + t * x1


def path_mean_std(x1: torch.Tensor, t: torch.Tensor, sigma_min: float):
    """Mean ``t x₁`` and std ``1 − (1 − σ_min) t`` of ``p_t(x | x₁)``."""
    t = t.reshape(-1, *([1] * (x1.ndim - 1)))
    return t * x1, (1 - (1 - sigma_min) * t).expand_as(x1)


def conditional_velocity(x: torch.Tensor, x1: torch.Tensor, t: torch.Tensor, sigma_min: float) -> torch.Tensor:
    """``u_t(x | x₁) = (x₁ − (1 − σ_min) x) / (1 − (1 − σ_min) t)``"""
    t = t.reshape(-1, *([1] * (x1.ndim - 1)))
    return (x1 - (1 - sigma_min) * x) / (1 - (1 - sigma_min) * t)


def ot_pairing(x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
    """Permutation ``p`` of the noise batch minimising ``Σ_i ‖x0[p_i] − x1[i]‖²`` (exact assignment)."""
    from scipy.optimize import linear_sum_assignment
    cost = torch.cdist(x0.flatten(1).double(), x1.flatten(1).double()).pow(2).cpu().numpy()
    rows, cols = linear_sum_assignment(cost)       # rows sorted: noise i ↔ data cols[i]
    perm = torch.empty(len(cols), dtype=torch.long)
    perm[torch.as_tensor(cols)] = torch.as_tensor(rows)
    return perm.to(x0.device)


@register("flow-matching")
class FlowMatching(DenoiserFamily):
    """Flow matching: conditional FM (Gaussian paths), rectified flow + reflow, minibatch-OT coupling."""

    likelihood = "estimate"

    @dataclass
    class Config(NetConfig):
        path: str = "cfm"                   # cfm | rectified | ot
        sigma_min: float = 1e-4             # σ_min of the Gaussian path (forced to 0 for rectified)
        dequantize: bool = True             # discrete data: uniform noise within each level's bin in training

    def __init__(self, info, config=None):
        super().__init__(info, config)
        if self.config.path not in PATHS:
            raise ModelError(f"path must be one of {PATHS}, got {self.config.path!r}")
        self.net = self.build_net()
        self.last_nfe = 0

    @property
    def sigma_min(self) -> float:
        return 0.0 if self.config.path == "rectified" else self.config.sigma_min

    def bin_width(self) -> float:
        return 2.0 / (self.info.num_levels - 1)

    def to_model_dequant(self, x):
        """Discrete levels plus U(−½, ½) bin noise, in model space (continuous data unchanged)."""
        z = self.to_model(x)
        if self.info.discrete and self.config.dequantize:
            z = z + (torch.rand_like(z) - 0.5) * self.bin_width()
        return z

    # ---- training ----------------------------------------------------------------------------------------
    def loss(self, batch, phase="main"):
        x, y = batch["x"], batch.get("y")
        reflow = y is not None and y.is_floating_point()
        if reflow:   # reflow pairs (see reflow_pairs): x = Φ(z) in model space, y = [z, label]
            x1 = x.float()
            D = self.info.dim
            x0 = y[:, :D].reshape(x1.shape).to(x1)
            y = y[:, D].round().long() if self.num_classes is not None else None
        else:
            x1 = self.to_model_dequant(x)
            x0 = torch.randn_like(x1)
            if self.config.path == "ot":
                x0 = x0[ot_pairing(x0, x1)]
        y = self.drop_labels(y)
        t = torch.rand(x1.shape[0], device=x1.device)
        xt = path_sample(x0, x1, t, self.sigma_min)
        target = x1 - (1 - self.sigma_min) * x0
        return ((self.net_eval(xt, t, y) - target) ** 2).mean()

    # ---- the vector field ----------------------------------------------------------------------------------
    def velocity(self, y=None, guidance: float = 1.0):
        def f(t, x):
            return self.net_eval(x, t.to(x.dtype).expand(x.shape[0]), y, guidance)
        return f

    @torch.no_grad()
    def sample(self, n: int, cond=None, generator=None, guidance: float = 1.0, steps: int = 100,
               sampler: str = "euler", x0: torch.Tensor | None = None, rtol: float = 1e-5, atol: float = 1e-5,
               progress: bool = False, return_model_space: bool = False):
        """Integrate ``dx/dt = v_θ(x, t)`` from noise (t=0) to data (t=1).

        ``sampler``: euler | heun | midpoint | rk4 | dopri5 (adaptive; ``rtol``/``atol``); ``steps``:
        solver steps (NFE = steps × evaluations per step, ×2 with guidance w ∉ {0, 1}); ``guidance``:
        classifier-free weight w (0 unconditional, 1 conditional). NFE → ``self.last_nfe``."""
        if sampler not in SOLVERS:
            raise ModelError(f"flow-matching samplers are {', '.join(SOLVERS)}; got {sampler!r}")
        if int(steps) < 1:
            raise ModelError(f"steps must be ≥ 1, got {steps}")
        y = self.check_cond(n, cond)
        x = self.randn(n, generator) if x0 is None else x0.to(self.device).float()
        res = odeint(self.velocity(y, guidance), x, uniform_grid(0.0, 1.0, int(steps)), method=sampler,
                     rtol=rtol, atol=atol, progress=progress)
        self.last_nfe = res.nfe * (2 if (y is not None and guidance not in (0, 1)) else 1)
        return res.x if return_model_space else self.from_model(res.x)

    @torch.no_grad()
    def reflow_pairs(self, n: int, cond=None, steps: int = 100, sampler: str = "rk4", generator=None,
                     batch_size: int = 2000) -> Dataset:
        """Rectified flow's reflow (Liu et al. 2023, Alg. 1): pairs (z, Φ(z)) with Φ this model's ODE map.

        Returns a Dataset to pass to ``gl.train`` (a fresh model or a copy of this one): ``x`` = Φ(z) in
        the model's continuous space, ``y`` = [z flattened, label] (a continuous condition that
        :meth:`loss` recognises as a reflow coupling). Conditional models draw uniform labels unless ``cond``."""
        if self.num_classes is not None and cond is None:
            cond = torch.randint(0, self.num_classes, (n,), generator=generator)
        y = self.check_cond(n, cond)
        zs, xs = [], []
        for i in range(0, n, batch_size):
            m = min(batch_size, n - i)
            z = self.randn(m, generator)
            xs.append(self.sample(m, cond=None if y is None else y[i:i + m], steps=steps, sampler=sampler, x0=z,
                                  return_model_space=True))
            zs.append(z)
        z, x1 = torch.cat(zs).cpu().float(), torch.cat(xs).cpu().float()
        cols = [z.flatten(1)] + ([] if y is None else [y.cpu().float()[:, None]])
        yy = torch.cat(cols, 1)
        info = DataInfo(shape=self.info.shape, modality=self.info.modality, name=f"reflow-{self.info.name}",
                        cond="continuous", cond_shape=(yy.shape[1],))
        return Dataset(x1, info, y=yy, source={"reflow_of": self.info.name, "steps": steps, "sampler": sampler})

    # ---- likelihood -------------------------------------------------------------------------------------------
    def log_prob(self, x, cond=None, trace: str | None = None, sampler: str = "dopri5", steps: int = 100,
                 rtol: float = 1e-5, atol: float = 1e-5, generator=None, guidance: float = 1.0, **options):
        """``log p₁(x) = log N(x(0); 0, I) − ∫₀¹ ∇·v_θ(x_t, t) dt`` by integrating from t=1 to t=0.

        ``trace``: ``exact`` (default for D ≤ 16) or ``hutchinson`` (default above). Discrete data:
        one uniform dequantisation draw u, ``log P(k) ≥ E_u log p(z(k, u)) + D log(bin width)``."""
        self.check_input(x, cond)
        y = self.check_cond(x.shape[0], cond)
        trace = trace or ("exact" if self.info.dim <= 16 else "hutchinson")
        if self.info.discrete:
            u = torch.rand(x.shape, generator=generator).to(self.device) - 0.5
            z = self.to_model(x) + u * self.bin_width()
            corr = self.info.dim * math.log(self.bin_width())
        else:
            z, corr = self.to_model(x), self.log_scale_correction()
        res = ode_log_prob(self.velocity(y, guidance), z, 1.0, 0.0, standard_normal_log_prob, method=sampler,
                           steps=steps, trace=trace, generator=generator, rtol=rtol, atol=atol)
        self.last_nfe = res.nfe
        return res.log_prob + corr

    def likelihood_info(self, trace=None, sampler="dopri5", **options):
        trace = trace or ("exact" if self.info.dim <= 16 else "hutchinson")
        return {"kind": "estimate", "units": "nats/example", "method": "instantaneous change of variables",
                "trace": trace, "solver": sampler,
                "why_estimate": "the ODE is solved numerically (solver error of either sign)"
                                + ("; Hutchinson's trace is unbiased but noisy" if trace == "hutchinson" else "")
                                + ("; one dequantisation draw per example (a stochastic lower bound on log P)"
                                   if self.info.discrete else "")}


__all__ = ["FlowMatching", "path_sample", "path_mean_std", "conditional_velocity", "ot_pairing"]
