"""VAE with categorical latents trained by the Gumbel-softmax (Concrete) relaxation.

Jang, Gu & Poole (2017); Maddison, Mnih & Teh (2017). ``num_latents`` categorical variables with
``categories`` classes each; q(c|x) = Cat(softmax(ℓ(x))), prior p(c) uniform. Training sample
(Jang et al. eq. 1):
    y = softmax((ℓ + g) / τ),   g_i = −log(−log u_i), u_i ~ U(0, 1),
with τ annealed as τ = max(τ_min, τ₀ · exp(−r · step)) (their §4; the step is the model's
``step`` buffer, incremented by ``loss()``, as in ``vae``). ``hard=True`` uses the
straight-through variant (one-hot forward, relaxed gradient). Training objective (a relaxed ELBO):
    E[log p(x | y)] − KL(q(c|x) ‖ U),   KL = Σ_n Σ_k q_nk log q_nk + n log K   (closed form).
Evaluation uses real discrete samples c ~ q(c|x): the ELBO log p(x|c) − KL (``log_prob``) and
the importance-weighted estimate with log w = log p(x|c) − n log K − log q(c|x)
(``log_prob(x, num_samples=K)``) — both exact bounds/estimates, unlike the relaxed objective.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..nn.conv import ConvDecoder, ConvEncoder
from ..nn.mlp import MLP
from .base import ModelError
from .registry import register
from .vae import VAE


def gumbel_softmax(logits: torch.Tensor, tau: float, hard: bool = False, generator=None) -> torch.Tensor:
    """y = softmax((ℓ + g)/τ) over the last dimension; ``hard``: one-hot forward, relaxed backward."""
    u = torch.rand(logits.shape, generator=generator).to(logits) if generator is not None else torch.rand_like(logits)
    g = -torch.log((-torch.log(u.clamp(1e-10, 1.0))).clamp_min(1e-10))          # Gumbel(0, 1)
    y = torch.softmax((logits + g) / tau, -1)
    if hard:
        y_hard = F.one_hot(y.argmax(-1), logits.shape[-1]).to(y)
        y = y + (y_hard - y).detach()
    return y


@register("gumbel-vae")
class GumbelVAE(VAE):
    """VAE with categorical latents (Gumbel-softmax relaxation, annealed temperature)."""

    likelihood = "bound"

    @dataclass
    class Config(VAE.Config):
        num_latents: int = 8
        categories: int = 10
        tau0: float = 1.0
        tau_min: float = 0.5
        anneal_rate: float = 3e-4
        hard: bool = False

    def __init__(self, info, config=None):
        cfg = config if config is not None else self.default_config(info)
        if cfg.prior != "normal" or cfg.iwae_k != 1:
            raise ModelError("gumbel-vae: the prior is uniform over categories (leave prior='normal', iwae_k=1)")
        super().__init__(info, cfg)

    def build_networks(self):
        c, info = self.config, self.info
        n = c.num_latents * c.categories
        if c.net == "conv":
            self.encoder = ConvEncoder(info.shape, n, c.channels, c.act, extra_in=self.cdim)
            self.decoder = ConvDecoder(n + self.cdim, info.shape, c.channels, c.act, out_channels=self.P * info.shape[0])
        else:
            self.encoder = MLP(info.dim + self.cdim, n, c.hidden, c.act)
            self.decoder = MLP(n + self.cdim, self.P * info.dim, tuple(reversed(c.hidden)), c.act)

    def tau(self) -> float:
        c = self.config
        return max(c.tau_min, c.tau0 * math.exp(-c.anneal_rate * float(self.step)))

    def logits(self, x, y=None):
        h = self.scale_input(x)
        cf = self._cond(y, h.shape[0])
        out = self.encoder(h, cf) if self.config.net == "conv" else \
            self.encoder(h.flatten(1) if cf is None else torch.cat([h.flatten(1), cf], 1))
        return torch.log_softmax(out.reshape(x.shape[0], self.config.num_latents, self.config.categories), -1)

    def kl(self, logq):
        return (logq.exp() * logq).sum((-1, -2)) + self.config.num_latents * math.log(self.config.categories)

    def _hard(self, logq, k, generator):
        B, n, K = logq.shape
        flat = logq.exp().reshape(B * n, K)
        c = torch.multinomial(flat.cpu().float(), k, replacement=True, generator=generator).to(logq.device)
        return c.reshape(B, n, k).permute(0, 2, 1)             # (B, k, n)

    def elbo_terms(self, x, y=None, generator=None):
        """Evaluation ELBO with a hard sample c ~ q(c|x): (log p(x|c), KL)."""
        logq = self.logits(x, y)
        c = self._hard(logq, 1, generator)[:, 0]
        onehot = F.one_hot(c, self.config.categories).to(logq).flatten(1)
        return self.log_px(x, self.decode(onehot, self._cond(y, len(x)))), self.kl(logq)

    def log_weights(self, x, y=None, k: int = 1, generator=None):
        logq = self.logits(x, y)
        B = x.shape[0]
        c = self._hard(logq, k, generator)                                    # (B, k, n)
        onehot = F.one_hot(c, self.config.categories).to(logq).reshape(B * k, -1)
        cf = self._cond(y, B)
        lpx = self.log_px(x.repeat_interleave(k, 0),
                          self.decode(onehot, None if cf is None else cf.repeat_interleave(k, 0))).reshape(B, k)
        logq_c = logq[:, None].expand(B, k, *logq.shape[1:]).gather(-1, c.unsqueeze(-1)).squeeze(-1).sum(-1)
        return lpx - self.config.num_latents * math.log(self.config.categories) - logq_c

    def loss(self, batch, phase: str = "main"):
        x, y = batch["x"], batch.get("y")
        if self.training:
            self.step += 1
        logq = self.logits(x, y)
        tau = self.tau()
        z = gumbel_softmax(logq, tau, self.config.hard).flatten(1)
        rec = self.log_px(x, self.decode(z, self._cond(y, len(x))))
        kl = self.kl(logq)
        beta = self.beta_now()
        return {"loss": -(rec - beta * kl).mean() / self.info.dim, "elbo_relaxed": (rec - kl).mean().detach(),
                "kl": kl.mean().detach(), "tau": torch.tensor(tau)}

    def sample_latent(self, n: int, generator=None):
        c = torch.randint(0, self.config.categories, (n, self.config.num_latents), generator=generator)
        dt = next(self.decoder.parameters()).dtype
        return F.one_hot(c, self.config.categories).to(self.device, dt).flatten(1)


__all__ = ["GumbelVAE", "gumbel_softmax"]
