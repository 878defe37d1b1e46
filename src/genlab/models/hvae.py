"""Two-level hierarchical VAE with top-down inference (Sønderby et al. 2016; Tomczak, *Deep
Generative Modeling*, §4.5).

Generative model:  p(z₂) p(z₁ | z₂) p(x | z₁), with p(z₁|z₂) = N(μ_p(z₂), diag σ_p²(z₂)).
Inference, in the generative (top-down) order from a shared deterministic encoding h = e(x):
    q(z₂ | x) = N(μ(h), σ²(h)),   q(z₁ | x, z₂) = N(μ(h, z₂), σ²(h, z₂)).
ELBO:
    L(x) = E_q[log p(x|z₁)] − E_{q(z₂|x)} KL(q(z₁|x,z₂) ‖ p(z₁|z₂)) − KL(q(z₂|x) ‖ p(z₂)),
both KLs between Gaussians in closed form given the sampled z₂ (the top one by Monte Carlo for a
non-normal prior). Importance weights for ``log_prob(x, num_samples=K)``:
    log w = log p(x|z₁) + log p(z₁|z₂) + log p(z₂) − log q(z₂|x) − log q(z₁|x,z₂).
Decoders, priors on z₂ (normal, mog, flow), β-warm-up, IWAE training and conditioning are those
of :class:`genlab.models.vae.VAE`, which this class extends.
"""
from __future__ import annotations


from dataclasses import dataclass

import torch
from torch import nn

from ..nn.conv import ConvDecoder, ConvEncoder
from ..nn.mlp import MLP, activation
from .base import ModelError
from .priors import StandardNormal, make_prior, normal_log_prob
from .registry import register
from .vae import VAE


def gaussian_kl(mu_q, lv_q, mu_p, lv_p) -> torch.Tensor:
    """KL(N(μ_q, σ_q²) ‖ N(μ_p, σ_p²)) = ½ Σ [log σ_p² − log σ_q² + (σ_q² + (μ_q − μ_p)²)/σ_p² − 1]."""
    return 0.5 * (lv_p - lv_q + (lv_q.exp() + (mu_q - mu_p) ** 2) * torch.exp(-lv_p) - 1.0).sum(-1)


@register("hvae")
class HVAE(VAE):
    """Two-level hierarchical VAE, top-down inference; ELBO / IWAE like ``vae``."""

    likelihood = "bound"

    @dataclass
    class Config(VAE.Config):
        latent2_dim: int = 16                    # size of the top latent z₂ (latent_dim is z₁)

    def __init__(self, info, config=None):
        cfg = config if config is not None else self.default_config(info)
        if cfg.prior == "vamp":
            raise ModelError("hvae: the VampPrior needs a one-level encoder; use prior normal, mog or flow")
        super().__init__(info, cfg)
        self.prior = make_prior(cfg.prior, cfg.latent2_dim, info.shape, cfg.prior_components)

    def build_networks(self):
        c, info = self.config, self.info
        d1, d2, H = c.latent_dim, c.latent2_dim, c.hidden[-1]
        if c.net == "conv":
            self.encoder = ConvEncoder(info.shape, H, c.channels, c.act, extra_in=self.cdim)
            self.decoder = ConvDecoder(d1 + self.cdim, info.shape, c.channels, c.act,
                                       out_channels=self.P * info.shape[0])
        else:
            self.encoder = MLP(info.dim + self.cdim, H, c.hidden[:-1], c.act, dropout=c.dropout)
            self.decoder = MLP(d1 + self.cdim, self.P * info.dim, tuple(reversed(c.hidden)), c.act,
                               dropout=c.dropout)
        self.enc_act = activation(c.act)
        self.q2 = nn.Linear(H, 2 * d2)
        self.q1 = MLP(H + d2, 2 * d1, (H,), c.act)
        self.p1 = MLP(d2, 2 * d1, (H,), c.act)

    # ---- networks ------------------------------------------------------------------------------
    def features(self, x, y=None):
        h = self.scale_input(x)
        cf = self._cond(y, h.shape[0])
        if self.config.net == "conv":
            return self.enc_act(self.encoder(h, cf))
        h = h.reshape(h.shape[0], -1)
        return self.enc_act(self.encoder(h if cf is None else torch.cat([h, cf], 1)))

    @staticmethod
    def _gauss(out):
        mu, lv = out.chunk(2, -1)
        return mu, lv.clamp(-12.0, 8.0)

    def encode(self, x, y=None, scaled=False):
        """q(z₁ | x, z₂ = E[z₂|x]): the bottom latent fed to the decoder (for diagnostics)."""
        h = self.features(x, y)
        mu2, _ = self._gauss(self.q2(h))
        return self._gauss(self.q1(torch.cat([h, mu2], -1)))

    def _latents(self, x, y, k, generator):
        h = self.features(x, y)
        B = h.shape[0]
        mu2, lv2 = self._gauss(self.q2(h))
        d1, d2 = self.config.latent_dim, self.config.latent2_dim

        def rnd(*shape):
            return torch.randn(shape, generator=generator).to(h) if generator is not None else \
                torch.randn(*shape, device=h.device, dtype=h.dtype)
        z2 = mu2[:, None] + torch.exp(0.5 * lv2)[:, None] * rnd(B, k, d2)
        hk = h[:, None].expand(B, k, h.shape[-1])
        mu1, lv1 = self._gauss(self.q1(torch.cat([hk, z2], -1)))
        z1 = mu1 + torch.exp(0.5 * lv1) * rnd(B, k, d1)
        pmu1, plv1 = self._gauss(self.p1(z2))
        return dict(mu2=mu2, lv2=lv2, z2=z2, mu1=mu1, lv1=lv1, z1=z1, pmu1=pmu1, plv1=plv1)

    # ---- objectives --------------------------------------------------------------------------------
    def elbo_terms(self, x, y=None, generator=None):
        L = self._latents(x, y, 1, generator)
        z1, z2 = L["z1"][:, 0], L["z2"][:, 0]
        rec = self.log_px(x, self.decode(z1, self._cond(y, len(x))))
        kl1 = gaussian_kl(L["mu1"][:, 0], L["lv1"][:, 0], L["pmu1"][:, 0], L["plv1"][:, 0])
        if self.config.kl == "analytic" and isinstance(self.prior, StandardNormal):
            kl2 = gaussian_kl(L["mu2"], L["lv2"], torch.zeros_like(L["mu2"]), torch.zeros_like(L["lv2"]))
        else:
            kl2 = normal_log_prob(z2, L["mu2"], L["lv2"]) - self.prior.log_prob(z2)
        return rec, kl1 + kl2

    def log_weights(self, x, y=None, k: int = 1, generator=None):
        L = self._latents(x, y, k, generator)
        B = x.shape[0]
        cf = self._cond(y, B)
        params = self.decode(L["z1"].reshape(B * k, -1), None if cf is None else cf.repeat_interleave(k, 0))
        lpx = self.log_px(x.repeat_interleave(k, 0), params).reshape(B, k)
        return (lpx + normal_log_prob(L["z1"], L["pmu1"], L["plv1"]) + self.prior.log_prob(L["z2"])
                - normal_log_prob(L["z2"], L["mu2"][:, None], L["lv2"][:, None])
                - normal_log_prob(L["z1"], L["mu1"], L["lv1"]))

    def sample_latent(self, n: int, generator=None):
        z2 = self.prior.sample(n, generator=generator, device=self.device).to(self.device, self.q2.weight.dtype)
        mu1, lv1 = self._gauss(self.p1(z2))
        return mu1 + torch.exp(0.5 * lv1) * torch.randn(mu1.shape, generator=generator).to(mu1)


__all__ = ["HVAE", "gaussian_kl"]

