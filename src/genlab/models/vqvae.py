"""VQ-VAE (van den Oord et al. 2017) with EMA codebook updates and dead-code restarts.

The encoder maps x to ``num_latents`` vectors z_e ∈ ℝ^c; each is replaced by its nearest code
    k = argmin_j ‖z_e − e_j‖²,   z_q = e_k,
and the decoder sees the straight-through estimate z_e + sg[z_q − z_e] (value z_q, gradient ∂/∂z_q
passed to z_e unchanged). Loss (their eq. 3):
    L = −log p(x | z_q) + ‖sg[z_e] − e‖² + β ‖z_e − sg[e]‖²,
with the codebook term replaced, when ``ema=True``, by exponential moving averages (their App. A.1):
    N_j ← γ N_j + (1−γ) n_j,   m_j ← γ m_j + (1−γ) Σ_{i: k_i=j} z_e,i,   e_j = m_j / N_j
(N Laplace-smoothed). Codes whose EMA count falls below ``restart_threshold`` are restarted at
random encoder outputs of the current batch (Dhariwal et al. 2020, Jukebox §3.3). The loss dict
logs the codebook ``perplexity`` exp(−Σ_j p_j log p_j) of the batch's code usage and the fraction
of codes ``used``.

Likelihood ("bound"): with a uniform prior over the K^n codes and the deterministic posterior
q(z|x) = δ(z = k(x)), the ELBO is log p(x | z_q(x)) − n log K (the KL of a one-hot q to a uniform
prior is log K per latent). Samples from the uniform prior are poor; fit a prior over
``encode_indices(x)`` (e.g. an autoregressive model) and decode with ``decode_indices``.
Decoders are those of :mod:`genlab.models.vae`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..data.base import DataInfo
from ..nn.conv import ConvDecoder, ConvEncoder
from ..nn.mlp import MLP
from .base import GenerativeModel, ModelError
from .registry import register
from .vae import DECODERS, decoder_log_prob, decoder_mean, decoder_params_per_element, decoder_sample, default_decoder


class VectorQuantizer(nn.Module):
    """Nearest-neighbour quantisation of (N, c) vectors against a K × c codebook."""

    def __init__(self, num_codes: int, dim: int, beta: float = 0.25, ema: bool = True, decay: float = 0.99,
                 eps: float = 1e-5, restart_threshold: float = 0.0):
        super().__init__()
        self.K, self.dim, self.beta, self.ema, self.decay, self.eps = num_codes, dim, beta, ema, decay, eps
        self.restart_threshold = restart_threshold
        init = torch.randn(num_codes, dim) / math.sqrt(dim)
        if ema:
            self.register_buffer("codebook", init.clone())
            self.register_buffer("ema_count", torch.ones(num_codes))
            self.register_buffer("ema_sum", init.clone())
        else:
            self.codebook = nn.Parameter(init)

    def nearest(self, z: torch.Tensor) -> torch.Tensor:
        d = (z ** 2).sum(1, keepdim=True) - 2 * z @ self.codebook.t() + (self.codebook ** 2).sum(1)[None]
        return d.argmin(1)

    @torch.no_grad()
    def _ema_update(self, z: torch.Tensor, onehot: torch.Tensor):
        g = self.decay
        self.ema_count.mul_(g).add_(onehot.sum(0), alpha=1 - g)
        self.ema_sum.mul_(g).add_(onehot.t() @ z, alpha=1 - g)
        n = self.ema_count.sum()
        count = (self.ema_count + self.eps) / (n + self.K * self.eps) * n          # Laplace smoothing
        self.codebook.copy_(self.ema_sum / count[:, None])

    @torch.no_grad()
    def _restart(self, z: torch.Tensor) -> int:
        count = self.ema_count if self.ema else None
        if count is None or self.restart_threshold <= 0:
            return 0
        dead = (count < self.restart_threshold).nonzero()[:, 0]
        if len(dead) == 0:
            return 0
        pick = torch.randint(0, z.shape[0], (len(dead),), device=z.device)
        new = z[pick] + 0.01 * torch.randn(len(dead), self.dim, device=z.device, dtype=z.dtype)
        self.codebook[dead] = new
        self.ema_sum[dead] = new
        self.ema_count[dead] = 1.0
        return len(dead)

    def forward(self, z: torch.Tensor):
        """z: (N, c) → (straight-through z_q, indices, dict of losses and statistics)."""
        idx = self.nearest(z.detach())
        zq = self.codebook[idx]
        onehot = F.one_hot(idx, self.K).to(z.dtype)
        commit = self.beta * F.mse_loss(z, zq.detach())
        codebook_loss = torch.zeros((), device=z.device) if self.ema else F.mse_loss(zq, z.detach())
        restarted = 0
        if self.training and self.ema:
            self._ema_update(z.detach(), onehot)
            restarted = self._restart(z.detach())
        p = onehot.mean(0)
        stats = {"commit": commit, "codebook": codebook_loss,
                 "perplexity": torch.exp(-(p * torch.log(p + 1e-10)).sum()).detach(),
                 "used": (p > 0).float().mean().detach(), "restarted": torch.tensor(float(restarted))}
        return z + (zq - z).detach(), idx, stats


@register("vqvae")
class VQVAE(GenerativeModel):
    """VQ-VAE: vector-quantised latents, straight-through gradients, EMA codebook, dead-code restarts."""

    likelihood = "bound"

    @dataclass
    class Config:
        num_codes: int = 64
        code_dim: int = 16
        num_latents: int = 4                    # code vectors per example
        hidden: tuple[int, ...] = (256, 256)
        net: str = "mlp"                        # mlp | conv
        channels: tuple[int, ...] = (32, 64)
        act: str = "silu"
        decoder: str = "auto"                   # as in vae
        mixtures: int = 3
        beta: float = 0.25                      # commitment weight
        ema: bool = True
        decay: float = 0.99
        restart_threshold: float = 0.01         # EMA count below which a code is restarted (0 = never)

    @classmethod
    def check_data(cls, info: DataInfo) -> None:
        if info.modality == "text":
            raise ModelError("vqvae: text is not supported; use an autoregressive model")

    def __init__(self, info: DataInfo, config=None):
        super().__init__(info, config)
        c = self.config
        self.decoder_kind = default_decoder(info) if c.decoder == "auto" else c.decoder
        if self.decoder_kind not in DECODERS:
            raise ModelError(f"vqvae: decoder={c.decoder!r}; choose from auto, {', '.join(DECODERS)}")
        if (self.decoder_kind == "gaussian") == info.discrete or (self.decoder_kind == "bernoulli" and info.num_levels != 2):
            raise ModelError(f"vqvae: decoder {self.decoder_kind!r} does not fit {info.kind} data "
                             f"with num_levels={info.num_levels}")
        if c.net == "conv" and len(info.shape) != 3:
            raise ModelError(f"vqvae: net='conv' needs images (C, H, W), got {info.shape}")
        self.P = decoder_params_per_element(self.decoder_kind, info.num_levels, c.mixtures)
        n_out = c.num_latents * c.code_dim
        if c.net == "conv":
            self.encoder = ConvEncoder(info.shape, n_out, c.channels, c.act)
            self.decoder = ConvDecoder(n_out, info.shape, c.channels, c.act, out_channels=self.P * info.shape[0])
        else:
            self.encoder = MLP(info.dim, n_out, c.hidden, c.act)
            self.decoder = MLP(n_out, self.P * info.dim, tuple(reversed(c.hidden)), c.act)
        self.quantizer = VectorQuantizer(c.num_codes, c.code_dim, c.beta, c.ema, c.decay,
                                         restart_threshold=c.restart_threshold)
        self.logstd = nn.Parameter(torch.zeros(info.shape)) if self.decoder_kind == "gaussian" else None

    def scale_input(self, x):
        return x.float() / (self.info.num_levels - 1) if self.info.discrete else x.float()

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """z_e: (B, num_latents, code_dim)."""
        h = self.scale_input(x)
        out = self.encoder(h if self.config.net == "conv" else h.flatten(1))
        return out.reshape(x.shape[0], self.config.num_latents, self.config.code_dim)

    def decode(self, zq: torch.Tensor) -> torch.Tensor:
        return self.decoder(zq.flatten(1)).reshape(zq.shape[0], self.P, *self.info.shape)

    def quantize(self, x):
        ze = self.encode(x)
        B, n, c = ze.shape
        zst, idx, stats = self.quantizer(ze.reshape(B * n, c))
        return zst.reshape(B, n, c), idx.reshape(B, n), stats

    def loss(self, batch, phase: str = "main"):
        x = batch["x"]
        zq, idx, st = self.quantize(x)
        rec = decoder_log_prob(self.decoder_kind, self.decode(zq), x, self.info.num_levels, self.logstd)
        loss = -rec.mean() / self.info.dim + st["commit"] + st["codebook"]
        return {"loss": loss, "rec": rec.mean().detach(), **{k: v.detach() for k, v in st.items()}}

    @torch.no_grad()
    def encode_indices(self, x: torch.Tensor) -> torch.Tensor:
        """Code indices (B, num_latents) — the discrete data a learned prior is fitted to."""
        ze = self.encode(x.to(self.device))
        return self.quantizer.nearest(ze.reshape(-1, ze.shape[-1])).reshape(ze.shape[:2])

    @torch.no_grad()
    def decode_indices(self, idx: torch.Tensor, mean: bool = True, generator=None) -> torch.Tensor:
        params = self.decode(self.quantizer.codebook[idx.to(self.device)])
        if mean:
            return decoder_mean(self.decoder_kind, params, self.info.num_levels)
        return decoder_sample(self.decoder_kind, params, self.info.num_levels, self.logstd, generator)

    @torch.no_grad()
    def log_prob(self, x, cond=None, **options):
        """ELBO with a uniform prior over codes: log p(x | z_q(x)) − n log K (nats/example)."""
        self.check_input(x, cond)
        was = self.training
        self.eval()
        x = x.to(self.device)
        zq = self.quantizer.codebook[self.encode_indices(x)]
        rec = decoder_log_prob(self.decoder_kind, self.decode(zq), x, self.info.num_levels, self.logstd)
        self.train(was)
        return rec - self.config.num_latents * math.log(self.config.num_codes)

    def likelihood_info(self, **options):
        return {"kind": "bound", "units": "nats/example", "method": "ELBO with a uniform prior over codes"}

    @torch.no_grad()
    def sample(self, n: int, cond=None, generator: torch.Generator | None = None, mean: bool = False,
               indices: torch.Tensor | None = None, **options):
        """Decode codes drawn uniformly (or the given ``indices``, e.g. from a learned prior)."""
        if cond is not None:
            raise ModelError("vqvae is unconditional; do not pass cond=")
        if indices is None:
            indices = torch.randint(0, self.config.num_codes, (n, self.config.num_latents), generator=generator)
        return self.decode_indices(indices, mean=mean, generator=generator)


__all__ = ["VQVAE", "VectorQuantizer"]
