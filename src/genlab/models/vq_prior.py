"""A learned autoregressive prior over a frozen VQ-VAE's code indices (van den Oord et al. 2017).

Two stages: (1) ``gl.train`` a ``vqvae``; (2) ``gl.create("vq-prior", data=ds, vqvae="runs/vq/final",
prior="gpt")`` and ``gl.train`` it — only the prior learns, on the sequences
``k = (k_1 … k_n)`` of nearest-code indices of the training data. Any genlab autoregressive family
that models discrete sequences can be the prior (``gpt``, ``made``, ``rnn``).

Sampling: ``k ~ p_ψ(k)``, ``x ~ p_θ(x | z_q(k))``. Likelihood (``kind="bound"``): with the
deterministic one-hot posterior q(k | x) = δ(k − k(x)) the ELBO is
``log p(x) ≥ log p_θ(x | z_q(k(x))) + log p_ψ(k(x))`` (its entropy term is 0); with a uniform prior
this is the VQ-VAE's own bound ``… − n log K``, which the learned prior improves on.
The VQ-VAE's config (JSON) and weights are stored inside this model.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import torch

from ..data.base import DataInfo
from .base import GenerativeModel, ModelError, Phase
from .registry import register


@register("vq-prior")
class VQPrior(GenerativeModel):
    """Autoregressive prior (gpt | made | rnn) over the codes of a frozen VQ-VAE."""

    likelihood = "bound"

    @dataclass
    class Config:
        vqvae: str = ""               # path to a trained genlab VQ-VAE (read when the model is created)
        vqvae_config: str = ""        # its config as JSON (filled from `vqvae`; rebuilds it on gl.load)
        prior: str = "gpt"            # any discrete-sequence family: gpt | made | rnn
        prior_options: str = "{}"     # JSON of overrides for the prior's Config, e.g. '{"n_layer": 2}'

    def __init__(self, info: DataInfo, config=None):
        super().__init__(info, config)
        from .io import load_stage
        from .registry import create
        c = self.config
        if not c.vqvae_config and not c.vqvae:
            raise ModelError("vq-prior needs a trained VQ-VAE: gl.create('vq-prior', data=ds, "
                             "vqvae='runs/my-vqvae/final')")
        vq, c.vqvae_config = load_stage(c.vqvae, c.vqvae_config, source="vqvae_config")
        if vq.name != "vqvae":
            raise ModelError(f"vq-prior needs a 'vqvae' model, got {vq.name!r}")
        if tuple(vq.info.shape) != tuple(info.shape) or vq.info.kind != info.kind:
            raise ModelError(f"the VQ-VAE was trained on data of shape {vq.info.shape} ({vq.info.kind}); "
                             f"these data are {info.shape} ({info.kind})")
        self.vqvae = vq
        for p in self.vqvae.parameters():
            p.requires_grad_(False)
        codes = DataInfo(shape=(vq.config.num_latents,), kind="discrete", num_levels=vq.config.num_codes,
                         modality="sequence", name=f"codes-{info.name}")
        try:
            self.prior = create(c.prior, data=codes, **json.loads(c.prior_options))
        except ModelError as e:
            raise ModelError(f"vq-prior: prior {c.prior!r} cannot model code sequences: {e}") from None

    def phases(self):
        return [Phase("main", [p for p in self.prior.parameters() if p.requires_grad])]

    def train(self, mode: bool = True):
        super().train(mode)
        self.vqvae.eval()
        return self

    def loss(self, batch, phase="main"):
        return self.prior.loss({"x": self.vqvae.encode_indices(batch["x"])})

    @torch.no_grad()
    def log_prob(self, x, cond=None, **options):
        """``log p_θ(x | z_q(k(x))) + log p_ψ(k(x))`` (nats per example; a lower bound)."""
        self.check_input(x, cond)
        k = self.vqvae.encode_indices(x)
        uniform_bound = self.vqvae.log_prob(x)                       # rec − n log K
        n, K = self.vqvae.config.num_latents, self.vqvae.config.num_codes
        import math
        return uniform_bound + n * math.log(K) + self.prior.log_prob(k)

    def likelihood_info(self, **options):
        return {"kind": "bound", "units": "nats/example",
                "method": f"ELBO with the deterministic VQ posterior and a learned {self.config.prior} prior"}

    @torch.no_grad()
    def sample(self, n: int, cond=None, generator=None, mean: bool = False, **options):
        """Codes from the prior (its own options, e.g. temperature/top_k) decoded by the VQ-VAE."""
        if cond is not None:
            raise ModelError("vq-prior is unconditional; do not pass cond=")
        k = self.prior.sample(n, generator=generator, **options)
        return self.vqvae.decode_indices(k, mean=mean, generator=generator)


__all__ = ["VQPrior"]
