"""Latent diffusion (Rombach et al. 2022; Vahdat et al. 2021): a diffusion or flow-matching prior
trained on the latent codes of a frozen, already trained genlab VAE.

Two stages: (1) ``gl.train`` a ``vae``; (2) ``gl.create("latent-diffusion", data=ds, vae="runs/vae/final")``
and ``gl.train`` it — only the prior learns. With ``z = s · μ_φ(x)`` (the encoder mean, scaled by
``s = 1/std`` of the codes measured on the first training batch, a saved buffer) the prior's loss
is that of ``ddpm`` or ``flow-matching`` on z. Sampling: ``z ~ prior``, ``x ~ p_θ(x | z/s)`` (the VAE
decoder). The VAE's weights are part of this model's state and its config is stored as JSON in
``vae_config``, so ``save_pretrained``/``gl.load`` need no second folder.

Likelihood: ``"none"`` — the prior's density of the codes is not a density of x (a bound would
need the VAE's posterior inside the prior's likelihood; not implemented).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..data.base import DataInfo
from .base import GenerativeModel, ModelError, Phase
from .registry import register


@register("latent-diffusion")
class LatentDiffusion(GenerativeModel):
    """Diffusion / flow-matching prior in the latent space of a trained VAE (two-stage)."""

    likelihood = "none"
    conditional_ok = True

    @dataclass
    class Config:
        vae: str = ""                 # path to a trained genlab VAE (read when the model is created)
        vae_config: str = ""          # the VAE's config as JSON (filled from `vae`; rebuilds it on gl.load)
        prior: str = "ddpm"           # ddpm | flow-matching
        T: int = 1000                 # ddpm prior
        schedule: str = "linear"
        parameterization: str = "eps"
        path: str = "cfm"             # flow-matching prior
        width: int = 256
        depth: int = 3
        cond_drop: float = 0.1

    def __init__(self, info: DataInfo, config=None):
        super().__init__(info, config)
        from .io import load_stage
        c = self.config
        if not c.vae_config and not c.vae:
            raise ModelError("latent-diffusion needs a trained VAE: gl.create('latent-diffusion', data=ds, "
                             "vae='runs/my-vae/final') (train one with gl.create('vae', ...) first)")
        vae, c.vae_config = load_stage(c.vae, c.vae_config, source="vae_config")
        if vae.name not in ("vae",):
            raise ModelError(f"latent-diffusion needs a 'vae' model, got {vae.name!r}")
        if tuple(vae.info.shape) != tuple(info.shape) or vae.info.kind != info.kind:
            raise ModelError(f"the VAE was trained on data of shape {vae.info.shape} ({vae.info.kind}); "
                             f"these data are {info.shape} ({info.kind})")
        if getattr(vae.config, "conditional", False):
            raise ModelError("latent-diffusion needs an unconditional VAE (labels go to the prior)")
        self.vae = vae
        for p in self.vae.parameters():
            p.requires_grad_(False)
        d = vae.config.latent_dim
        latent_info = DataInfo(shape=(d,), cond="label" if info.cond == "label" else None,
                               num_classes=info.num_classes if info.cond == "label" else None,
                               name=f"latent-{info.name}")
        from .registry import create
        common = dict(width=c.width, depth=c.depth, cond_drop=c.cond_drop)
        if c.prior == "ddpm":
            self.prior = create("ddpm", data=latent_info, T=c.T, schedule=c.schedule,
                                parameterization=c.parameterization, **common)
        elif c.prior == "flow-matching":
            self.prior = create("flow-matching", data=latent_info, path=c.path, **common)
        else:
            raise ModelError(f"prior must be 'ddpm' or 'flow-matching', got {c.prior!r}")
        self.register_buffer("scale", torch.zeros(()))

    def phases(self):
        return [Phase("main", [p for p in self.prior.parameters() if p.requires_grad])]

    def train(self, mode: bool = True):
        super().train(mode)
        self.vae.eval()          # the VAE stays frozen
        return self

    @torch.no_grad()
    def encode(self, x):
        """Scaled latent code ``s · μ_φ(x)``."""
        mu, _ = self.vae.encode(x)
        if float(self.scale) == 0.0:
            self.scale.fill_(1.0 / mu.std().clamp_min(1e-6).item())
        return mu * self.scale

    def loss(self, batch, phase="main"):
        z = self.encode(batch["x"])
        b = {"x": z}
        if "y" in batch and self.info.cond == "label":
            b["y"] = batch["y"]
        return self.prior.loss(b)

    @torch.no_grad()
    def sample(self, n: int, cond=None, generator=None, mean: bool = False, **options):
        """``z ~ prior.sample(n, cond, **options)`` (guidance, steps, sampler as for the prior), then the
        VAE decoder; ``mean=True`` returns E[x | z]."""
        if float(self.scale) == 0.0:
            raise ModelError("latent-diffusion is untrained (no latent scale yet); gl.train it first")
        z = self.prior.sample(n, cond=cond, generator=generator, **options)
        self.last_nfe = getattr(self.prior, "last_nfe", None)
        return self.vae.sample(n, generator=generator, z=z / self.scale, mean=mean)


__all__ = ["LatentDiffusion"]
