"""Generative adversarial networks trained through the one engine by declared phases.

``phases()`` returns ``[Phase("disc", D params, repeats=n_critic, lr=lr_d, betas),
Phase("gen", G params, lr=lr_g, betas)]``: per training step the engine runs the critic
``n_critic`` times (each on a fresh real batch), then the generator once. Different ``lr_d`` and
``lr_g`` give the two-time-scale update rule (TTUR, Heusel et al. 2017). ``likelihood = "none"``.

With d = D(x) the critic's raw output (a logit for the classifier losses), x ~ data, x̃ = G(z):

- ``minimax`` (Goodfellow et al. 2014, eq. 1):  L_D = −log σ(d) − log(1 − σ(d̃)) = softplus(−d) + softplus(d̃);
  L_G = log(1 − σ(d̃)) = −softplus(d̃).
- ``ns`` non-saturating (Goodfellow et al. 2014, §3): L_D as above; L_G = −log σ(d̃) = softplus(−d̃).
- ``lsgan`` (Mao et al. 2017, eq. 9, a=0, b=c=1): L_D = ½(d − 1)² + ½d̃²;  L_G = ½(d̃ − 1)².
- ``wgan`` (Arjovsky et al. 2017, Alg. 1): L_D = −d + d̃, weights clipped to [−c, c];  L_G = −d̃.
  The engine has no post-step hook, so the clip is applied at the start of every ``loss()`` call:
  every critic evaluation uses clipped weights (the last update of a run stays unclipped until the
  next call, which nothing reads).
- ``wgan-gp`` (Gulrajani et al. 2017, eq. 3): L_D = −d + d̃ + λ (‖∇_x̂ D(x̂)‖₂ − 1)²,
  x̂ = εx + (1 − ε)x̃, ε ~ U[0, 1];  L_G = −d̃.
- ``hinge`` (Lim & Ye 2017; Miyato et al. 2018) with spectral normalisation of every critic layer:
  L_D = max(0, 1 − d) + max(0, 1 + d̃);  L_G = −d̃.

R1 (``r1=γ``, Mescheder, Geiger & Nowozin 2018, "Which training methods for GANs actually converge?",
eq. 9), for the classifier losses (minimax, ns, lsgan, hinge): the critic's loss gains the zero-centred
penalty on real data  (γ/2) E_{x~p_data} ‖∇_x D(x)‖²  (on the packed input when ``pac > 1``). At the
equilibrium p_g = p_data the optimal critic is flat on the data, so the penalty does not move the
equilibrium; it damps the critic's oscillation around it, which is their proof of local convergence
where the unregularised GAN cycles.

Logged extras: ``d_real``, ``d_fake`` (mean critic outputs) and, for the Wasserstein losses,
``wasserstein`` = E D(x) − E D(x̃), the critic's estimate of W₁ (up to the Lipschitz constant).

Nets: MLPs for vectors, DCGAN-style strided convolutions (``nn/conv.py``) for images.
Conditional: the label (one-hot) is concatenated to z; the critic is a projection discriminator
(Miyato & Koyama 2018): D(x, y) = ψ(φ(x)) + ⟨embed(y), φ(x)⟩.

PacGAN (``pac=m``, Lin et al. 2018, §3) against mode collapse (unconditional): the critic D_m sees m
independent samples of ONE source concatenated, (x₁, …, x_m) ∈ R^{m·d} (images: along channels):
  L_D = E_{x₁..x_m ~ p_data} ℓ_real(D_m(x₁, …, x_m)) + E_{z₁..z_m} ℓ_fake(D_m(G(z₁), …, G(z_m))),
  L_G = E_{z₁..z_m} ℓ_gen(D_m(G(z₁), …, G(z_m))),
with ℓ the chosen loss's terms above. A batch of B samples gives ⌊B/m⌋ packs of consecutive samples
(the loader shuffles the real data; the z are i.i.d.), so the critic sees B/m inputs per batch. The
packed distribution p^{⊗m} separates a generator that drops modes more sharply (its total variation
to the data's grows with m), which is PacGAN's argument.
Discriminator rejection sampling (``sample(n, drs=True)``, Azadi et al. 2019): for minimax / ns / lsgan
the optimal critic gives the density ratio p_data/p_g (``log_density_ratio``); samples of G are kept
with probability e^{r(x) − max r}, which turns p_g into p_data where the critic is optimal. It removes
samples (e.g. the generator's bridges between modes), it cannot add modes the generator misses.
Discrete data (levels) are scaled to [−1, 1] for the critic; the generator's output is linear (the
critic learns the data's range) and ``sample`` clamps to [−1, 1] and rounds back to levels. A final
tanh saturated on digits: the critic won early, every output went to −1 and the generator's
gradient vanished (measured: gradient norm 0.000, all-black samples, FD 746 after 1500 steps).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..data.base import DataInfo
from ..nn.conv import ConvDecoder, ConvEncoder
from ..nn.mlp import MLP, activation
from .base import GenerativeModel, ModelError, Phase
from .registry import register
from .vae import cond_dim, cond_features

LOSSES = ("minimax", "ns", "lsgan", "wgan", "wgan-gp", "hinge")


def disc_loss(kind: str, d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    """Critic loss from raw outputs (mean over the batch), without the gradient penalty."""
    if kind in ("minimax", "ns"):
        return F.softplus(-d_real).mean() + F.softplus(d_fake).mean()
    if kind == "lsgan":
        return 0.5 * ((d_real - 1) ** 2).mean() + 0.5 * (d_fake ** 2).mean()
    if kind in ("wgan", "wgan-gp"):
        return -d_real.mean() + d_fake.mean()
    if kind == "hinge":
        return F.relu(1 - d_real).mean() + F.relu(1 + d_fake).mean()
    raise ValueError(kind)


def gen_loss(kind: str, d_fake: torch.Tensor) -> torch.Tensor:
    if kind == "minimax":
        return -F.softplus(d_fake).mean()
    if kind == "ns":
        return F.softplus(-d_fake).mean()
    if kind == "lsgan":
        return 0.5 * ((d_fake - 1) ** 2).mean()
    return -d_fake.mean()


def gradient_penalty(critic, real: torch.Tensor, fake: torch.Tensor, eps: torch.Tensor | None = None) -> torch.Tensor:
    """E[(‖∇_x̂ D(x̂)‖₂ − 1)²], x̂ = εx + (1 − ε)x̃ (Gulrajani et al. 2017, eq. 3)."""
    if eps is None:
        eps = torch.rand(real.shape[0], *[1] * (real.dim() - 1), device=real.device, dtype=real.dtype)
    xh = (eps * real + (1 - eps) * fake).detach().requires_grad_(True)
    grad, = torch.autograd.grad(critic(xh).sum(), xh, create_graph=True)
    return ((grad.flatten(1).norm(2, dim=1) - 1) ** 2).mean()


def r1_penalty(critic, real: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(D(x), E‖∇_x D(x)‖²) on real x: the zero-centred R1 term (Mescheder et al. 2018, eq. 9).

    Returns the critic's outputs too, so the loss reuses this forward pass; the squared norm keeps
    its graph (``create_graph=True``) so it trains the critic's weights.
    """
    x = real.detach().requires_grad_(True)
    d = critic(x)
    grad, = torch.autograd.grad(d.sum(), x, create_graph=True)
    return d, grad.flatten(1).pow(2).sum(1).mean()


def spectral_norm_all(module: nn.Module) -> nn.Module:
    """Wrap every Linear/Conv2d weight of ``module`` in spectral normalisation (Miyato et al. 2018)."""
    for name, child in list(module.named_children()):
        if isinstance(child, (nn.Linear, nn.Conv2d)):
            setattr(module, name, nn.utils.parametrizations.spectral_norm(child))
        else:
            spectral_norm_all(child)
    return module


class Critic(nn.Module):
    """φ(x) features → ψ head (+ projection ⟨embed(y), φ(x)⟩ for labelled data)."""

    def __init__(self, info: DataInfo, cfg, cdim: int, pac: int, sn: bool):
        super().__init__()
        self.info = info
        self.label = info.cond == "label" and cfg.conditional
        extra = 0 if self.label else cdim
        if cfg.net == "conv":
            c, h, w = info.shape
            self.trunk = ConvEncoder((c * pac, h, w), 1, cfg.channels, "leaky_relu")
            fdim = self.trunk.feature_dim
            self.trunk.head = nn.Identity()
            self._conv = True
        else:
            self.trunk = nn.Sequential(MLP(info.dim * pac + extra, cfg.hidden[-1], cfg.hidden[:-1], "leaky_relu"),
                                       activation("leaky_relu"))
            fdim = cfg.hidden[-1]
            self._conv = False
        self.extra = extra
        self.head = nn.Linear(fdim + (extra if self._conv else 0), 1)
        self.embed = nn.Embedding(info.num_classes, fdim) if self.label else None
        if sn:
            spectral_norm_all(self)

    def forward(self, x: torch.Tensor, cf: torch.Tensor | None = None, y: torch.Tensor | None = None):
        if self._conv:
            f = self.trunk.features(x)
            h = f if (cf is None or self.label) else torch.cat([f, cf], 1)
        else:
            h = x.flatten(1)
            if cf is not None and not self.label:
                h = torch.cat([h, cf], 1)
            f = h = self.trunk(h)
        out = self.head(h).squeeze(-1)
        if self.label:
            out = out + (self.embed(y.long()) * f).sum(-1)
        return out


@register("gan")
class GAN(GenerativeModel):
    """GAN with minimax / non-saturating / LSGAN / WGAN / WGAN-GP / hinge+SN losses; MLP or DCGAN nets; conditional."""

    likelihood = "none"
    # the engine's default gradient-norm clipping (1.0) slows the critic (measured on 8gaussians:
    # WGAN-GP energy distance 0.78 with it, 0.50 without after 150 steps); explicit options override
    train_defaults = {"grad_clip": None}

    @dataclass
    class Config:
        loss: str = "ns"                         # minimax | ns | lsgan | wgan | wgan-gp | hinge
        latent_dim: int = 16
        hidden: tuple[int, ...] = (256, 256, 256)
        net: str = "mlp"                         # mlp | conv (images, DCGAN-style)
        channels: tuple[int, ...] = (64, 128)
        act: str = "relu"                        # generator activation (critic: leaky_relu)
        n_critic: int = 0                        # critic updates per step; 0 = 5 for wgan/wgan-gp, else 1
        lr_d: float | None = None                # None = the trainer's lr (TTUR: set both)
        lr_g: float | None = None
        betas: tuple[float, ...] = ()            # () = (0.5, 0.9) for wgan/wgan-gp, (0.5, 0.999) otherwise
        clip: float = 0.01                       # wgan weight clipping
        gp_weight: float = 10.0                  # wgan-gp λ
        spectral_norm: bool | None = None        # None = on for hinge only
        conditional: bool = False
        pac: int = 1                             # PacGAN packing degree (vectors)
        r1: float = 0.0                          # γ of the R1 penalty γ/2·E‖∇_x D(x)‖² on real x (0 = off)

    @classmethod
    def check_data(cls, info: DataInfo) -> None:
        if info.modality == "text":
            raise ModelError("gan: text is not supported (gradients cannot flow through discrete tokens); "
                             "use an autoregressive model")

    def __init__(self, info: DataInfo, config=None):
        super().__init__(info, config)
        c = self.config
        if c.loss not in LOSSES:
            raise ModelError(f"gan: loss={c.loss!r}; choose from {', '.join(LOSSES)}")
        if c.net not in ("mlp", "conv") or (c.net == "conv" and len(info.shape) != 3):
            raise ModelError(f"gan: net={c.net!r} does not fit data of shape {info.shape} (conv needs (C, H, W))")
        if c.conditional and info.cond is None:
            raise ModelError("gan: conditional=True but the data have no labels/conditions")
        if c.pac > 1 and c.conditional:
            raise ModelError("gan: pac > 1 is for unconditional models")
        if c.r1 < 0 or (c.r1 > 0 and c.loss in ("wgan", "wgan-gp")):
            raise ModelError(f"gan: r1={c.r1} needs r1 >= 0 and a non-Wasserstein loss "
                             "(wgan-gp has its own penalty; wgan clips weights)")
        self.conditional_ok = c.conditional
        self.cdim = cond_dim(info) if c.conditional else 0
        self.n_critic = c.n_critic or (5 if c.loss in ("wgan", "wgan-gp") else 1)
        self.betas = tuple(c.betas) if c.betas else ((0.5, 0.9) if c.loss in ("wgan", "wgan-gp") else (0.5, 0.999))
        sn = (c.loss == "hinge") if c.spectral_norm is None else c.spectral_norm
        if c.net == "conv":
            self.generator = ConvDecoder(c.latent_dim + self.cdim, info.shape, c.channels, c.act)
        else:
            self.generator = MLP(c.latent_dim + self.cdim, info.dim, c.hidden, c.act)
        self.critic = Critic(info, c, self.cdim, c.pac, sn)

    # ---- engine protocol -------------------------------------------------------------------
    def phases(self):
        c = self.config
        return [Phase("disc", list(self.critic.parameters()), repeats=self.n_critic, lr=c.lr_d, betas=self.betas),
                Phase("gen", list(self.generator.parameters()), repeats=1, lr=c.lr_g, betas=self.betas)]

    def to_unit(self, x: torch.Tensor) -> torch.Tensor:
        """Data → the critic's input space ([−1, 1] for levels)."""
        if self.info.discrete:
            return x.float() / (self.info.num_levels - 1) * 2 - 1
        return x.float()

    def generate(self, z: torch.Tensor, cf: torch.Tensor | None = None) -> torch.Tensor:
        h = z if cf is None else torch.cat([z, cf], 1)
        out = self.generator(h).reshape(z.shape[0], *self.info.shape)
        return out

    def _pack(self, x: torch.Tensor) -> torch.Tensor:
        """(B, …) → (⌊B/m⌋, m·…): row i is (x_{mi}, …, x_{mi+m−1}) concatenated (PacGAN's D_m input)."""
        p = self.config.pac
        if p == 1:
            return x
        n = (x.shape[0] // p) * p
        if n == 0:
            raise ModelError(f"gan: batch of {x.shape[0]} is smaller than pac={p}")
        x = x[:n]
        if x.dim() == 4:
            return x.reshape(n // p, p * x.shape[1], *x.shape[2:])
        return x.reshape(n // p, -1)

    def discriminate(self, x: torch.Tensor, cf=None, y=None) -> torch.Tensor:
        """Raw critic outputs D(x) for inputs already in the critic's space (packed if pac > 1)."""
        return self.critic(x, cf, y)

    def _clip(self):
        if self.config.loss == "wgan":
            with torch.no_grad():
                for p in self.critic.parameters():
                    p.clamp_(-self.config.clip, self.config.clip)

    def loss(self, batch, phase: str = "disc"):
        c = self.config
        self._clip()
        real = self.to_unit(batch["x"])
        y = batch.get("y") if self.cdim else None
        cf = cond_features(self.info, y, real.device) if self.cdim else None
        z = torch.randn(real.shape[0], c.latent_dim, device=real.device, dtype=real.dtype)
        if phase == "disc":
            with torch.no_grad():
                fake = self.generate(z, cf)
            pr, pf = self._pack(real), self._pack(fake)
            if c.r1 > 0:
                d_real, r1 = r1_penalty(lambda v: self.discriminate(v, cf, y), pr)
            else:
                d_real = self.discriminate(pr, cf, y)
            d_fake = self.discriminate(pf, cf, y)
            loss = disc_loss(c.loss, d_real, d_fake)
            out = {"d_real": d_real.mean().detach(), "d_fake": d_fake.mean().detach()}
            if c.r1 > 0:
                loss = loss + 0.5 * c.r1 * r1
                out["r1"] = r1.detach()
            if c.loss in ("wgan", "wgan-gp"):
                out["wasserstein"] = (d_real.mean() - d_fake.mean()).detach()
            if c.loss == "wgan-gp":
                gp = gradient_penalty(lambda v: self.discriminate(v, cf, y), pr, pf)
                loss = loss + c.gp_weight * gp
                out["gp"] = gp.detach()
            out["loss"] = loss
            return out
        if phase == "gen":
            fake = self.generate(z, cf)
            d_fake = self.discriminate(self._pack(fake), cf, y)
            return {"loss": gen_loss(c.loss, d_fake), "d_fake_g": d_fake.mean().detach()}
        raise ModelError(f"gan: unknown phase {phase!r} (phases: disc, gen)")

    # ---- sampling ----------------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, n: int, cond=None, generator: torch.Generator | None = None, drs: bool = False,
               drs_burn_in: int = 10000, drs_gamma: float | None = 0.0, drs_eps: float = 1e-6,
               **options) -> torch.Tensor:
        """``n`` samples G(z); ``drs=True``: discriminator rejection sampling (see ``log_density_ratio``)."""
        c = self.config
        if self.cdim and cond is None:
            raise ModelError("gan: this model is conditional; pass cond= (n labels or one label)")
        if cond is not None and not self.cdim:
            raise ModelError("gan is not conditional here; do not pass cond=")
        cf = None
        if self.cdim:
            cond = torch.as_tensor(cond)
            if cond.ndim == 0:
                cond = cond.expand(n)
            cf = cond_features(self.info, cond, self.device)
        dev = self.device
        was = self.training
        self.eval()
        try:
            if drs:
                x = self._drs(n, generator, drs_burn_in, drs_gamma, drs_eps)
            else:
                z = torch.randn(n, c.latent_dim, generator=generator).to(dev)
                x = self.generate(z, cf)
        finally:
            self.train(was)
        if self.info.discrete:
            L = self.info.num_levels
            return torch.round((x.clamp(-1, 1) + 1) / 2 * (L - 1)).long()
        return x

    @torch.no_grad()
    def log_density_ratio(self, x: torch.Tensor) -> torch.Tensor:
        """ln p_data(x)/p_g(x) read off the critic, exact for the optimal critic D* = p_data/(p_data + p_g).

        minimax / ns: D = σ(d), so the ratio is D*/(1 − D*) = e^d and the log-ratio is the logit d.
        lsgan (targets 0 / 1): the optimal output itself is D* = p_data/(p_data + p_g) (Mao et al. 2017,
        eq. 4 with a=0, b=1), so the log-ratio is ln d − ln(1 − d) with d clipped to [1e-6, 1 − 1e-6].
        ``x`` is in the critic's space (``to_unit``); unpacked, unconditional models only.
        """
        c = self.config
        if c.loss not in ("minimax", "ns", "lsgan"):
            raise ModelError(f"gan: loss={c.loss!r} has no density-ratio critic; DRS needs minimax, ns or lsgan")
        if c.pac > 1 or self.cdim:
            raise ModelError("gan: the density ratio needs an unpacked, unconditional critic (pac=1)")
        d = self.discriminate(x)
        if c.loss == "lsgan":
            d = d.clamp(1e-6, 1 - 1e-6)
            return d.log() - (-d).log1p()
        return d

    def _drs(self, n, generator, burn_in, gamma, eps):
        """Discriminator rejection sampling (Azadi et al. 2019, Alg. 1) with r(x) = ln p_data/p_g:

        burn-in: D_M = max r over ``burn_in`` samples; then per batch D_M ← max(D_M, max r) and x is
        kept with probability σ(F), F = r − D_M − ln(1 − e^{r − D_M − ε}) − γ. With γ = 0 (default)
        σ(F) = e^{r − D_M} up to ε: exact rejection sampling from p_g·e^r ∝ p_data when the critic is
        optimal and D_M bounds r. ``drs_gamma=None`` takes γ as the 95th percentile of F on the
        burn-in (the paper's shift: it rejects more than exact rejection sampling, trading diversity
        for quality); a negative γ accepts more.
        """
        dim = self.config.latent_dim
        dev = self.device

        def draw(m):
            xg = self.generate(torch.randn(m, dim, generator=generator).to(dev))
            return xg, self.log_density_ratio(xg).double()

        def F(r, dm):
            return r - dm - torch.log1p(-torch.exp(r - dm - eps))

        _, r0 = draw(max(int(burn_in), 1))
        dm = r0.max()
        g = float(torch.quantile(F(r0, dm), 0.95)) if gamma is None else float(gamma)
        kept, total, tries = [], 0, 0
        batch = max(n, 1000)
        while total < n:
            tries += batch
            if tries > 1000 * n + burn_in:
                raise ModelError(f"gan: DRS accepted {total} of {tries} samples; the critic rejects almost "
                                 "everything (is the model trained?)")
            xg, r = draw(batch)
            dm = torch.maximum(dm, r.max())
            u = torch.rand(batch, generator=generator, dtype=torch.float64).to(dev)
            acc = u < torch.sigmoid(F(r, dm) - g)
            kept.append(xg[acc])
            total += int(acc.sum())
        self.drs_acceptance = total / tries
        return torch.cat(kept)[:n]


__all__ = ["GAN", "LOSSES", "disc_loss", "gen_loss", "gradient_penalty", "r1_penalty", "spectral_norm_all"]
