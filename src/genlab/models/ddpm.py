"""Denoising diffusion probabilistic models (Ho et al. 2020) with DDIM sampling (Song et al. 2021a),
learned variances (Nichol & Dhariwal 2021), v-prediction (Salimans & Ho 2022) and guidance.

Training (Ho et al. Alg. 1): ``t ~ U{0..T−1}``, ``ε ~ N(0, I)``, ``x_t = √ᾱ_t x_0 + √(1−ᾱ_t) ε``,
``L_simple = ‖target − net(x_t, t)‖²`` with target ε, x₀ or v (``parameterization``).
With ``variance="learned"`` the network also outputs ``v`` and
``log σ²_t = ½(v+1) log β_t + ½(1−v) log β̃_t`` (Nichol & Dhariwal eq. 15), trained by
``L_hybrid = L_simple + λ L_vlb`` (eq. 16, λ = ``vlb_weight``, mean stopped in L_vlb).

Sampling: ``sampler="ddpm"`` — ancestral steps ``x_{t−1} ~ N(μ_θ(x_t, t), σ²_t I)`` on any subset of
the T steps (the respaced process, ᾱ'_i = ᾱ_{τ_i}); ``sampler="ddim"`` —
``x_{τ_{i−1}} = √ᾱ_{i−1} x̂_0 + √(1 − ᾱ_{i−1} − σ_i²) ε̂ + σ_i z``,
``σ_i = η √((1−ᾱ_{i−1})/(1−ᾱ_i)) √(1 − ᾱ_i/ᾱ_{i−1})`` (Song et al. 2021a eq. 12, 16); η = 1 is DDPM's
posterior variance, η = 0 deterministic. :meth:`DDPM.ddim_invert` runs the η = 0 map backwards.

Likelihood (``kind="bound"``): the variational bound (Ho et al. eq. 5)
``−log p(x_0) ≤ KL(q(x_T|x_0) ‖ N(0,I)) + Σ_{t≥1} KL(q(x_{t−1}|x_t,x_0) ‖ p_θ(x_{t−1}|x_t)) − log p_θ(x_0|x_1)``,
with a discretised-Gaussian decoder for discrete data (Ho et al. eq. 13), so the bound is on the
probability mass −log P(x) of the integer levels; for continuous data a Gaussian decoder density.

Data: discrete levels k ∈ 0..K−1 map to ``2k/(K−1) − 1`` ∈ [−1, 1]; continuous data are multiplied
by ``x_scale`` (the change of scale is accounted for in ``log_prob``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..data.base import DataInfo
from ..nn.unet import FourierInputNet, TimeMLP, UNet
from ..sampling.guidance import classifier_free, classifier_log_prob_grad
from .base import GenerativeModel, ModelError
from .registry import register
from .schedules import (DiffusionSchedule, eps_to_x0, gaussian_kl, make_betas, to_eps_x0, v_target)

PARAMETERIZATIONS = ("eps", "x0", "v", "levels", "mixture")
MIXTURE_OUT = 5   # parameterization="mixture": outputs per pixel (3 logits, μ, log s)
VARIANCES = ("fixed_small", "fixed_large", "learned")


# ---------------------------------------------------------------------------------------------------------
# Shared by the diffusion, score and flow-matching families: network config, data scaling, conditions.
# ---------------------------------------------------------------------------------------------------------
@dataclass
class NetConfig:
    """Denoiser network (``mlp`` for vectors, ``unet`` for images) and condition handling."""
    network: str = "mlp"                 # mlp | unet
    width: int = 128                     # mlp
    depth: int = 3                       # mlp residual blocks
    emb_dim: int = 64                    # mlp time-embedding size
    embedding: str = "sinusoidal"        # sinusoidal | fourier
    channels: int = 32                   # unet base channels
    channel_mult: tuple[int, ...] = (1, 2)
    num_res_blocks: int = 1
    attention: bool = True               # self-attention at the lowest U-Net resolution
    dropout: float = 0.0
    cond_drop: float = 0.1               # classifier-free guidance: p(drop the label) in training
    x_scale: float = 1.0                 # continuous data: the network sees x · x_scale
    x_fourier: int = 0                   # mlp: F random Fourier features of x as extra inputs (0 = off)
    x_fourier_sigma: float = 1.0         # their frequencies B ~ N(0, σ²) (cycles per unit of model space)


def default_net_config(cfg, info: DataInfo):
    """Fit the network to the data: U-Net for images, MLP otherwise."""
    if info.modality == "image" and len(info.shape) == 3:
        cfg.network = "unet"
        H = info.shape[1]
        cfg.channel_mult = (1, 2) if H <= 8 else (1, 2, 2)
    return cfg


def check_diffusable(cls, info: DataInfo):
    if info.modality == "text" or (info.discrete and info.num_levels > 256):
        raise ModelError(f"{cls.name} models continuous vectors or images with at most 256 grey levels; "
                         f"got {info.modality} data with {info.num_levels} levels (use an autoregressive model)")
    if info.cond == "continuous":
        raise ModelError(f"{cls.name} supports label conditions only (cond='label'), got continuous conditions")


class DenoiserFamily(GenerativeModel):
    """Base of ``ddpm``, ``ncsn``, ``score-sde`` and ``flow-matching``: builds ``self.net(x, t, y)``
    (t ∈ [0, 1]; y ∈ 0..num_classes with ``num_classes`` the null label), maps data to the model's
    continuous space and back, and validates conditions."""

    conditional_ok = True

    @classmethod
    def default_config(cls, info):
        return default_net_config(cls.Config(), info)

    @classmethod
    def check_data(cls, info):
        check_diffusable(cls, info)

    def build_net(self, out_mult: int = 1):
        cfg, info = self.config, self.info
        self.num_classes = info.num_classes if info.cond == "label" else None
        if cfg.x_fourier and (cfg.network != "mlp" or cfg.x_fourier < 0):
            raise ModelError(f"x_fourier needs network='mlp' and a count ≥ 0, got {cfg.network!r}, {cfg.x_fourier}")
        if cfg.network == "unet":
            if len(info.shape) != 3:
                raise ModelError(f"network='unet' needs images (C, H, W), got shape {info.shape}; use network='mlp'")
            return UNet(info.shape[0], cfg.channels, cfg.channel_mult, cfg.num_res_blocks, cfg.attention,
                        self.num_classes, cfg.dropout, cfg.embedding, out_channels=info.shape[0] * out_mult)
        if cfg.network == "mlp":
            D = info.dim
            if cfg.x_fourier:   # γ(x) = [x, sin 2πBx, cos 2πBx] as the MLP's input (see FourierInputNet)
                return FourierInputNet(TimeMLP(D + 2 * cfg.x_fourier, cfg.width, cfg.depth, cfg.emb_dim,
                                               self.num_classes, embedding=cfg.embedding, out_dim=D * out_mult),
                                       D, cfg.x_fourier, cfg.x_fourier_sigma)
            return TimeMLP(D, cfg.width, cfg.depth, cfg.emb_dim, self.num_classes, embedding=cfg.embedding,
                           out_dim=D * out_mult)
        raise ModelError(f"unknown network {cfg.network!r}; choose 'mlp' or 'unet'")

    # -- network call with flattening for MLPs on images ---------------------------------------------------
    def _net(self, x, t, y):
        if isinstance(self.net, TimeMLP) and x.ndim > 2:
            return self.net(x.flatten(1), t, y).reshape(x.shape[0], -1, *x.shape[2:])
        return self.net(x, t, y)

    def net_eval(self, x, t, y=None, guidance: float = 1.0):
        """Network output at model-space ``x`` and float time ``t`` (B,) with classifier-free guidance."""
        if self.num_classes is None:
            return self._net(x, t, None)
        return classifier_free(self._net, x, t, y, guidance, self.num_classes)

    def drop_labels(self, y):
        """Replace labels by the null token with probability ``cond_drop`` (classifier-free training)."""
        if y is None or self.num_classes is None:
            return None if self.num_classes is None else y
        if self.training and self.config.cond_drop > 0:
            drop = torch.rand(y.shape, device=y.device) < self.config.cond_drop
            y = torch.where(drop, torch.full_like(y, self.num_classes), y)
        return y

    def check_cond(self, n: int, cond):
        """``cond`` → (n,) long labels or None; clear errors otherwise."""
        if cond is None:
            return None
        if self.num_classes is None:
            raise ModelError(f"{self.name} was trained without labels; do not pass cond=")
        c = torch.as_tensor(cond, device=self.device).long()
        if c.ndim == 0:
            c = c.expand(n)
        if c.shape != (n,):
            raise ModelError(f"cond must be one label or {n} labels, got shape {tuple(c.shape)}")
        if int(c.min()) < 0 or int(c.max()) >= self.num_classes:
            raise ModelError(f"labels must lie in 0..{self.num_classes - 1}")
        return c

    # -- data ↔ model space ---------------------------------------------------------------------------------
    def to_model(self, x: torch.Tensor) -> torch.Tensor:
        if self.info.discrete:
            return 2 * x.float() / (self.info.num_levels - 1) - 1
        return (x if x.is_floating_point() else x.float()) * self.config.x_scale

    def from_model(self, z: torch.Tensor) -> torch.Tensor:
        if self.info.discrete:
            K = self.info.num_levels
            return ((z + 1) / 2 * (K - 1)).round().clamp(0, K - 1).long()
        return z / self.config.x_scale

    @property
    def net_dtype(self) -> torch.dtype:
        """The network's floating dtype (float64 models for exact checks); float32 if it has no tensors."""
        return next((p.dtype for p in list(self.net.parameters()) + list(self.net.buffers()) if p.is_floating_point()),
                    torch.float32)

    def randn(self, n: int, generator=None) -> torch.Tensor:
        """Standard normal noise of the data's shape in the network's dtype."""
        return torch.randn((n, *self.info.shape), generator=generator, dtype=self.net_dtype).to(self.device)

    def log_scale_correction(self) -> float:
        """log |det d(model space)/d(data)| for continuous data: D · log x_scale."""
        return 0.0 if self.info.discrete else self.info.dim * math.log(self.config.x_scale)


# ---------------------------------------------------------------------------------------------------------
def discretized_gaussian_log_prob(x: torch.Tensor, mean: torch.Tensor, log_scale: torch.Tensor,
                                  num_levels: int) -> torch.Tensor:
    """log P(level) for x = 2k/(K−1) − 1 under N(mean, e^{2 log_scale}) integrated over the bin
    ``[x − δ, x + δ]``, δ = 1/(K−1), with the outer bins extended to ±∞ (Ho et al. 2020 eq. 13).
    Elementwise, nats. (Written here because ``models/likelihood.py`` did not exist yet.)"""
    delta = 1.0 / (num_levels - 1)
    inv = torch.exp(-log_scale)
    upper = (x + delta - mean) * inv
    lower = (x - delta - mean) * inv
    normal = torch.distributions.Normal(0.0, 1.0)
    cdf_up, cdf_lo = normal.cdf(upper), normal.cdf(lower)
    log_cdf_up = torch.log(cdf_up.clamp(min=1e-12))                 # bottom bin: P(z ≤ upper)
    log_one_minus_cdf_lo = torch.log((1 - cdf_lo).clamp(min=1e-12))  # top bin: P(z ≥ lower)
    log_mid = torch.log((cdf_up - cdf_lo).clamp(min=1e-12))
    return torch.where(x < -1 + 1e-3, log_cdf_up, torch.where(x > 1 - 1e-3, log_one_minus_cdf_lo, log_mid))


def mixture_posterior(out: torch.Tensor, xt: torch.Tensor, a: torch.Tensor, v: torch.Tensor):
    """Posterior of a clean pixel x given ``x_t ~ N(a x, v)`` under the per-pixel prior
    ``π_lo δ(−1) + π_hi δ(+1) + π_g N(μ, s²)`` whose 5 parameters per pixel (three logits, μ, log s) are
    ``out`` (B, C·5, …) — the ``mixture`` parameterisation of ``ddpm`` (x = x₀) and ``flow-matching``
    (x = x₁). By Bayes' rule the weights are ``w_i ∝ π_i m_i(x_t)`` with the marginals ``m_lo = N(x_t; −a, v)``,
    ``m_hi = N(x_t; a, v)``, ``m_g = N(x_t; a μ, a² s² + v)``; the Gaussian part's posterior is
    ``N(μ + a s² (x_t − a μ)/(a² s² + v), s² v/(a² s² + v))``. Returns the log weights (B, C, 3, …) of
    (δ(−1), δ(+1), Gaussian) and that posterior's mean and variance (B, C, …); ``a``, ``v`` broadcast to
    ``xt``, v > 0. The posterior mean is ``−w_lo + w_hi + w_g · mean``."""
    B, C = xt.shape[0], xt.shape[1]
    o = out.reshape(B, C, MIXTURE_OUT, *xt.shape[2:])
    logits, mu, log_s = o[:, :, :3], o[:, :, 3], o[:, :, 4].clamp(-9.0, 3.0)
    s2 = torch.exp(2 * log_s)
    V = a * a * s2 + v
    lm = torch.stack([-(xt + a) ** 2 / (2 * v) - 0.5 * torch.log(v).expand_as(xt),
                      -(xt - a) ** 2 / (2 * v) - 0.5 * torch.log(v).expand_as(xt),
                      -(xt - a * mu) ** 2 / (2 * V) - 0.5 * torch.log(V)], dim=2)
    return torch.log_softmax(logits + lm, dim=2), mu + a * s2 * (xt - a * mu) / V, s2 * v / V


def mixture_mean(log_w: torch.Tensor, mean_g: torch.Tensor) -> torch.Tensor:
    """``E[x | x_t] = −w_lo + w_hi + w_g · mean_g`` from :func:`mixture_posterior`'s output."""
    w = log_w.exp()
    return w[:, :, 1] - w[:, :, 0] + w[:, :, 2] * mean_g


def mixture_level_log_prob(log_w: torch.Tensor, mean_g: torch.Tensor, var_g: torch.Tensor, x: torch.Tensor,
                           num_levels: int) -> torch.Tensor:
    """log P(level of x) under a :func:`mixture_posterior` (log weights, Gaussian part's mean and variance):
    ``w_lo [k = 0] + w_hi [k = K−1] + w_g · (the Gaussian part discretised into the level bins, outer bins
    to ±∞)``, a distribution over the K levels (it sums to one); x is in model space (levels at
    2k/(K−1) − 1). Elementwise, nats."""
    lg = log_w[:, :, 2] + discretized_gaussian_log_prob(x, mean_g, 0.5 * torch.log(var_g), num_levels)
    return torch.where(x < -1 + 1e-3, torch.logaddexp(log_w[:, :, 0], lg),
                       torch.where(x > 1 - 1e-3, torch.logaddexp(log_w[:, :, 1], lg), lg))


def spaced_timesteps(T: int, steps: int | None, timesteps=None) -> torch.Tensor:
    """Increasing subset τ of 0..T−1: ``timesteps`` as given, or ``steps`` evenly spaced incl. 0 and T−1."""
    if timesteps is not None:
        ts = torch.as_tensor(list(timesteps), dtype=torch.long).unique(sorted=True)
        if ts.numel() == 0 or int(ts.min()) < 0 or int(ts.max()) >= T:
            raise ModelError(f"timesteps must be a non-empty subset of 0..{T - 1}")
        return ts
    steps = T if steps is None else int(steps)
    if not 1 <= steps <= T:
        raise ModelError(f"steps must lie in 1..{T} (the model was trained with T={T}), got {steps}")
    if steps == 1:
        return torch.tensor([T - 1])
    return torch.linspace(0, T - 1, steps).round().long().unique(sorted=True)


@register("ddpm")
class DDPM(DenoiserFamily):
    """Denoising diffusion (DDPM/DDIM): ε/x₀/v prediction, fixed or learned variances, bound likelihood."""

    likelihood = "bound"

    @dataclass
    class Config(NetConfig):
        T: int = 1000
        schedule: str = "linear"            # linear | cosine
        parameterization: str = "eps"       # eps | x0 | v | levels | mixture (discrete data: x̂₀ = a posterior mean)
        variance: str = "fixed_small"       # fixed_small (β̃) | fixed_large (β) | learned
        vlb_weight: float = 0.001           # λ of the hybrid loss (variance="learned")
        clip_x0: bool = True                # clip x̂₀ to [−1, 1] when sampling discrete (image) data

    def __init__(self, info, config=None):
        super().__init__(info, config)
        c = self.config
        if c.parameterization not in PARAMETERIZATIONS:
            raise ModelError(f"parameterization must be one of {PARAMETERIZATIONS}, got {c.parameterization!r}")
        if c.variance not in VARIANCES:
            raise ModelError(f"variance must be one of {VARIANCES}, got {c.variance!r}")
        if c.parameterization in ("levels", "mixture") and not info.discrete:
            raise ModelError(f"parameterization={c.parameterization!r} needs discrete data (integer levels); "
                             "use eps, x0 or v")
        self.schedule = DiffusionSchedule(make_betas(c.schedule, c.T))
        # network outputs per data channel for the prediction (before a learned-variance channel)
        self.n_levels = {"levels": info.num_levels, "mixture": MIXTURE_OUT}.get(c.parameterization, 1)
        self.net = self.build_net(out_mult=self.n_levels + (1 if c.variance == "learned" else 0))
        self.last_nfe = 0

    @property
    def _param(self) -> str:
        """How ``_raw``'s prediction is read: the level / mixture posterior mean is returned as x̂₀."""
        return "x0" if self.config.parameterization in ("levels", "mixture") else self.config.parameterization

    # ---- the network's prediction at integer steps ----------------------------------------------------
    def _raw(self, xt, t, y, guidance=1.0):
        out = self.net_eval(xt, t.float() / self.config.T, y, guidance)
        C, K = xt.shape[1], self.n_levels
        pred, vv = (out[:, :C * K], out[:, C * K:]) if self.config.variance == "learned" else (out, None)
        if self.config.parameterization == "mixture":
            pred = self.mixture_posterior_mean(pred, xt, t)
        elif K > 1:
            pred = self.level_posterior_mean(pred, xt, t)
        return pred, vv

    def mixture_posterior_mean(self, out, xt, t):
        """``parameterization="mixture"``: x̂₀ = E[x₀ | x_t] under a per-pixel prior predicted by the network,
        ``π_lo δ(−1) + π_hi δ(+1) + π_g N(μ, s²)`` (outputs per pixel: three logits, μ, log s), and the exact
        Gaussian forward likelihood ``x_t | x₀ ~ N(a x₀, v)``, a = √ᾱ_t, v = 1 − ᾱ_t. By Bayes' rule the
        weights are ``w_i ∝ π_i m_i(x_t)`` with the marginals ``m_lo = N(x_t; −a, v)``, ``m_hi = N(x_t; a, v)``,
        ``m_g = N(x_t; a μ, a² s² + v)``, and ``x̂₀ = −w_lo + w_hi + w_g (μ + a s² (x_t − a μ)/(a² s² + v))``.
        The two point masses are the extreme levels, where most pixels of scanned digits lie (81 % of
        mnist5k's pixels are 0): at small t they are recognised exactly, which an ε-network cannot do to the
        precision the bound needs; the Gaussian covers the rest at the cost of 5 outputs per pixel (the
        ``levels`` posterior needs K, impractical at 256 levels)."""
        log_w, mean_g, _ = self._mixture_posterior(out, xt, t)
        return mixture_mean(log_w, mean_g)

    def _mixture_posterior(self, out, xt, t):
        """:func:`mixture_posterior` with this schedule's ``a = √ᾱ_t``, ``v = 1 − ᾱ_t``."""
        ab = self.schedule.at("alpha_bar", t, xt)
        return mixture_posterior(out, xt, ab.sqrt(), 1 - ab)

    def mixture_decoder_log_prob(self, x0, x1, y=None):
        """``parameterization="mixture"``: the decoder ``p_θ(x₀ | x_1)`` (t = 0) is the network's own posterior
        over the levels, ``w_lo [k = 0] + w_hi [k = K−1] + w_g · (the Gaussian part's posterior discretised
        into the level bins, outer bins to ±∞)`` — a distribution over the K levels (it sums to one). A
        discretised Gaussian around x̂₀ with the fixed σ₁ ≈ 0.007 would charge every black pixel
        −log Φ(δ/σ₁) ≈ 0.36 nats although the network is sure of it. Elementwise log P, nats."""
        t = torch.zeros(x1.shape[0], dtype=torch.long, device=x1.device)
        out = self.net_eval(x1, t.float() / self.config.T, y)
        C = x1.shape[1]
        return mixture_level_log_prob(*self._mixture_posterior(out[:, :C * MIXTURE_OUT], x1, t), x0,
                                      self.info.num_levels)

    def level_posterior_mean(self, logits, xt, t):
        """``parameterization="levels"``: x̂₀ = E[x₀ | x_t] under a per-pixel categorical over the K levels
        c_k = 2k/(K−1) − 1 whose logits are the network's prior term plus the exact Gaussian likelihood
        of the forward process, ``log p(k | x_t) = ℓ_k(x_t, t) − (x_t − √ᾱ_t c_k)² / (2(1 − ᾱ_t)) + const``.
        At small t the likelihood term rounds x_t to its level exactly (the ε-network's hardest job on
        discrete data), at large t the network's term carries the image model."""
        K, B, C = self.n_levels, xt.shape[0], xt.shape[1]
        lg = logits.reshape(B, C, K, *xt.shape[2:])
        c = torch.linspace(-1, 1, K, dtype=xt.dtype, device=xt.device).reshape(1, 1, K, *([1] * (xt.ndim - 2)))
        ab = self.schedule.at("alpha_bar", t, xt).unsqueeze(1)
        loglik = -(xt.unsqueeze(2) - ab.sqrt() * c) ** 2 / (2 * (1 - ab))
        return (torch.softmax(lg + loglik, dim=2) * c).sum(2)

    def p_mean_var(self, xt, t, y=None, guidance=1.0, sched=None, net_t=None, clip=False, classifier=None,
                   classifier_scale=0.0):
        """Mean, log variance, ε̂ and x̂₀ of ``p_θ(x_{t−1} | x_t)``.

        ``sched``/``t`` index the (possibly respaced) process whose posterior is used; ``net_t`` is the
        original step fed to the network (defaults to ``t``)."""
        sched = sched or self.schedule
        net_t = t if net_t is None else net_t
        pred, vv = self._raw(xt, net_t, y, guidance)
        ab = sched.at("alpha_bar", t, xt)
        eps, x0 = to_eps_x0(pred, xt, ab, self._param)
        if classifier is not None and classifier_scale and y is not None:
            # ε̃ = ε − s √(1−ᾱ) ∇ log p_φ(y | x_t)   (Dhariwal & Nichol 2021, Alg. 2)
            grad = classifier_log_prob_grad(classifier.logits, xt, net_t.float() / self.config.T, y)
            eps = eps - classifier_scale * (1 - ab).sqrt() * grad
            x0 = eps_to_x0(xt, eps, ab)
        if clip:
            x0 = x0.clamp(-1, 1)
            eps = (xt - ab.sqrt() * x0) / (1 - ab).sqrt()
        mean, _ = sched.q_posterior(x0, xt, t)
        if self.config.variance == "learned":
            frac = (vv + 1) / 2
            logvar = frac * torch.log(sched.at("betas", t, xt)) + (1 - frac) * sched.at("post_logvar", t, xt)
        elif self.config.variance == "fixed_large":
            # β_t, with β̃_1 at t = 0 (Ho et al.'s choice for the decoder step)
            lv = torch.log(torch.cat([sched.post_var[1:2] if sched.T > 1 else sched.betas[:1], sched.betas[1:]]))
            logvar = lv[t.long()].to(xt.dtype).reshape(-1, *([1] * (xt.ndim - 1))).expand_as(xt)
        else:
            logvar = sched.at("post_logvar", t, xt).expand_as(xt)
        return mean, logvar, eps, x0

    # ---- training ------------------------------------------------------------------------------------------
    def loss(self, batch, phase="main"):
        x0 = self.to_model(batch["x"])
        y = self.drop_labels(batch.get("y"))
        B = x0.shape[0]
        t = torch.randint(0, self.config.T, (B,), device=x0.device)
        eps = torch.randn_like(x0)
        xt = self.schedule.q_sample(x0, t, eps)
        pred, vv = self._raw(xt, t, y)
        ab = self.schedule.at("alpha_bar", t, x0)
        if self.config.parameterization in ("levels", "mixture"):   # L_simple on the ε implied by x̂₀
            mse = ((to_eps_x0(pred, xt, ab, "x0")[0] - eps) ** 2).mean()
        else:
            param = self.config.parameterization
            target = eps if param == "eps" else x0 if param == "x0" else v_target(x0, eps, ab)
            mse = ((pred - target) ** 2).mean()
        if self.config.variance != "learned":
            return mse
        # L_vlb with the mean stopped (Nichol & Dhariwal §3.1): only the variance learns from it
        vlb = self._vlb_terms(x0, xt, t, pred.detach(), vv).mean() / x0[0].numel()
        return {"loss": mse + self.config.vlb_weight * vlb, "mse": mse.detach(), "vlb": vlb.detach()}

    def _vlb_terms(self, x0, xt, t, pred, vv):
        """Per-example L_t (nats): KL(q(x_{t−1}|x_t,x_0) ‖ p_θ) for t ≥ 1, −log p_θ(x_0|x_1) for t = 0."""
        s = self.schedule
        ab = s.at("alpha_bar", t, xt)
        _, x0_hat = to_eps_x0(pred, xt, ab, self._param)
        mean, _ = s.q_posterior(x0_hat, xt, t)
        frac = (vv + 1) / 2
        logvar = frac * torch.log(s.at("betas", t, xt)) + (1 - frac) * s.at("post_logvar", t, xt)
        tm, tv = s.q_posterior(x0, xt, t)
        kl = gaussian_kl(tm, torch.log(tv.clamp_min(1e-20)), mean, logvar).flatten(1).sum(1)
        dec = -self._decoder_log_prob(x0, mean, logvar).flatten(1).sum(1)
        return torch.where(t == 0, dec, kl)

    def _decoder_log_prob(self, x0, mean, logvar):
        if self.info.discrete:
            return discretized_gaussian_log_prob(x0, mean, 0.5 * logvar, self.info.num_levels)
        return -0.5 * (math.log(2 * math.pi) + logvar + (x0 - mean) ** 2 * torch.exp(-logvar))

    # ---- likelihood: the variational bound ------------------------------------------------------------
    @torch.no_grad()
    def log_prob(self, x, cond=None, batch_size: int = 1000, progress: bool = False, return_terms: bool = False,
                 bound_steps: int | None = None, generator=None, **options):
        """Negative variational bound (nats per example; ``kind="bound"``: ≤ the true log-likelihood).

        ``bound_steps=None`` evaluates every term (T network evaluations per example, one noise draw
        each). ``bound_steps=K`` (< T) is a stratified, unbiased estimate of the same sum with K + 1
        evaluations: L_0 (the decoder) exactly, and for each of K equal strata of 1..T−1 one step drawn
        uniformly per example, its term weighted by the stratum's size. ``return_terms=True`` also
        returns the (B, T+1) per-step terms [L_0 .. L_{T−1}, L_T] (weighted, zeros where not drawn)."""
        self.check_input(x, cond)
        y = self.check_cond(x.shape[0], cond)
        g = generator if generator is not None else torch.Generator().manual_seed(0)
        outs, terms_all = [], []
        for i in range(0, x.shape[0], batch_size):
            xb = self.to_model(x[i:i + batch_size])
            yb = None if y is None else y[i:i + batch_size]
            terms = self._bound_terms(xb, yb, progress, bound_steps, g)
            terms_all.append(terms)
            outs.append(-terms.sum(1) + self.log_scale_correction())
        lp = torch.cat(outs)
        return (lp, torch.cat(terms_all)) if return_terms else lp

    def _bound_term(self, x0, y, t, noise):
        """L_t per example at steps ``t`` (B,): the decoder term where t = 0, the KL elsewhere."""
        s = self.schedule
        xt = s.q_sample(x0, t, noise)
        mean, logvar, _, _ = self.p_mean_var(xt, t, y)
        if self.config.parameterization == "mixture" and bool((t == 0).any()):
            dec = -self.mixture_decoder_log_prob(x0, xt, y).flatten(1).sum(1).double()
        else:
            dec = -self._decoder_log_prob(x0, mean, logvar).flatten(1).sum(1).double()
        tm, tv = s.q_posterior(x0, xt, t)
        kl = gaussian_kl(tm, torch.log(tv.clamp_min(1e-30)), mean, logvar).flatten(1).sum(1).double()
        return torch.where(t == 0, dec, kl)

    def _bound_terms(self, x0, y, progress=False, bound_steps=None, g=None):
        s, T, B = self.schedule, self.config.T, x0.shape[0]
        dev = x0.device
        terms = torch.zeros(B, T + 1, dtype=torch.float64, device=dev)
        # L_T = KL(q(x_T|x_0) ‖ N(0, I))
        mT, vT = s.q_mean_var(x0, torch.full((B,), T - 1, device=dev))
        terms[:, T] = gaussian_kl(mT, torch.log(vT), torch.zeros_like(mT), torch.zeros_like(mT)).flatten(1).sum(1)
        g = g if g is not None else torch.Generator().manual_seed(0)
        if bound_steps is None or bound_steps >= T - 1:
            plan = [(torch.full((B,), k, dtype=torch.long), 1.0) for k in range(T)]
        else:
            K = int(bound_steps)
            if K < 1:
                raise ModelError(f"bound_steps must be ≥ 1, got {bound_steps}")
            edges = torch.linspace(1, T, K + 1).round().long()      # strata [e_j, e_{j+1}) of 1..T−1
            plan = [(torch.zeros(B, dtype=torch.long), 1.0)]
            for a, b in zip(edges[:-1].tolist(), edges[1:].tolist()):
                if b > a:
                    plan.append((torch.randint(a, b, (B,), generator=g), float(b - a)))
        it = plan
        if progress:
            from tqdm.auto import tqdm
            it = tqdm(plan, desc="ddpm bound", leave=False)
        for t, w in it:
            t = t.to(dev)
            noise = torch.randn(x0.shape, generator=g).to(x0)
            val = self._bound_term(x0, y, t, noise) * w
            terms.scatter_add_(1, t[:, None], val[:, None])
        return terms

    def likelihood_info(self, **options):
        unit = "nats/example (bound on −log P of the integer levels)" if self.info.discrete else "nats/example"
        return {"kind": "bound", "units": unit, "T": self.config.T, "estimator": ("one noise draw per step, all T steps" if options.get("bound_steps") is None else
                              f"stratified: L_0 + {options['bound_steps']} strata of 1..T−1, one step and noise draw each"),
                "decoder": "discretised Gaussian" if self.info.discrete else "Gaussian density"}

    # ---- sampling ------------------------------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, n: int, cond=None, generator=None, guidance: float = 1.0, steps: int | None = None,
               sampler: str = "ddpm", eta: float | None = None, timesteps=None, classifier=None,
               classifier_scale: float = 0.0, x_T: torch.Tensor | None = None, clip: bool | None = None,
               progress: bool = False, return_model_space: bool = False):
        """Draw ``n`` samples. ``sampler``: ``ddpm`` (ancestral; η is 1 by construction) or ``ddim``
        (``eta`` default 0). ``steps``: number of network evaluations (a subset of the T steps, or
        ``timesteps=`` explicitly). ``guidance``: classifier-free weight w (0 unconditional, 1
        conditional). ``classifier`` + ``classifier_scale``: classifier guidance. NFE → ``self.last_nfe``."""
        if sampler not in ("ddpm", "ddim"):
            raise ModelError(f"ddpm samplers are 'ddpm' and 'ddim', got {sampler!r}")
        y = self.check_cond(n, cond)
        if classifier is not None and y is None:
            raise ModelError("classifier guidance needs cond= (the labels to guide towards)")
        taus = spaced_timesteps(self.config.T, steps, timesteps).to(self.device)
        clip = (self.info.discrete and self.config.clip_x0) if clip is None else clip
        x = self.randn(n, generator) if x_T is None else x_T.to(self.device).float()
        ab_full = self.schedule.alpha_bar
        if sampler == "ddpm":
            sub = DiffusionSchedule(1 - ab_full[taus] / torch.cat([ab_full.new_ones(1), ab_full[taus][:-1]]))
        it = list(reversed(range(len(taus))))
        if progress:
            from tqdm.auto import tqdm
            it = tqdm(it, desc=f"{sampler} sampling", leave=False)
        for i in it:
            t_net = torch.full((n,), int(taus[i]), device=self.device, dtype=torch.long)
            if sampler == "ddpm":
                ti = torch.full((n,), i, device=self.device, dtype=torch.long)
                mean, logvar, _, _ = self.p_mean_var(x, ti, y, guidance, sched=sub, net_t=t_net, clip=clip,
                                                     classifier=classifier, classifier_scale=classifier_scale)
                x = mean if i == 0 else mean + torch.exp(0.5 * logvar) * self._noise(x, generator)
            else:
                e = 0.0 if eta is None else float(eta)
                _, _, eps, x0 = self.p_mean_var(x, t_net, y, guidance, clip=clip, classifier=classifier,
                                                classifier_scale=classifier_scale)
                x = self.ddim_step(x, eps, x0, float(ab_full[taus[i]]), float(ab_full[taus[i - 1]]) if i > 0 else 1.0,
                                   e, generator)
        self.last_nfe = len(taus) * (2 if (y is not None and guidance not in (0, 1)) else 1)
        return x if return_model_space else self.from_model(x)

    def _noise(self, x, generator):
        return torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)

    def ddim_sigma(self, ab: float, ab_prev: float, eta: float) -> float:
        """``σ = η √((1−ᾱ_prev)/(1−ᾱ)) √(1 − ᾱ/ᾱ_prev)`` (Song et al. 2021a eq. 16)."""
        return eta * math.sqrt((1 - ab_prev) / (1 - ab)) * math.sqrt(max(1 - ab / ab_prev, 0.0))

    def ddim_step(self, x, eps, x0, ab: float, ab_prev: float, eta: float, generator=None):
        """``x_prev = √ᾱ_prev x̂₀ + √(1−ᾱ_prev−σ²) ε̂ + σ z`` (Song et al. 2021a eq. 12)."""
        sigma = self.ddim_sigma(ab, ab_prev, eta)
        x_prev = math.sqrt(ab_prev) * x0 + math.sqrt(max(1 - ab_prev - sigma**2, 0.0)) * eps
        if sigma > 0:
            x_prev = x_prev + sigma * self._noise(x, generator)
        return x_prev

    @torch.no_grad()
    def ddim_invert(self, x, cond=None, steps: int | None = None, timesteps=None, guidance: float = 1.0):
        """Deterministic DDIM inversion (η = 0 run forwards): data → x_{τ_last} ≈ the noise that the
        η = 0 sampler maps back to ``x``; ``x_{τ_{i+1}} = √ᾱ_{i+1} x̂₀(x_{τ_i}) + √(1−ᾱ_{i+1}) ε̂(x_{τ_i})``."""
        y = self.check_cond(x.shape[0], cond)
        taus = spaced_timesteps(self.config.T, steps, timesteps).to(self.device)
        ab_full = self.schedule.alpha_bar
        z = self.to_model(x)
        B = z.shape[0]
        for i in range(len(taus)):
            # ε̂ at the current point (τ_{i−1}; at i = 0 the current point is the data, ᾱ = 1, and ε̂ is read at τ_0)
            t_eval = int(taus[max(i - 1, 0)])
            ab_cur = 1.0 if i == 0 else float(ab_full[taus[i - 1]])
            pred, _ = self._raw(z, torch.full((B,), t_eval, device=self.device, dtype=torch.long), y, guidance)
            ab_eval = torch.full((B,) + (1,) * (z.ndim - 1), float(ab_full[t_eval]), device=z.device)
            eps, _ = to_eps_x0(pred, z, ab_eval, self._param)
            x0 = (z - math.sqrt(1 - ab_cur) * eps) / math.sqrt(ab_cur)
            ab_next = float(ab_full[taus[i]])
            z = math.sqrt(ab_next) * x0 + math.sqrt(1 - ab_next) * eps
        return z


# ---------------------------------------------------------------------------------------------------------
@register("noise-classifier")
class NoiseClassifier(GenerativeModel):
    """Noise-conditional classifier ``p_φ(y | x_t, t)`` for classifier guidance (Dhariwal & Nichol 2021):
    trained by ``gl.train`` with the cross-entropy on inputs noised by the same DDPM schedule."""

    likelihood = "none"
    conditional_ok = True

    @dataclass
    class Config:
        T: int = 1000
        schedule: str = "linear"
        width: int = 256
        depth: int = 3
        emb_dim: int = 64
        x_scale: float = 1.0                # must match the guided model's x_scale

    @classmethod
    def check_data(cls, info):
        if info.cond != "label":
            raise ModelError("noise-classifier needs labelled data (cond='label')")
        check_diffusable(cls, info)

    def __init__(self, info, config=None):
        super().__init__(info, config)
        c = self.config
        self.schedule = DiffusionSchedule(make_betas(c.schedule, c.T))
        self.net = TimeMLP(info.dim, c.width, c.depth, c.emb_dim, None, out_dim=info.num_classes)

    def to_model(self, x):
        return DenoiserFamily.to_model(self, x)

    def logits(self, x_model, t_float):
        """Logits from model-space ``x_t`` and ``t/T`` ∈ [0, 1]."""
        return self.net(x_model.flatten(1), t_float)

    def loss(self, batch, phase="main"):
        x0 = self.to_model(batch["x"])
        t = torch.randint(0, self.config.T, (x0.shape[0],), device=x0.device)
        xt = self.schedule.q_sample(x0, t, torch.randn_like(x0))
        logits = self.logits(xt, t.float() / self.config.T)
        ce = F.cross_entropy(logits, batch["y"])
        return {"loss": ce, "acc": (logits.argmax(1) == batch["y"]).float().mean()}

    @torch.no_grad()
    def sample(self, n, cond=None, generator=None, **options):
        raise ModelError("noise-classifier is a guidance classifier, not a generative model; pass it to "
                         "ddpm.sample(..., classifier=clf, classifier_scale=s)")


__all__ = ["DDPM", "NoiseClassifier", "DenoiserFamily", "NetConfig", "discretized_gaussian_log_prob",
           "spaced_timesteps"]
