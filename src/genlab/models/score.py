"""Score-based models: NCSN (Song & Ermon 2019, 2020) and score SDEs (Song et al. 2021).

``ncsn`` — noise-conditional score network ``s_θ(x, σ) = net(x, σ)/σ`` (NCSNv2 technique 3) over
geometric noise levels σ₁ > … > σ_L, trained by
- denoising score matching (Vincent 2011; Song & Ermon 2019 eq. 5–6) with weight λ(σ) = σ²:
  ``½ E ‖σ s_θ(x + σz, σ) + z‖²``, or
- sliced score matching (Song et al. 2019) on the perturbed data:
  ``σ² E_v [vᵀ ∇_x s_θ(x̃, σ) v + ½ ‖s_θ(x̃, σ)‖²]`` (v ~ N(0, I); the ½‖s‖² term in closed form,
  "SSM-VR");
and sampled by annealed Langevin dynamics (Song & Ermon 2019 Alg. 1): for each σ_i,
``α_i = ε σ_i²/σ_L²`` and ``x ← x + (α_i/2) s_θ(x, σ_i) + √α_i z``, then Tweedie's denoising step
``x + σ_L² s_θ(x, σ_L)`` (Jolicoeur-Martineau et al. 2021). No likelihood.

``score-sde`` — forward SDE ``dx = f(x,t) dt + g(t) dw`` on t ∈ [0, 1]:
- VP (``sde="vp"``): ``f = −½β(t)x``, ``g = √β(t)``; ``x_t | x_0 ~ N(m_t x_0, (1 − m_t²) I)`` with
  ``m_t = exp(−½B(t))``, ``B(t) = ∫_0^t β``; two schedules (``schedule=``):
  ``"linear"`` (Song et al. 2021): ``β(t) = β_min + t(β_max − β_min)``, ``B = tβ_min + ½t²(β_max − β_min)``;
  ``"cosine"`` (the continuous-time form of Nichol & Dhariwal 2021's cosine schedule, the "trigonometric"
  VP path of Kingma et al. 2021 / Lu & Song 2024): ``m_t = cos(πct/2)``, ``std_t = sin(πct/2)``,
  ``β(t) = −2 d log m_t/dt = πc tan(πct/2)`` (finite at t = 1 because ``c = cosine_c < 1``; m_1 = cos(πc/2)),
  ``B = −2 log cos(πct/2)``. Its path velocity ``ṁ x_0 + (std)˙ z = (πc/2)(−sin(πct/2) x_0 + cos(πct/2) z)``
  is bounded, whereas the linear schedule's ``(std)˙ = β m²/(2 std) ≈ ½√(β_min/t)`` grows without bound
  as t → 0 (a noisy regression target for ``prediction="velocity"``).
- VE (``sde="ve"``): ``f = 0``, ``g = σ(t)√(2 ln(σ_max/σ_min))``, ``σ(t) = σ_min(σ_max/σ_min)^t``;
  ``x_t | x_0 ~ N(x_0, σ(t)² I)`` (σ_min² neglected, as in Song et al.), prior N(0, σ_max² I).
Objective: weighted denoising score matching (Song et al. 2021 eq. 7) with ``x_t = m_t x_0 + std_t z``,
``E_t λ(t) E ‖s_θ(x_t, t) + z/std_t‖²`` (``+z/std_t`` = −∇ log p(x_t | x_0)), written per parameterisation:
- ``prediction="eps"``: ``s_θ = −net/std_t``, so ``‖s_θ + z/std‖² = ‖net − z‖²/std²``;
- ``prediction="velocity"`` (the probability-flow drift itself, as in Zheng et al. 2023, "Improved
  techniques for maximum likelihood estimation for diffusion ODEs"): ``net ≈ f − ½g² ∇log p_t``, i.e.
  ``s_θ = 2(f(x, t) − net)/g²``; its regression target is the path velocity ``v = ṁ_t x_0 + (d std_t/dt) z``
  (E[v | x_t] is exactly the probability-flow drift), and ``‖s_θ + z/std‖² = 4‖net − v‖²/g⁴``;
- ``prediction="flow"``: the same loss on the drift, but the network is a flow-matching network on the
  straight path through the same noise levels. Every Gaussian path is a rescaling of the straight path
  ``x'_u = u x_0 + (1 − u) z``: ``x_t / (m + std) = x'_u`` at ``u = m/(m + std)``. The network sees
  ``(x_t/(m + std), u)`` and predicts ``w ≈ E[x_0 − z | x_t]``, flow matching's target on that path. With
  ``x_t = m x_0 + std z`` the conditional means are ``E[x_0] = (x + std w)/(m + std)`` and
  ``E[z] = (x − m w)/(m + std)``, so the drift is ``(ṁ (x + std w) + (std)˙ (x − m w))/(m + std)``, affine
  in w; the drift error is ``(ṁ std − (std)˙ m)/(m + std)`` times the error in w (−(πc/2)/(cos + sin)
  under the cosine schedule, nearly constant). With ``weighting="default"`` the training is flow matching's
  exactly: u ~ U[u(1), u(t_ε)] (t = the time with that u; ``t_power=p`` draws u = u(1) + (u(t_ε) − u(1))(1 − (1 − v)^p),
  v ~ U, more times near the data, as flow matching's ``t_power``) and the loss ``‖w − (x_0 − z)‖²``; the minimiser
  is the same as ``velocity``'s (the probability-flow drift). On the 2-D toys it needs flow matching's
  training steps where ``velocity`` needed up to 4× more (benchmarks/results/sde_toys_notes.md).
``weighting="default"``: λ = std² for ``eps`` (loss ``‖net − z‖²``), λ = g⁴/4 for ``velocity`` (loss
``‖net − v‖²``), t ~ U[t_ε, 1]. ``weighting="likelihood"``: λ = g² (Song, Durkan, Murray & Ermon 2021,
"Maximum likelihood training of score-based diffusion models", Thm. 1: the weighted loss then bounds the
KL / NLL), with ``importance=True`` drawing t from q(t) ∝ g²/std² and dividing by q: for ``eps`` the loss
is then ``Z ‖net − z‖²`` with ``Z = ∫_{t_ε}^1 g²/std² dt`` (their §4.2; VP: ∫ β/(1 − e^{−B}) dt =
log(e^{B(t)} − 1), B(t) = ∫_0^t β, inverted in closed form for both schedules; VE: g²/σ² = 2 ln(σ_max/σ_min), i.e. uniform).
Samplers: reverse-time SDE ``dx = [f − g² s_θ] dt + g dw̄`` by Euler–Maruyama (``em``) or
predictor–corrector (``pc``); the probability-flow ODE ``dx/dt = f − ½ g² s_θ`` with any solver of
``genlab.sampling.ode`` (``euler``, ``heun``, ``rk4``, ``dopri5``), which also gives ``log_prob``
by the instantaneous change of variables (kind ``"estimate"``; see ``likelihood_info``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..sampling.ode import SOLVERS, ode_log_prob, odeint, standard_normal_log_prob, uniform_grid
from ..sampling.sde import euler_maruyama, predictor_corrector
from .base import ModelError
from .ddpm import DenoiserFamily, NetConfig
from .registry import register
from .schedules import sample_times


PREDICTIONS = ("eps", "velocity", "flow")


def _bshape(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return v.reshape(-1, *([1] * (x.ndim - 1)))


# =========================================================================================================
@register("ncsn")
class NCSN(DenoiserFamily):
    """Noise-conditional score network with annealed Langevin sampling (no likelihood)."""

    likelihood = "none"

    @dataclass
    class Config(NetConfig):
        num_scales: int = 10
        sigma_max: float = 3.0
        sigma_min: float = 0.01
        objective: str = "dsm"                # dsm | ssm
        dequantize: bool = True

    @classmethod
    def default_config(cls, info):
        cfg = super().default_config(info)
        if info.modality == "image":
            cfg.sigma_max = 10.0 if info.dim <= 64 else 20.0
            cfg.num_scales = 20
        return cfg

    def __init__(self, info, config=None):
        super().__init__(info, config)
        c = self.config
        if c.objective not in ("dsm", "ssm"):
            raise ModelError(f"objective must be 'dsm' or 'ssm', got {c.objective!r}")
        if not 0 < c.sigma_min < c.sigma_max:
            raise ModelError("need 0 < sigma_min < sigma_max")
        self.register_buffer("sigmas", torch.exp(torch.linspace(math.log(c.sigma_max), math.log(c.sigma_min),
                                                                c.num_scales)), persistent=False)
        self.net = self.build_net()
        self.last_nfe = 0

    def _tau(self, sigma):
        """noise level → network time in [0, 1] (0 at σ_min, 1 at σ_max, linear in log σ)."""
        c = self.config
        return (torch.log(sigma) - math.log(c.sigma_min)) / (math.log(c.sigma_max) - math.log(c.sigma_min))

    def score(self, x, sigma, y=None, guidance: float = 1.0):
        """``s_θ(x, σ) = net(x, σ)/σ`` (σ per example, shape (B,))."""
        return self.net_eval(x, self._tau(sigma), y, guidance) / _bshape(sigma, x)

    def loss(self, batch, phase="main"):
        x = self.to_model(batch["x"])
        if self.info.discrete and self.config.dequantize:
            x = x + (torch.rand_like(x) - 0.5) * 2.0 / (self.info.num_levels - 1)
        y = self.drop_labels(batch.get("y"))
        idx = torch.randint(0, self.config.num_scales, (x.shape[0],), device=x.device)
        sigma = self.sigmas[idx]
        z = torch.randn_like(x)
        xt = x + _bshape(sigma, x) * z
        if self.config.objective == "dsm":
            # ½ ‖σ s_θ(x̃, σ) + z‖² = ½ ‖net(x̃, σ) + z‖²
            return 0.5 * ((self.net_eval(xt, self._tau(sigma), y) + z) ** 2).flatten(1).sum(1).mean()
        # sliced score matching (variance-reduced): σ² [vᵀ ∇_x s v + ½ ‖s‖²]
        xt = xt.detach().requires_grad_(True)
        s = self.score(xt, sigma, y)
        v = torch.randn_like(xt)
        jvp = torch.autograd.grad((s * v).sum(), xt, create_graph=True)[0]
        obj = (jvp * v).flatten(1).sum(1) + 0.5 * (s ** 2).flatten(1).sum(1)
        return (sigma ** 2 * obj).mean()

    @torch.no_grad()
    def sample(self, n: int, cond=None, generator=None, guidance: float = 1.0, steps: int = 100,
               sampler: str = "langevin", step_lr: float | None = None, denoise: bool = True,
               progress: bool = False, return_model_space: bool = False):
        """Annealed Langevin dynamics (``sampler="langevin"``): ``steps`` per noise level (NFE =
        steps × num_scales + 1); ``step_lr`` = ε (α_i = ε σ_i²/σ_L²; default 2e-5 for images, 5e-5 for vectors: keep α_1 / (σ_1² + data variance) < 2)."""
        if sampler != "langevin":
            raise ModelError(f"ncsn's sampler is 'langevin' (annealed Langevin dynamics), got {sampler!r}")
        y = self.check_cond(n, cond)
        eps = step_lr if step_lr is not None else (2e-5 if self.info.modality == "image" else 5e-5)
        x = (torch.rand((n, *self.info.shape), generator=generator) * 2 - 1).to(self.device) * float(self.sigmas[0])
        nfe = 0
        levels = range(self.config.num_scales)
        if progress:
            from tqdm.auto import tqdm
            levels = tqdm(levels, desc="annealed langevin", leave=False)
        sL = self.sigmas[-1]
        for i in levels:
            sigma = self.sigmas[i]
            alpha = eps * float(sigma / sL) ** 2
            sig_b = sigma.expand(n)
            x = annealed_level(lambda z: self.score(z, sig_b, y, guidance), x, alpha, int(steps), generator)
            nfe += int(steps)
        if denoise:
            x = x + sL ** 2 * self.score(x, sL.expand(n), y, guidance)
            nfe += 1
        self.last_nfe = nfe * (2 if (y is not None and guidance not in (0, 1)) else 1)
        return x if return_model_space else self.from_model(x)


def annealed_level(score_fn, x, alpha: float, steps: int, generator=None):
    """Langevin steps at one noise level: ``x ← x + (α/2) s(x) + √α z`` (Song & Ermon 2019 Alg. 1),
    run by the shared sampler ``genlab.sampling.langevin`` (step ε = α/2, noise √(2ε) = √α)."""
    try:
        from ..sampling.langevin import langevin
    except ImportError:   # the shared sampler is written by another engineer; same update written out
        for _ in range(steps):
            x = x + 0.5 * alpha * score_fn(x) + math.sqrt(alpha) * torch.randn(x.shape, generator=generator).to(x)
        return x
    return langevin(score_fn, x, steps, step_size=alpha / 2, generator=generator, kind="score")


# =========================================================================================================
@register("score-sde")
class ScoreSDE(DenoiserFamily):
    """Score SDE (VP or VE): reverse SDE / predictor–corrector / probability-flow ODE; ODE likelihood."""

    likelihood = "estimate"

    @dataclass
    class Config(NetConfig):
        sde: str = "vp"                       # vp | ve
        schedule: str = "linear"              # VP: linear β(t) | cosine (m_t = cos(πct/2))
        beta_min: float = 0.1                 # VP linear
        beta_max: float = 20.0                # VP linear
        cosine_c: float = 0.996               # VP cosine: c < 1 keeps β(1) = πc tan(πc/2) finite (m_1 ≈ 0.0063)
        sigma_min: float = 0.01               # VE
        sigma_max: float = 10.0               # VE
        t_eps: float = 1e-3                   # smallest time (training and sampling)
        dequantize: bool = True
        prediction: str = "eps"               # eps | velocity (network = probability-flow drift) | flow (E[x_0 − z | x_t])
        weighting: str = "default"            # default | likelihood (λ = g²)
        importance: bool = True               # likelihood weighting: sample t ∝ g²/std² (importance sampling)
        t_power: float = 1.0                  # prediction="flow": straight-path times u = 1 − (1 − v)^p, v ~ U (flow matching's)

    @classmethod
    def default_config(cls, info):
        cfg = super().default_config(info)
        if info.modality == "image":
            cfg.sigma_max = 20.0
        return cfg

    def __init__(self, info, config=None):
        super().__init__(info, config)
        c = self.config
        if c.sde not in ("vp", "ve"):
            raise ModelError(f"sde must be 'vp' or 've', got {c.sde!r}")
        if c.schedule not in ("linear", "cosine"):
            raise ModelError(f"schedule must be 'linear' or 'cosine', got {c.schedule!r}")
        if c.schedule == "cosine" and c.sde != "vp":
            raise ModelError("schedule='cosine' is a VP schedule; use sde='vp'")
        if c.schedule == "cosine" and not 0 < c.cosine_c < 1:
            raise ModelError(f"need 0 < cosine_c < 1 (β(1) = πc tan(πc/2) is infinite at c = 1), got {c.cosine_c}")
        if c.prediction not in PREDICTIONS:
            raise ModelError(f"prediction must be one of {PREDICTIONS}, got {c.prediction!r}")
        if c.weighting not in ("default", "likelihood"):
            raise ModelError(f"weighting must be 'default' or 'likelihood', got {c.weighting!r}")
        if not c.t_power > 0 or (c.t_power != 1.0 and not (c.prediction == "flow" and c.weighting == "default")):
            raise ModelError(f"t_power must be > 0 and needs prediction='flow' with weighting='default', got "
                             f"t_power={c.t_power}, prediction={c.prediction!r}, weighting={c.weighting!r}")
        if not 0 < c.t_eps < 1:
            raise ModelError(f"need 0 < t_eps < 1, got {c.t_eps}")
        self.net = self.build_net()
        self.last_nfe = 0

    # ---- the SDE -------------------------------------------------------------------------------------------
    def beta(self, t):
        """VP β(t): linear ``β_min + t(β_max − β_min)``; cosine ``πc tan(πct/2)``."""
        c = self.config
        if c.schedule == "cosine":
            return math.pi * c.cosine_c * torch.tan(0.5 * math.pi * c.cosine_c * t)
        return c.beta_min + t * (c.beta_max - c.beta_min)

    def _B(self, t):
        """VP ``B(t) = ∫_0^t β = −2 log m_t``."""
        c = self.config
        if c.schedule == "cosine":
            return -torch.log1p(-torch.sin(0.5 * math.pi * c.cosine_c * t) ** 2)    # −log cos², exact near t = 0
        return c.beta_min * t + 0.5 * (c.beta_max - c.beta_min) * t ** 2

    def marginal(self, t):
        """(m_t, std_t) of ``x_t | x_0 ~ N(m_t x_0, std_t² I)``."""
        c = self.config
        if c.sde == "vp":
            if c.schedule == "cosine":
                a = 0.5 * math.pi * c.cosine_c * t
                return torch.cos(a), torch.sin(a)
            log_m = -0.5 * self._B(t)
            return torch.exp(log_m), torch.sqrt(-torch.expm1(2 * log_m))
        return torch.ones_like(t), c.sigma_min * (c.sigma_max / c.sigma_min) ** t

    def f_g(self, x, t):
        """Drift f(x, t) and diffusion g(t) of the forward SDE."""
        c = self.config
        if c.sde == "vp":
            b = self.beta(t)
            return -0.5 * b * x, b.sqrt()
        sig = c.sigma_min * (c.sigma_max / c.sigma_min) ** t
        return torch.zeros_like(x), sig * math.sqrt(2 * math.log(c.sigma_max / c.sigma_min))

    def prior_std(self) -> float:
        return 1.0 if self.config.sde == "vp" else self.config.sigma_max

    def prior_log_prob(self, z):
        s = self.prior_std()
        return standard_normal_log_prob(z / s) - z[0].numel() * math.log(s)

    def marginal_dot(self, t):
        """(dm_t/dt, d std_t/dt): VP ``ṁ = −½β m``, ``(std)˙ = β m²/(2 std)`` (cosine: ``(πc/2)(−sin, cos)(πct/2)``,
        the same written without the 0/0 at t = 0); VE ``σ̇ = σ ln(σ_max/σ_min)``."""
        c = self.config
        m, std = self.marginal(t)
        if c.sde == "vp" and c.schedule == "cosine":
            k = 0.5 * math.pi * c.cosine_c
            return -k * std, k * m
        if c.sde == "vp":
            b = self.beta(t)
            return -0.5 * b * m, 0.5 * b * m ** 2 / std
        return torch.zeros_like(t), std * math.log(c.sigma_max / c.sigma_min)

    def score(self, x, t, y=None, guidance: float = 1.0):
        """``eps``: ``s_θ(x, t) = −net(x, t)/std(t)``; ``velocity``: ``s_θ = 2(f(x, t) − net(x, t))/g(t)²``;
        ``t`` is a 0-dim or (B,) tensor."""
        t = t.to(x.dtype).expand(x.shape[0]) if t.ndim == 0 else t
        if self.config.prediction in ("velocity", "flow"):
            fx, g = self.f_g(x, _bshape(t, x))
            return 2 * (fx - self.net_drift(x, t, y, guidance)) / g ** 2
        out = self.net_eval(x, t, y, guidance)
        _, std = self.marginal(t)
        return -out / _bshape(std, x)

    def flow_input(self, x, t):
        """``prediction="flow"``: the straight-path input ``(x/(m + std), m/(m + std))`` for model-space x at times t (B,)."""
        m, std = self.marginal(t.to(x.dtype))
        return x / _bshape(m + std, x), m / (m + std)

    def flow_to_drift(self, w, x, t):
        """``prediction="flow"``: the drift ``(ṁ (x + std w) + (std)˙ (x − m w))/(m + std)`` from ``w ≈ E[x_0 − z | x_t]``."""
        m, std = (_bshape(v, x) for v in self.marginal(t))
        dm, dstd = (_bshape(v, x) for v in self.marginal_dot(t))
        return (dm * (x + std * w) + dstd * (x - m * w)) / (m + std)

    def net_drift(self, x, t, y=None, guidance: float = 1.0):
        """The probability-flow drift from the network (``velocity``: its output; ``flow``: via :meth:`flow_to_drift`)."""
        if self.config.prediction != "flow":
            return self.net_eval(x, t, y, guidance)
        return self.flow_to_drift(self.net_eval(*self.flow_input(x, t), y, guidance), x, t)

    # ---- importance sampling of t for the likelihood weighting ---------------------------------------------
    def _is_cdf(self, t):
        """Unnormalised CDF ``F(t) = ∫^t g²/std² ds``: VP ``log(e^{B(t)} − 1)``, VE ``2 ln(σ_max/σ_min) t``."""
        c = self.config
        t = torch.as_tensor(t, dtype=torch.float64)
        if c.sde == "vp":
            return torch.log(torch.expm1(self._B(t)))
        return 2 * math.log(c.sigma_max / c.sigma_min) * t

    def _is_inverse(self, u):
        """t with ``_is_cdf(t) = u``: B = log(1 + e^u), then linear ``t = (√(β_min² + 2dB) − β_min)/d``,
        cosine ``t = (2/πc) atan2(√(1 − e^{−B}), e^{−B/2})`` (= arccos(m) without its loss of precision at m → 1)."""
        c = self.config
        if c.sde == "vp":
            B = torch.nn.functional.softplus(u)                  # log(1 + e^u) = B
            if c.schedule == "cosine":
                return torch.atan2(torch.sqrt(-torch.expm1(-B)), torch.exp(-0.5 * B)) / (0.5 * math.pi * c.cosine_c)
            d = c.beta_max - c.beta_min
            return (torch.sqrt(c.beta_min ** 2 + 2 * d * B) - c.beta_min) / d
        return u / (2 * math.log(c.sigma_max / c.sigma_min))

    def straight_time(self, t):
        """``u(t) = m_t/(m_t + std_t)``: the time of the straight path x' = u x_0 + (1 − u) z at t's noise level
        (decreasing in t)."""
        m, std = self.marginal(t)
        return m / (m + std)

    def time_of_straight(self, u):
        """The inverse of :meth:`straight_time` (float64): cosine VP ``t = atan((1 − u)/u)/(πc/2)``; otherwise
        bisection on [0, 1] to machine precision."""
        c = self.config
        u = torch.as_tensor(u, dtype=torch.float64)
        if c.sde == "vp" and c.schedule == "cosine":
            return torch.atan2(1 - u, u) / (0.5 * math.pi * c.cosine_c)
        lo, hi = torch.zeros_like(u), torch.ones_like(u)
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            above = self.straight_time(mid) > u          # u(mid) > u: the answer lies later
            lo, hi = torch.where(above, mid, lo), torch.where(above, hi, mid)
        return 0.5 * (lo + hi)

    def sample_t(self, n: int, device=None):
        """Training times and their loss weights ``w(t)`` on ``‖net − target‖²`` (see the module docstring);
        ``prediction="flow"`` with the default weighting: u uniform on the straight path (weights 1 on
        ``‖w − (x_0 − z)‖²``)."""
        c = self.config
        if c.prediction == "flow" and c.weighting == "default":
            u_lo, u_hi = (float(self.straight_time(torch.tensor(v, dtype=torch.float64))) for v in (1.0, c.t_eps))
            v = sample_times(torch.rand(n, dtype=torch.float64, device=device), c.t_power)
            u = u_lo + (u_hi - u_lo) * v
            t = self.time_of_straight(u).clamp(c.t_eps, 1.0).float()
            return t, torch.ones_like(t)
        if c.weighting == "likelihood" and c.importance:
            lo, hi = self._is_cdf(c.t_eps), self._is_cdf(1.0)
            u = lo + (hi - lo) * torch.rand(n, dtype=torch.float64, device=device)
            t = self._is_inverse(u).clamp(c.t_eps, 1.0).float().to(device)
            inv_q = float(hi - lo)                              # 1/q(t) = Z std²/g²
        else:
            t = c.t_eps + (1 - c.t_eps) * torch.rand(n, device=device)
            inv_q = None
        if c.weighting == "default":
            return t, torch.ones_like(t)
        _, g = self.f_g(torch.zeros(()), t)
        _, std = self.marginal(t)
        g2 = g ** 2
        # λ = g²:  eps → g²/std² ‖net − z‖²;  velocity → 4/g² ‖net − v‖²
        w = g2 / std ** 2 if c.prediction == "eps" else 4 / g2
        if inv_q is not None:
            w = w * inv_q * std ** 2 / g2
        else:
            w = w * (1 - c.t_eps)
        return t, w

    def loss(self, batch, phase="main"):
        x = self.to_model(batch["x"])
        if self.info.discrete and self.config.dequantize:
            x = x + (torch.rand_like(x) - 0.5) * 2.0 / (self.info.num_levels - 1)
        y = self.drop_labels(batch.get("y"))
        t, w = self.sample_t(x.shape[0], x.device)
        m, std = self.marginal(t)
        z = torch.randn_like(x)
        xt = _bshape(m, x) * x + _bshape(std, x) * z
        c = self.config
        if c.prediction == "eps":
            pred, target = self.net_eval(xt, t, y), z           # ‖std · s_θ + z‖² = ‖net − z‖²
        elif c.prediction == "flow" and c.weighting == "default":   # flow matching's loss on the straight path
            pred, target = self.net_eval(*self.flow_input(xt, t), y), x - z
        else:
            dm, dstd = self.marginal_dot(t)
            pred, target = self.net_drift(xt, t, y), _bshape(dm, x) * x + _bshape(dstd, x) * z  # v = ṁ x_0 + (std)˙ z
        return (w * ((pred - target) ** 2).flatten(1).sum(1)).mean()

    def pf_drift(self, y=None, guidance: float = 1.0):
        """Probability-flow ODE ``dx/dt = f(x,t) − ½ g(t)² s_θ(x, t)`` (Song et al. eq. 13); with
        ``prediction="velocity"`` that is the network's output itself."""
        def f(t, x):
            if self.config.prediction in ("velocity", "flow"):
                return self.net_drift(x, t.to(x.dtype).expand(x.shape[0]), y, guidance)
            fx, g = self.f_g(x, t.to(x.dtype))
            return fx - 0.5 * g ** 2 * self.score(x, t, y, guidance)
        return f

    @torch.no_grad()
    def sample(self, n: int, cond=None, generator=None, guidance: float = 1.0, steps: int = 500,
               sampler: str = "em", snr: float = 0.16, n_corrector: int = 1, rtol: float = 1e-5,
               atol: float = 1e-5, progress: bool = False, return_model_space: bool = False):
        """``sampler``: ``em`` (reverse SDE, Euler–Maruyama), ``pc`` (+ Langevin corrector, ``snr``),
        or an ODE solver (euler | heun | midpoint | rk4 | dopri5) on the probability-flow ODE."""
        y = self.check_cond(n, cond)
        x = self.randn(n, generator) * self.prior_std()
        ts = uniform_grid(1.0, self.config.t_eps, int(steps))
        mult = 2 if (y is not None and guidance not in (0, 1)) else 1
        if sampler in ("em", "pc"):
            def drift(t, x):
                fx, g = self.f_g(x, t)
                return fx - g ** 2 * self.score(x, t, y, guidance)

            def diffusion(t):
                return self.f_g(torch.zeros(()), t)[1]
            if sampler == "em":
                x, nfe = euler_maruyama(drift, diffusion, x, ts, generator, progress=progress)
            else:
                x, nfe = predictor_corrector(drift, diffusion, lambda t, z: self.score(z, t, y, guidance), x, ts,
                                             snr=snr, n_corrector=n_corrector, generator=generator,
                                             progress=progress)
        elif sampler in SOLVERS:
            res = odeint(self.pf_drift(y, guidance), x, ts, method=sampler, rtol=rtol, atol=atol, progress=progress)
            x, nfe = res.x, res.nfe
        else:
            raise ModelError(f"score-sde samplers: em, pc, {', '.join(SOLVERS)}; got {sampler!r}")
        self.last_nfe = nfe * mult
        return x if return_model_space else self.from_model(x)

    def log_prob(self, x, cond=None, trace: str | None = None, sampler: str = "dopri5", steps: int = 100,
                 rtol: float = 1e-5, atol: float = 1e-5, generator=None, guidance: float = 1.0, **options):
        """``log p(x) = log p_T(x(1)) + ∫_{t_eps}^1 ∇·(f − ½g² s_θ)(x_t, t) dt`` (Song et al. 2021, App. D.2):
        the density of the probability-flow ODE model at t = t_eps. Exact trace for D ≤ 16, else Hutchinson."""
        self.check_input(x, cond)
        y = self.check_cond(x.shape[0], cond)
        trace = trace or ("exact" if self.info.dim <= 16 else "hutchinson")
        if self.info.discrete:
            w = 2.0 / (self.info.num_levels - 1)
            z = self.to_model(x) + (torch.rand(x.shape, generator=generator).to(self.device) - 0.5) * w
            corr = self.info.dim * math.log(w)
        else:
            z, corr = self.to_model(x), self.log_scale_correction()
        res = ode_log_prob(self.pf_drift(y, guidance), z, self.config.t_eps, 1.0, self.prior_log_prob,
                           method=sampler, steps=steps, trace=trace, generator=generator, rtol=rtol, atol=atol)
        self.last_nfe = res.nfe
        return res.log_prob + corr

    def likelihood_info(self, trace=None, sampler="dopri5", **options):
        trace = trace or ("exact" if self.info.dim <= 16 else "hutchinson")
        return {"kind": "estimate", "units": "nats/example", "model": "probability-flow ODE (not the reverse SDE)",
                "trace": trace, "solver": sampler, "t_eps": self.config.t_eps,
                "why_estimate": "numerical ODE solution (error of either sign); the density is that of the "
                                "ODE flow, which differs from the SDE sampler's unless s_θ is the true score"
                                + ("; Hutchinson trace: unbiased, noisy" if trace == "hutchinson" else "")}


__all__ = ["NCSN", "ScoreSDE", "annealed_level"]
