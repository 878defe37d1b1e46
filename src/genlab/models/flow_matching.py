"""Flow matching (Lipman et al. 2023), rectified flow with reflow (Liu et al. 2023), minibatch
optimal-transport coupling (Tong et al. 2024; Pooladian et al. 2023), with classifier-free guidance.

Time runs from t = 0 (noise x₀ ~ N(0, I)) to t = 1 (data x₁). Conditional Gaussian path
(Lipman et al. eq. 20–23): ``p_t(x | x₁) = N(t x₁, (1 − (1 − σ_min) t)² I)``, i.e.
``ψ_t(x₀) = (1 − (1 − σ_min) t) x₀ + t x₁`` with conditional velocity
``u_t(x | x₁) = (x₁ − (1 − σ_min) x) / (1 − (1 − σ_min) t)``, which at x = ψ_t(x₀) is
``x₁ − (1 − σ_min) x₀``. The CFM loss (eq. 9) is ``E_{t, x₀, x₁} ‖v_θ(ψ_t(x₀), t) − (x₁ − (1 − σ_min) x₀)‖²``.

Training times: ``t = 1 − (1 − u)^p``, u ~ U[0, 1] (``t_power`` p; p = 1 is uniform), i.e. the density
``π(t) = (1 − t)^{1/p − 1} / p``. p > 1 draws more times near the data (t → 1), where a thin structure
of width w is only resolved once the path's std ``1 − (1 − σ_min) t`` falls below w. Any π > 0 on (0, 1)
leaves the minimiser at each t unchanged (the marginal velocity ``E[u_t(x | x₁) | x_t = x]``); only
the weight of each t in the loss, hence where a finite network spends its capacity, changes.

``path``:
- ``cfm``: independent coupling (x₀, x₁) ~ N(0, I) ⊗ data, σ_min from the config.
- ``rectified``: σ_min = 0 (the straight line ``x_t = (1 − t) x₀ + t x₁``); :meth:`FlowMatching.reflow_pairs`
  draws (z, ODE(z)) pairs from the trained model to retrain on ("reflow"), which straightens the
  flow so that few Euler steps suffice. (Any path can be reflowed.)
- ``ot``: minibatch OT coupling — within each batch the noise is re-paired with the data by the
  exact assignment minimising ``Σ ‖x₀ − x₁‖²`` (POT's ``emd``; scipy's ``linear_sum_assignment`` as fallback).

Guidance (labelled data): classifier-free (``guidance=w``, label dropout in training) and classifier
guidance (``classifier=``, a noise-conditional classifier ``p_φ(y | x_t, t)`` trained on this path,
registry name ``fm-classifier``): ``ṽ = v_θ + s λ(t) ∇_x log p_φ(y | x_t, t)`` with
``λ(t) = σ_t (α̇ σ_t/α_t − σ̇_t) = (1 − (1 − σ_min) t)/t`` for ``α_t = t``, ``σ_t = 1 − (1 − σ_min) t``
(``genlab.sampling.guidance``); s = 1 with the Bayes classifier is the exact class-conditional velocity.
It needs the independent coupling (``cfm``, ``rectified`` before reflow): under the OT coupling x_t is
not data plus independent Gaussian noise, so the score relation does not hold.

``prediction`` (what the network outputs):
- ``velocity``: v_θ itself, trained by the CFM loss above.
- ``mixture`` (data with at most 256 levels, e.g. 8-bit images): the network predicts, per pixel, a prior
  ``π_lo δ(−1) + π_hi δ(+1) + π_g N(μ, s²)`` over the clean value x₁ (the ``ddpm`` parameterisation of
  the same name); x̂₁ = E[x₁ | x_t] follows by Bayes' rule under the path's Gaussian likelihood
  ``x_t | x₁ ~ N(t x₁, σ_t²)`` (:func:`genlab.models.ddpm.mixture_posterior`), and since ``u_t(x | x₁)``
  is linear in x₁ the marginal velocity is ``v = (x̂₁ − (1 − σ_min) x_t) / σ_t``. Near the data end
  (σ_t → 0) the likelihood term snaps black and white pixels onto their levels exactly, where a
  velocity network has to learn a field of size 1/σ_t. With ``x_t = σ_t x₀ + t x₁`` the CFM loss is
  ``‖x̂₁ − x₁‖² / σ_t²``; the weight is capped at 10⁴ (σ_t ≥ 0.01; the ε-loss's largest weight under
  DDPM's linear schedule), which keeps the minimiser (the posterior mean at each t) and bounds the loss's
  variance. Training uses the levels themselves (no dequantisation: the point masses are the levels).
  Classifier-free guidance combines the two velocities, not the mixture parameters.

Sampling integrates ``dx/dt = v_θ(x, t)`` from 0 to 1 with a solver from ``genlab.sampling.ode``;
``log_prob`` integrates the instantaneous change of variables backwards (kind ``"estimate"``,
see :meth:`FlowMatching.likelihood_info`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..data.base import DataInfo, Dataset
from ..nn.unet import FourierInputNet, TimeMLP  # noqa: F401  (FourierInputNet: re-exported)
from ..sampling.guidance import classifier_free, classifier_guided_velocity, classifier_log_prob_grad, gaussian_path_guidance_coef
from ..sampling.ode import SOLVERS, ode_log_prob, odeint, standard_normal_log_prob, uniform_grid
from .base import GenerativeModel, ModelError
from .ddpm import (MIXTURE_OUT, DenoiserFamily, NetConfig, check_diffusable, mixture_level_log_prob, mixture_mean,
                   mixture_posterior)
from .registry import register
from .schedules import sample_times

PATHS = ("cfm", "rectified", "ot")
PREDICTIONS = ("velocity", "mixture")
MIXTURE_SIGMA_FLOOR = 1e-3   # prediction="mixture": σ_t used as max(σ_t, 1e-3) (rectified flow has σ_1 = 0)
MIXTURE_MAX_WEIGHT = 1e4     # prediction="mixture": loss weight min(1/σ_t², 10⁴)
GUIDANCE_T_MIN = 1e-2   # λ(t) ∝ 1/t: classifier guidance uses λ(max(t, 0.01)) (p_t(y | x) is flat near t = 0)


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


def guidance_coef(t: torch.Tensor, sigma_min: float) -> torch.Tensor:
    """``λ(t) = σ_t (α̇ σ_t/α_t − σ̇_t)`` with ``α_t = t``, ``σ_t = 1 − (1 − σ_min) t``; equals ``σ_t / t``."""
    return gaussian_path_guidance_coef(t, 1 - (1 - sigma_min) * t, 1.0, -(1 - sigma_min))


def ot_pairing(x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
    """Permutation ``p`` of the noise batch minimising ``Σ_i ‖x0[p_i] − x1[i]‖²`` (exact assignment).

    Solved by POT's network simplex (``ot.emd``; with uniform weights on two batches of equal size its
    optimal vertex is a permutation matrix / B), which is 2–3× faster than scipy's
    ``linear_sum_assignment`` at B = 256–512 (benchmarks/results/fm_peers.md); scipy is the fallback."""
    cost = torch.cdist(x0.flatten(1).double(), x1.flatten(1).double()).pow(2).cpu().numpy()
    B = cost.shape[0]
    try:
        import ot
    except ImportError:
        ot = None
    if ot is not None:
        import numpy as np
        w = np.full(B, 1.0 / B)
        plan = ot.emd(w, w, cost)                   # rows: noise i, columns: data j
        cols = plan.argmax(1)
        if np.array_equal(np.sort(cols), np.arange(B)):
            perm = torch.empty(B, dtype=torch.long)
            perm[torch.as_tensor(cols)] = torch.arange(B)
            return perm.to(x0.device)
    from scipy.optimize import linear_sum_assignment
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
        t_power: float = 1.0                # training times t = 1 − (1 − u)^t_power (1 = uniform; > 1: more near data)
        prediction: str = "velocity"        # velocity | mixture (discrete data: v from x̂₁ = a posterior mean)

    def __init__(self, info, config=None):
        super().__init__(info, config)
        if self.config.path not in PATHS:
            raise ModelError(f"path must be one of {PATHS}, got {self.config.path!r}")
        if not self.config.t_power > 0:
            raise ModelError(f"t_power must be > 0, got {self.config.t_power}")
        if self.config.prediction not in PREDICTIONS:
            raise ModelError(f"prediction must be one of {PREDICTIONS}, got {self.config.prediction!r}")
        if self.config.prediction == "mixture" and not info.discrete:
            raise ModelError("prediction='mixture' needs discrete data (integer levels, e.g. 8-bit images); "
                             "use prediction='velocity'")
        self.net = self.build_net(out_mult=MIXTURE_OUT if self.config.prediction == "mixture" else 1)
        self.last_nfe = 0

    @property
    def sigma_min(self) -> float:
        return 0.0 if self.config.path == "rectified" else self.config.sigma_min

    def bin_width(self) -> float:
        return 2.0 / (self.info.num_levels - 1)

    def to_model_dequant(self, x):
        """Discrete levels plus U(−½, ½) bin noise, in model space (continuous data unchanged; none for
        ``prediction="mixture"``, whose prior has point masses on the extreme levels)."""
        z = self.to_model(x)
        if self.info.discrete and self.config.dequantize and self.config.prediction != "mixture":
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
        t = sample_times(torch.rand(x1.shape[0], device=x1.device), self.config.t_power)
        xt = path_sample(x0, x1, t, self.sigma_min)
        if self.config.prediction == "mixture":   # ‖v̂ − u‖² = ‖x̂₁ − x₁‖²/σ_t², weight capped (module docstring)
            x1_hat = self.mixture_x1(self._net(xt, t, y), xt, t)
            sig = self.path_std(t, xt)
            return ((x1_hat - x1) ** 2 / (sig ** 2).clamp_min(1.0 / MIXTURE_MAX_WEIGHT)).mean()
        target = x1 - (1 - self.sigma_min) * x0
        return ((self.net_eval(xt, t, y) - target) ** 2).mean()

    # ---- prediction="mixture" -----------------------------------------------------------------------------
    def path_std(self, t, x):
        """``σ_t = 1 − (1 − σ_min) t`` (:func:`path_mean_std`) shaped like ``x``."""
        return path_mean_std(x, t.to(x.dtype), self.sigma_min)[1]

    def mixture_x1(self, out, xt, t):
        """x̂₁ = E[x₁ | x_t] under the network's per-pixel mixture prior ``out`` and ``x_t | x₁ ~ N(t x₁, σ_t²)``,
        σ_t floored at 10⁻³."""
        a = t.to(xt.dtype).reshape(-1, *([1] * (xt.ndim - 1)))
        sig = self.path_std(t, xt).clamp_min(MIXTURE_SIGMA_FLOOR)
        return mixture_mean(*mixture_posterior(out, xt, a, sig ** 2)[:2])

    def _field(self, x, t, y):
        """The velocity at (x, t) for label y (no guidance): the network itself, or from x̂₁ for ``mixture``."""
        out = self._net(x, t, y)
        if self.config.prediction != "mixture":
            return out
        return (self.mixture_x1(out, x, t) - (1 - self.sigma_min) * x) / self.path_std(t, x).clamp_min(MIXTURE_SIGMA_FLOOR)

    def net_eval(self, x, t, y=None, guidance: float = 1.0):
        """The velocity at model-space ``x`` and time ``t`` (B,) with classifier-free guidance ``w``
        (combining velocities, also for ``prediction="mixture"``)."""
        if self.num_classes is None:
            return self._field(x, t, None)
        return classifier_free(self._field, x, t, y, guidance, self.num_classes)

    # ---- the vector field ----------------------------------------------------------------------------------
    def velocity(self, y=None, guidance: float = 1.0, classifier=None, classifier_scale: float = 0.0):
        """``v(t, x)``: the network's velocity with classifier-free weight ``guidance`` and, with a
        ``classifier`` (``.logits(x_model, t)``) and ``classifier_scale`` s ≠ 0, classifier guidance
        ``+ s λ(t) ∇_x log p_φ(y | x, t)``."""
        def f(t, x):
            tb = t.to(x.dtype).expand(x.shape[0])
            v = self.net_eval(x, tb, y, guidance)
            if classifier is None or not classifier_scale:
                return v
            grad = classifier_log_prob_grad(classifier.logits, x, tb, y)
            return classifier_guided_velocity(v, grad, guidance_coef(tb.clamp_min(GUIDANCE_T_MIN), self.sigma_min),
                                              classifier_scale)
        return f

    def check_classifier(self, classifier, y):
        if classifier is None:
            return
        if y is None:
            raise ModelError("classifier guidance needs cond= (the labels to guide towards)")
        if self.config.path == "ot":
            raise ModelError("classifier guidance needs the independent coupling (path='cfm' or 'rectified'): "
                             "under the OT coupling x_t is not data plus independent noise")
        if isinstance(classifier, GenerativeModel):
            if not isinstance(classifier, FlowClassifier):
                raise ModelError(f"a {classifier.name!r} classifier was trained on another noising process; "
                                 "train an 'fm-classifier' on this model's path")
            c = classifier.config
            if abs(c.sigma_min - self.sigma_min) > 1e-12 or c.x_scale != getattr(self.config, "x_scale", 1.0):
                raise ModelError(f"the classifier's sigma_min/x_scale ({c.sigma_min}, {c.x_scale}) differ from the "
                                 f"model's ({self.sigma_min}, {self.config.x_scale})")

    @torch.no_grad()
    def sample(self, n: int, cond=None, generator=None, guidance: float = 1.0, steps: int = 100,
               sampler: str = "euler", x0: torch.Tensor | None = None, rtol: float = 1e-5, atol: float = 1e-5,
               classifier=None, classifier_scale: float = 0.0, progress: bool = False,
               return_model_space: bool = False):
        """Integrate ``dx/dt = v_θ(x, t)`` from noise (t=0) to data (t=1).

        ``sampler``: euler | heun | midpoint | rk4 | dopri5 (adaptive; ``rtol``/``atol``); ``steps``:
        solver steps (NFE = steps × evaluations per step, ×2 with guidance w ∉ {0, 1}); ``guidance``:
        classifier-free weight w (0 unconditional, 1 conditional); ``classifier`` + ``classifier_scale``:
        classifier guidance (an ``fm-classifier`` trained on this path). NFE → ``self.last_nfe``."""
        if sampler not in SOLVERS:
            raise ModelError(f"flow-matching samplers are {', '.join(SOLVERS)}; got {sampler!r}")
        if int(steps) < 1:
            raise ModelError(f"steps must be ≥ 1, got {steps}")
        y = self.check_cond(n, cond)
        self.check_classifier(classifier, y)
        x = self.randn(n, generator) if x0 is None else x0.to(self.device).float()
        res = odeint(self.velocity(y, guidance, classifier, classifier_scale), x, uniform_grid(0.0, 1.0, int(steps)), method=sampler,
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
                 rtol: float = 1e-5, atol: float = 1e-5, generator=None, guidance: float = 1.0,
                 sigma_end: float | None = None, **options):
        """``log p₁(x) = log N(x(0); 0, I) − ∫₀¹ ∇·v_θ(x_t, t) dt`` by integrating from t=1 to t=0.

        ``trace``: ``exact`` (default for D ≤ 16) or ``hutchinson`` (default above). Discrete data:
        one uniform dequantisation draw u, ``log P(k) ≥ E_u log p(z(k, u)) + D log(bin width)``.
        ``prediction="mixture"``: the bound of :meth:`mixture_log_prob` (``sigma_end``)."""
        self.check_input(x, cond)
        y = self.check_cond(x.shape[0], cond)
        trace = trace or ("exact" if self.info.dim <= 16 else "hutchinson")
        if self.config.prediction == "mixture":
            return self.mixture_log_prob(x, y, trace, sampler, steps, rtol, atol, generator, guidance, sigma_end)
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

    def mixture_log_prob(self, x, y, trace, sampler, steps, rtol, atol, generator, guidance, sigma_end=None):
        """``prediction="mixture"`` on discrete data: a variational lower bound on log P(k) that uses the ODE
        down to σ_end only, where the network's own posterior over the levels takes over (as the ``ddpm``
        bound's L₀ does):

            log P(k) ≥ E_q [ log p_s(x_s) + log P_θ(k | x_s) − log q(x_s | k) ],  q(x_s | k) = N(s c_k, σ_end² I),

        with s the time at which σ_s = 1 − (1 − σ_min) s = σ_end, c_k the level in model space, p_s the
        ODE's density at time s (``log N(x(0); 0, I) − ∫₀^s ∇·v_θ dt``) and ``P_θ(k | x_s)`` the mixture
        posterior over x₁ binned into the levels (:func:`genlab.models.ddpm.mixture_level_log_prob`). It is
        Jensen's inequality for the model "integrate the ODE to s, then draw the level from P_θ(k | x_s)";
        its gap is KL(q(x_s | k) ‖ p(x_s | k)). Uniform dequantisation, the alternative, fails here: the
        model puts its black pixels on the level itself (a point mass), not spread over the bin.
        One draw of x_s per example; ``sigma_end`` defaults to half a level bin (1/(K − 1))."""
        se = 0.5 * self.bin_width() if sigma_end is None else float(sigma_end)
        if not max(self.sigma_min, 0.0) < se < 1:
            raise ModelError(f"sigma_end must lie in (sigma_min, 1) = ({self.sigma_min}, 1), got {se}")
        B, D = x.shape[0], self.info.dim
        s = (1 - se) / (1 - self.sigma_min)
        c = self.to_model(x).to(self.net_dtype)
        eps = torch.randn(c.shape, generator=generator, dtype=c.dtype).to(self.device)
        xs = s * c + se * eps
        res = ode_log_prob(self.velocity(y, guidance), xs, s, 0.0, standard_normal_log_prob, method=sampler,
                           steps=steps, trace=trace, generator=generator, rtol=rtol, atol=atol)
        self.last_nfe = res.nfe + 1
        log_q = -0.5 * eps.pow(2).flatten(1).sum(1) - D * (math.log(se) + 0.5 * math.log(2 * math.pi))
        with torch.no_grad():   # the raw mixture outputs (the base class's call: the null label when y is None)
            out = DenoiserFamily.net_eval(self, xs, torch.full((B,), s, dtype=xs.dtype, device=xs.device), y)
            post = mixture_posterior(out, xs, torch.tensor(s, dtype=xs.dtype), torch.tensor(se * se, dtype=xs.dtype))
            dec = mixture_level_log_prob(*post, c, self.info.num_levels).flatten(1).sum(1)
        return res.log_prob - log_q + dec

    def likelihood_info(self, trace=None, sampler="dopri5", sigma_end=None, **options):
        trace = trace or ("exact" if self.info.dim <= 16 else "hutchinson")
        if self.config.prediction == "mixture":
            se = 0.5 * self.bin_width() if sigma_end is None else float(sigma_end)
            return {"kind": "estimate", "units": "nats/example", "trace": trace, "solver": sampler,
                    "method": f"variational bound: ODE density at σ = {se:.4g} plus the mixture's level posterior",
                    "why_estimate": "a lower bound on log P from one draw of x_s per example, with the ODE solved "
                                    "numerically" + ("; Hutchinson's trace is unbiased but noisy"
                                                     if trace == "hutchinson" else "")}
        return {"kind": "estimate", "units": "nats/example", "method": "instantaneous change of variables",
                "trace": trace, "solver": sampler,
                "why_estimate": "the ODE is solved numerically (solver error of either sign)"
                                + ("; Hutchinson's trace is unbiased but noisy" if trace == "hutchinson" else "")
                                + ("; one dequantisation draw per example (a stochastic lower bound on log P)"
                                   if self.info.discrete else "")}


# =========================================================================================================
@register("fm-classifier")
class FlowClassifier(GenerativeModel):
    """Noise-conditional classifier ``p_φ(y | x_t, t)`` on the flow-matching path, for classifier guidance:
    trained by ``gl.train`` with the cross-entropy on ``x_t = (1 − (1 − σ_min) t) x₀ + t x₁``,
    x₀ ~ N(0, I), t ~ U[0, 1]. ``sigma_min`` and ``x_scale`` must match the guided model's."""

    likelihood = "none"
    conditional_ok = True

    @dataclass
    class Config:
        sigma_min: float = 1e-4             # the guided model's σ_min (0 for rectified flow)
        x_scale: float = 1.0                # the guided model's x_scale
        width: int = 128
        depth: int = 3
        emb_dim: int = 64
        dequantize: bool = True

    @classmethod
    def check_data(cls, info):
        if info.cond != "label":
            raise ModelError("fm-classifier needs labelled data (cond='label')")
        check_diffusable(cls, info)

    def __init__(self, info, config=None):
        super().__init__(info, config)
        c = self.config
        self.net = TimeMLP(info.dim, c.width, c.depth, c.emb_dim, None, out_dim=info.num_classes)

    def to_model(self, x):
        z = DenoiserFamily.to_model(self, x)
        if self.info.discrete and self.config.dequantize and self.training:
            z = z + (torch.rand_like(z) - 0.5) * 2.0 / (self.info.num_levels - 1)
        return z

    def logits(self, x_model, t):
        """Logits from model-space ``x_t`` and t ∈ [0, 1] (B,)."""
        return self.net(x_model.flatten(1), t)

    def loss(self, batch, phase="main"):
        x1 = self.to_model(batch["x"])
        t = torch.rand(x1.shape[0], device=x1.device)
        xt = path_sample(torch.randn_like(x1), x1, t, self.config.sigma_min)
        logits = self.logits(xt, t)
        return {"loss": F.cross_entropy(logits, batch["y"]), "acc": (logits.argmax(1) == batch["y"]).float().mean()}

    @torch.no_grad()
    def sample(self, n, cond=None, generator=None, **options):
        raise ModelError("fm-classifier guides a flow-matching model; it does not sample: pass it to "
                         "flow_matching_model.sample(..., cond=y, classifier=clf, classifier_scale=s)")


__all__ = ["FlowMatching", "FlowClassifier", "path_sample", "path_mean_std", "conditional_velocity",
           "guidance_coef", "ot_pairing", "sample_times", "FourierInputNet"]
