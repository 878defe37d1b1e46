"""Mixture density networks (Bishop 1994, "Mixture Density Networks", NCRG/94/004).

A network maps the condition t to the parameters of a Gaussian mixture over x:

    p(x | t) = Σ_k π_k(t) N(x; μ_k(t), diag σ_k(t)²),     π = softmax(a),  σ = softplus(s) + σ_min

    log p(x | t) = logsumexp_k [ log π_k − Σ_d ( log σ_kd + ½ log 2π + ½ ((x_d − μ_kd)/σ_kd)² ) ]

(Bishop 1994, eq. 22–26; the log-sum-exp keeps it finite when one component dominates, and the
variance floor σ_min keeps a component from collapsing onto a single training point.)

:class:`MixtureDensityHead` is the reusable part: any network producing features h (…, F) can end
in it — the MDN below, and the RNN / WaveNet families for real-valued sequences.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..data.base import DataInfo
from ..nn.mlp import MLP, activation
from .base import GenerativeModel, ModelError
from .registry import register

LOG_2PI = math.log(2 * math.pi)


class MixtureDensityHead(nn.Module):
    """Linear map from features (…, F) to a K-component diagonal Gaussian mixture over ``dim`` values.

    ``params = head(h)`` is a dict with ``logits`` (…, K), ``mean`` (…, K, D), ``std`` (…, K, D).
    """

    def __init__(self, in_features: int, dim: int, components: int = 5, min_std: float = 1e-3):
        super().__init__()
        self.dim, self.K, self.min_std = dim, components, min_std
        self.proj = nn.Linear(in_features, components * (1 + 2 * dim))

    def forward(self, h: torch.Tensor) -> dict[str, torch.Tensor]:
        K, D = self.K, self.dim
        out = self.proj(h)
        logits, mean, s = out.split([K, K * D, K * D], dim=-1)
        shape = out.shape[:-1] + (K, D)
        std = F.softplus(s.reshape(shape)) + self.min_std          # σ = softplus(s) + σ_min
        return {"logits": logits, "mean": mean.reshape(shape), "std": std}

    @staticmethod
    def log_prob(params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """log p(x) for x (…, D) under the mixture ``params`` (…); returns (…)."""
        z = (x.unsqueeze(-2) - params["mean"]) / params["std"]
        comp = -(params["std"].log() + 0.5 * LOG_2PI + 0.5 * z ** 2).sum(-1)       # log N per component
        return torch.logsumexp(F.log_softmax(params["logits"], -1) + comp, dim=-1)  # Bishop eq. 26

    @staticmethod
    def sample(params: dict[str, torch.Tensor], generator: torch.Generator | None = None,
               temperature: float = 1.0) -> torch.Tensor:
        """One draw per mixture: pick k ~ Categorical(π), then x = μ_k + σ_k ε. ``temperature``
        scales the standard deviations (and sharpens π as π^{1/T}); 1 = the model's density."""
        logits, mean, std = params["logits"], params["mean"], params["std"]
        if temperature <= 0:
            raise ValueError("temperature must be > 0 for a mixture density")
        probs = torch.softmax(logits / temperature, -1)
        flat = probs.reshape(-1, probs.shape[-1])
        k = torch.multinomial(flat, 1, generator=generator).reshape(probs.shape[:-1])
        idx = k[..., None, None].expand(*k.shape, 1, mean.shape[-1])
        mu, sd = mean.gather(-2, idx).squeeze(-2), std.gather(-2, idx).squeeze(-2)
        eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        return mu + temperature * sd * eps

    @staticmethod
    def mean(params: dict[str, torch.Tensor]) -> torch.Tensor:
        """E[x] = Σ_k π_k μ_k (what a least-squares regressor would predict)."""
        return (torch.softmax(params["logits"], -1)[..., None] * params["mean"]).sum(-2)


@register("mdn")
class MDN(GenerativeModel):
    """Mixture density network: p(x | cond) as a Gaussian mixture whose parameters an MLP predicts."""

    likelihood = "exact"
    conditional_ok = True

    @dataclass
    class Config:
        components: int = 5
        hidden: tuple[int, ...] = (64, 64)
        act: str = "tanh"
        min_std: float = 1e-3

    @classmethod
    def check_data(cls, info: DataInfo) -> None:
        if info.discrete:
            raise ModelError("mdn models continuous data; for discrete data use made, pixelcnn, rnn or gpt")
        if info.cond == "label":
            raise ModelError("mdn conditions on continuous inputs (cond='continuous'); for class labels "
                             "use a class-conditional model such as pixelcnn")

    def __init__(self, info: DataInfo, config: "MDN.Config | None" = None):
        super().__init__(info, config)
        c = self.config
        self.dim = info.dim
        self.cond_dim = math.prod(info.cond_shape) if info.cond == "continuous" and info.cond_shape else 0
        feat = c.hidden[-1] if c.hidden else max(self.cond_dim, 1)
        if self.cond_dim:
            self.net = MLP(self.cond_dim, feat, c.hidden[:-1], act=c.act) if c.hidden else nn.Identity()
            self.act = activation(c.act)
        else:  # unconditional: a plain (learned) Gaussian mixture
            self.features = nn.Parameter(torch.zeros(feat))
        self.head = MixtureDensityHead(feat, self.dim, c.components, c.min_std)

    def mixture(self, cond: torch.Tensor | None, n: int | None = None) -> dict[str, torch.Tensor]:
        """The mixture parameters for each row of ``cond`` (N, *cond_shape)."""
        if self.cond_dim:
            if cond is None:
                raise ModelError("mdn was trained on conditional data: pass cond= (one row per example)")
            cond = torch.as_tensor(cond, dtype=torch.float32, device=self.device).reshape(-1, self.cond_dim)
            return self.head(self.act(self.net(cond)))
        if cond is not None:
            raise ModelError("this mdn is unconditional; do not pass cond=")
        return self.head(self.features.expand(n or 1, -1))

    def loss(self, batch, phase="main"):
        return -self.log_prob(batch["x"], batch.get("y")).mean()

    def log_prob(self, x, cond=None, **options):
        """log p(x | cond) in nats per row (exact)."""
        self.check_input(x, cond)
        if self.cond_dim and cond is not None and len(cond) != len(x):
            raise ModelError(f"mdn.log_prob: x has {len(x)} rows but cond has {len(cond)}")
        p = self.mixture(cond, n=len(x))
        return self.head.log_prob(p, x.reshape(len(x), -1))

    @torch.no_grad()
    def sample(self, n, cond=None, generator=None, temperature: float = 1.0, **options):
        """``n`` draws. With ``cond`` of n rows: one draw per row; with one row: n draws for that
        condition. Returns (n, *shape)."""
        if options:
            raise ModelError(f"mdn.sample: unknown option(s) {', '.join(options)}; it takes temperature=")
        if self.cond_dim:
            if cond is None:
                raise ModelError("mdn.sample needs cond= (n rows, or one row repeated n times)")
            cond = torch.as_tensor(cond, dtype=torch.float32).reshape(-1, self.cond_dim)
            if len(cond) == 1:
                cond = cond.expand(n, -1)
            elif len(cond) != n:
                raise ModelError(f"mdn.sample: cond has {len(cond)} rows; pass n={len(cond)} or one row")
        p = self.mixture(cond, n=n)
        return self.head.sample(p, generator, temperature).reshape(n, *self.info.shape)

    @torch.no_grad()
    def predict_mean(self, cond) -> torch.Tensor:
        """E[x | cond] under the mixture (a regression prediction)."""
        return self.head.mean(self.mixture(cond)).reshape(-1, *self.info.shape)
