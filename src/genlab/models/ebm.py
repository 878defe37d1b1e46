"""Energy-based model trained by contrastive divergence with SGLD and a replay buffer.

p_θ(x) = exp(−E_θ(x)) / Z_θ. Maximum-likelihood gradient (e.g. Song & Kingma 2021, eq. 4):
    ∇_θ log p_θ(x) = −∇_θ E_θ(x) + E_{x⁻~p_θ}[∇_θ E_θ(x⁻)],
estimated with negatives x⁻ from short-run stochastic-gradient Langevin dynamics started from a
persistent replay buffer, re-initialised with uniform noise with probability ``reinit`` (Du &
Mordatch 2019, Alg. 1). Loss minimised (their eq. 3 plus the energy regulariser of §3.3):
    L = E_θ(x⁺) − E_θ(x⁻) + α (E_θ(x⁺)² + E_θ(x⁻)²).
SGLD step (``genlab.sampling.langevin``): x ← x − ε ∇_x E(x) + σ ξ, with ε = ``step_size`` and
σ = ``noise``, clamped to the data box.

Options against the usual failure modes of short-run EBMs on images (Du & Mordatch 2019, §3.3;
Grathwohl et al. 2020, App. H):
- ``spectral_norm=True``: every linear/conv weight W of the energy network is divided by its
  largest singular value σ₁(W) (power iteration; Miyato et al. 2018), bounding the Lipschitz
  constant of E by the product of the activations' slopes, so ∇ₓE cannot blow up along the chains.
- ``data_noise=s``: the positives are x⁺ + s ξ, ξ ~ N(0, I) (in the [−1, 1] units of images), i.e.
  the model fits the data convolved with N(0, s² I); this smooths the quantised data the chains
  cannot reach exactly.

The buffer is a registered buffer, so it is checkpointed and survives save/load; so are the data
box ``lo``/``hi`` (set from the first training batch, 10 % margin; [−1, 1] for levels).
Optional JEM (Grathwohl et al. 2020): the network outputs class logits f(x), E(x) = −logsumexp_y
f(x)[y], and the classifier's cross-entropy is added to the loss (labelled data only).
``likelihood = "none"``: Z_θ is unknown (AIS is not implemented).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..data.base import DataInfo
from ..nn.conv import ConvEncoder
from ..nn.mlp import MLP
from ..sampling.langevin import langevin
from .base import GenerativeModel, ModelError
from .gan import spectral_norm_all
from .registry import register


@register("ebm")
class EBM(GenerativeModel):
    """Energy-based model: contrastive divergence with SGLD, replay buffer, energy regularisation; optional JEM."""

    likelihood = "none"

    @dataclass
    class Config:
        hidden: tuple[int, ...] = (128, 128, 128)
        net: str = "mlp"                       # mlp | conv
        channels: tuple[int, ...] = (32, 64)
        act: str = "silu"                      # smooth activations give smooth ∇E for Langevin
        alpha: float = 0.1                     # energy regularisation α
        sgld_steps: int = 20                   # Langevin steps per training step
        step_size: float = 0.05                # ε, multiplier of −∇E (in data units)
        noise: float = 0.01                    # σ of the Langevin noise
        grad_clip: float | None = None         # clamp ∇E element-wise inside SGLD
        buffer_size: int = 10000
        reinit: float = 0.05                   # probability of restarting a chain from noise
        sample_steps: int = 200                # Langevin steps in sample()
        jem: bool = False                      # joint energy model (needs labels)
        spectral_norm: bool = False            # spectral normalisation of every energy-network layer
        data_noise: float = 0.0                # s: positives x⁺ + s ξ during training

    @classmethod
    def default_config(cls, info: DataInfo):
        c = cls.Config()
        if info.modality == "image":
            c.net, c.step_size, c.noise = "conv", 1.0, 0.005   # images scaled to [−1, 1] (Du & Mordatch)
        return c

    @classmethod
    def check_data(cls, info: DataInfo) -> None:
        if info.modality == "text":
            raise ModelError("ebm: text is not supported (Langevin dynamics needs continuous inputs)")

    def __init__(self, info: DataInfo, config=None):
        super().__init__(info, config)
        c = self.config
        if c.jem and info.cond != "label":
            raise ModelError("ebm: jem=True needs labelled data (info.cond == 'label')")
        if c.net == "conv" and len(info.shape) != 3:
            raise ModelError(f"ebm: net='conv' needs images (C, H, W), got shape {info.shape}")
        self.conditional_ok = False
        out = info.num_classes if c.jem else 1
        if c.net == "conv":
            self.net = ConvEncoder(info.shape, out, c.channels, c.act)
        else:
            self.net = MLP(info.dim, out, c.hidden, c.act)
        if c.spectral_norm:
            spectral_norm_all(self.net)
        self.register_buffer("buffer", torch.zeros(c.buffer_size, *info.shape))
        self.register_buffer("lo", torch.full(info.shape, -1.0))
        self.register_buffer("hi", torch.full(info.shape, 1.0))
        self.register_buffer("initialised", torch.zeros((), dtype=torch.bool))

    # ---- the energy ------------------------------------------------------------------------------
    def to_unit(self, x: torch.Tensor) -> torch.Tensor:
        if self.info.discrete:
            return x.float() / (self.info.num_levels - 1) * 2 - 1
        return x.float()

    def logits(self, u: torch.Tensor) -> torch.Tensor:
        return self.net(u if self.config.net == "conv" else u.flatten(1))

    def energy(self, u: torch.Tensor) -> torch.Tensor:
        """E_θ(u) → (B,), for inputs in the model's space (``to_unit(x)``)."""
        f = self.logits(u)
        return -torch.logsumexp(f, 1) if self.config.jem else f.squeeze(-1)

    # ---- replay buffer -------------------------------------------------------------------------------
    def _noise(self, n: int, generator=None) -> torch.Tensor:
        u = torch.rand(n, *self.info.shape, generator=generator).to(self.lo)
        return self.lo + (self.hi - self.lo) * u

    @torch.no_grad()
    def _init_box(self, u: torch.Tensor):
        if not self.info.discrete:
            lo, hi = u.min(0).values, u.max(0).values
            pad = 0.1 * (hi - lo).clamp_min(1e-3)
            self.lo.copy_(lo - pad)
            self.hi.copy_(hi + pad)
        self.buffer.copy_(self._noise(self.buffer.shape[0]))
        self.initialised.fill_(True)

    def _sgld(self, u0: torch.Tensor, steps: int, generator=None) -> torch.Tensor:
        c = self.config
        return langevin(self.energy, u0, steps, c.step_size, c.noise, generator=generator,
                        clamp=(self.lo, self.hi), grad_clip=c.grad_clip)

    def loss(self, batch, phase: str = "main"):
        c = self.config
        pos = self.to_unit(batch["x"])
        B = pos.shape[0]
        if self.training and not bool(self.initialised):
            self._init_box(pos)
        if c.data_noise > 0 and self.training:
            pos = pos + c.data_noise * torch.randn_like(pos)         # x⁺ + s ξ
        idx = torch.randint(0, c.buffer_size, (B,), device=pos.device)
        start = self.buffer[idx].clone()
        fresh = torch.rand(B, device=pos.device) < c.reinit
        start[fresh] = self._noise(int(fresh.sum()))
        was = self.training
        self.eval()                         # no dropout/BN effects inside the chain
        neg = self._sgld(start, c.sgld_steps)
        self.train(was)
        if self.training:
            with torch.no_grad():
                self.buffer[idx] = neg
        e_pos, e_neg = self.energy(pos), self.energy(neg)
        loss = e_pos.mean() - e_neg.mean() + c.alpha * (e_pos ** 2 + e_neg ** 2).mean()
        out = {"e_pos": e_pos.mean().detach(), "e_neg": e_neg.mean().detach(),
               "cd": (e_pos.mean() - e_neg.mean()).detach()}
        if c.jem and batch.get("y") is not None:
            ce = F.cross_entropy(self.logits(pos), batch["y"].long())
            loss = loss + ce
            out["ce"] = ce.detach()
        out["loss"] = loss
        return out

    # ---- sampling -----------------------------------------------------------------------------------
    def sample(self, n: int, cond=None, generator: torch.Generator | None = None, steps: int | None = None,
               from_buffer: bool = False, **options) -> torch.Tensor:
        """Langevin chains of ``steps`` (default ``sample_steps``) from uniform noise in the data box
        (or from the replay buffer with ``from_buffer=True``)."""
        if cond is not None:
            raise ModelError("ebm is unconditional; do not pass cond=")
        if from_buffer:
            idx = torch.randint(0, self.config.buffer_size, (n,), generator=generator).to(self.buffer.device)
            u0 = self.buffer[idx]
        else:
            u0 = self._noise(n, generator)
        was = self.training
        self.eval()
        u = self._sgld(u0, self.config.sample_steps if steps is None else steps, generator)
        self.train(was)
        if self.info.discrete:
            L = self.info.num_levels
            return torch.round((u.clamp(-1, 1) + 1) / 2 * (L - 1)).long()
        return u

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """JEM: class probabilities p(y|x) = softmax f(x)."""
        if not self.config.jem:
            raise ModelError("ebm: classify() needs jem=True")
        with torch.no_grad():
            return torch.softmax(self.logits(self.to_unit(x.to(self.lo.device))), 1)


__all__ = ["EBM"]
