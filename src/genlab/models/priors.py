"""Priors p(z) over a VAE's continuous latent space (Tomczak, *Deep Generative Modeling*, ch. 4.4).

Every prior is an ``nn.Module`` with ``log_prob(z) -> (B,)`` and ``sample(n, generator) -> (n, d)``.

- ``normal``:  p(z) = N(0, I).
- ``mog``:     p(z) = Σ_k π_k N(z; μ_k, diag σ_k²), all learned.
- ``vamp``:    VampPrior (Tomczak & Welling 2018): p(z) = (1/K) Σ_k q(z | u_k) with learned
               pseudo-inputs u_k in the encoder's input space; it needs the VAE's encoder, passed
               as ``encode=`` to ``log_prob``/``sample`` (not stored: the encoder's weights live once,
               and a deep copy of the VAE, e.g. for EMA, stays self-consistent).
- ``flow``:    a RealNVP prior (Dinh et al. 2017), built from the flow family's coupling stack
               (``models/realnvp.py``): u = f(z) with affine couplings, u ~ N(0, I),
               log p(z) = log N(f(z); 0, I) + log |det ∂f/∂z|.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .flows_common import Compose
from .realnvp import vector_coupling_stack

LOG2PI = math.log(2 * math.pi)


def normal_log_prob(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z; μ, diag exp(logvar)) summed over the last dimension."""
    return -0.5 * (LOG2PI + logvar + (z - mu) ** 2 * torch.exp(-logvar)).sum(-1)


class StandardNormal(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim

    def log_prob(self, z: torch.Tensor, encode=None) -> torch.Tensor:
        return -0.5 * (LOG2PI + z ** 2).sum(-1)

    def sample(self, n: int, generator: torch.Generator | None = None, device=None, encode=None) -> torch.Tensor:
        return torch.randn(n, self.dim, generator=generator, device=device)


class MixtureOfGaussians(nn.Module):
    def __init__(self, dim: int, components: int = 10):
        super().__init__()
        self.dim = dim
        self.means = nn.Parameter(torch.randn(components, dim))
        self.logvars = nn.Parameter(torch.zeros(components, dim))
        self.logits = nn.Parameter(torch.zeros(components))

    def log_prob(self, z: torch.Tensor, encode=None) -> torch.Tensor:
        # log p(z) = logsumexp_k [log π_k + log N(z; μ_k, σ_k²)]
        comp = normal_log_prob(z.unsqueeze(-2), self.means, self.logvars)        # (..., K)
        return torch.logsumexp(comp + torch.log_softmax(self.logits, 0), -1)

    def sample(self, n: int, generator: torch.Generator | None = None, device=None, encode=None) -> torch.Tensor:
        k = torch.multinomial(torch.softmax(self.logits, 0).detach().cpu(), n, replacement=True, generator=generator)
        eps = torch.randn(n, self.dim, generator=generator)
        return (self.means.detach().cpu()[k] + eps * torch.exp(0.5 * self.logvars.detach().cpu()[k])).to(self.means.device)


class VampPrior(nn.Module):
    """p(z) = (1/K) Σ_k q(z | u_k); ``encode(u) -> (mu, logvar)`` is the VAE's encoder."""

    def __init__(self, dim: int, input_shape: tuple[int, ...], components: int = 50, init_scale: float = 0.5):
        super().__init__()
        self.dim = dim
        # pseudo-inputs live in the encoder's input space (data scaled to [0, 1] for discrete data)
        self.pseudo = nn.Parameter(init_scale + 0.05 * torch.randn(components, *input_shape))

    def _components(self, encode):
        if encode is None:
            raise RuntimeError("VampPrior needs the encoder: log_prob(z, encode=vae_encoder_fn)")
        return encode(self.pseudo)

    def log_prob(self, z: torch.Tensor, encode=None) -> torch.Tensor:
        mu, logvar = self._components(encode)                                          # (K, d)
        comp = normal_log_prob(z.unsqueeze(-2), mu, logvar)                      # (..., K)
        return torch.logsumexp(comp, -1) - math.log(mu.shape[0])

    def sample(self, n: int, generator: torch.Generator | None = None, device=None, encode=None) -> torch.Tensor:
        mu, logvar = (t.detach().cpu() for t in self._components(encode))
        k = torch.randint(mu.shape[0], (n,), generator=generator)
        eps = torch.randn(n, self.dim, generator=generator)
        return (mu[k] + eps * torch.exp(0.5 * logvar[k])).to(self.pseudo.device)


class FlowPrior(nn.Module):
    """p(z) through a RealNVP flow u = f(z) (the flow family's coupling stack, ``models/realnvp.py``):
    log p(z) = log N(f(z); 0, I) + log |det ∂f/∂z|; samples z = f⁻¹(u), u ~ N(0, I)."""

    def __init__(self, dim: int, layers: int = 4, hidden: int = 64, scale_bound: float = 2.0):
        super().__init__()
        if dim < 2:
            raise ValueError("flow prior needs latent_dim >= 2")
        self.dim = dim
        # couplings (first half fixed) with reverse permutations between them; no ActNorm, whose
        # data-dependent initialisation would depend on which z the prior happens to see first
        self.flow = Compose(vector_coupling_stack(dim, layers, (hidden, hidden), 0, scale_bound, actnorm=False,
                                                  permutation="reverse", act="silu", seed=0))

    def log_prob(self, z: torch.Tensor, encode=None) -> torch.Tensor:
        u, logdet = self.flow(z.reshape(-1, self.dim))
        return (-0.5 * (LOG2PI + u ** 2).sum(-1) + logdet).reshape(z.shape[:-1])

    def sample(self, n: int, generator: torch.Generator | None = None, device=None, encode=None) -> torch.Tensor:
        p = next(self.flow.parameters())
        u = torch.randn(n, self.dim, generator=generator).to(p)
        return self.flow.inverse(u)[0]


PRIORS = ("normal", "mog", "vamp", "flow")


def make_prior(name: str, dim: int, input_shape: tuple[int, ...] = (), components: int = 10) -> nn.Module:
    if name == "normal":
        return StandardNormal(dim)
    if name == "mog":
        return MixtureOfGaussians(dim, components)
    if name == "vamp":
        return VampPrior(dim, input_shape, components)
    if name == "flow":
        return FlowPrior(dim)
    raise ValueError(f"unknown prior {name!r}; choose from {', '.join(PRIORS)}")


__all__ = ["StandardNormal", "MixtureOfGaussians", "VampPrior", "FlowPrior", "make_prior", "normal_log_prob", "PRIORS"]
