"""Mixture density networks (Bishop 1994, "Mixture Density Networks", NCRG/94/004).

A network maps the condition t to the parameters of a Gaussian mixture over x:

    p(x | t) = Σ_k π_k(t) N(x; μ_k(t), diag σ_k(t)²),     π = softmax(a),  σ = softplus(s) + σ_min

    log p(x | t) = logsumexp_k [ log π_k − Σ_d ( log σ_kd + ½ log 2π + ½ ((x_d − μ_kd)/σ_kd)² ) ]

(Bishop 1994, eq. 22–26; the log-sum-exp keeps it finite when one component dominates, and the
variance floor σ_min keeps a component from collapsing onto a single training point.)

Regularisation (all off by default; they change the *training loss* only — ``log_prob``, the
validation loss and every evaluation stay the exact log-density above):

* noise regularisation (Rothfuss et al. 2019, "Noise Regularization for Conditional Density
  Estimation", arXiv:1907.08982): each training step perturbs target and condition,

      L(θ) = E_{ξ ~ N(0, σ_x² I), η ~ N(0, σ_t² I)} [ −log p_θ(x + ξ | t + η) ]      (``noise_x``, ``noise_cond``)

  estimated with one draw per example and step. It is maximum likelihood on the data smoothed
  by a Gaussian kernel (a kernel density estimate of p(x, t)), i.e. a smoothness prior on
  t ↦ p(· | t) that fights the overfitting of a flexible mixture to few points;
* ``dropout`` on the hidden features;
* ``members`` = M > 1: an ensemble of M independently initialised MDNs trained side by side on
  the same batches, each on its own likelihood, and evaluated as their average,

      p(x | t) = (1/M) Σ_m p_m(x | t),     L(θ) = (1/M) Σ_m −log p_m(x | t),

  itself one MDN with M·K components (mixing weights π_mk / M), so ``mixture``, ``sample`` and
  ``log_prob`` treat it as one (Lakshminarayanan et al. 2017, "Deep Ensembles").

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
        noise_x: float = 0.0         # σ_x: Gaussian noise added to the target x in the training loss
        noise_cond: float = 0.0      # σ_t: Gaussian noise added to the condition t in the training loss
        dropout: float = 0.0         # dropout on the hidden features (training only)
        members: int = 1             # M independently initialised MDNs, evaluated as their average

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
        if c.members < 1:
            raise ModelError(f"mdn: members must be >= 1, got {c.members}")
        if c.noise_x < 0 or c.noise_cond < 0 or not 0 <= c.dropout < 1:
            raise ModelError("mdn: noise_x and noise_cond must be >= 0 and dropout in [0, 1)")
        self.dim = info.dim
        self.cond_dim = math.prod(info.cond_shape) if info.cond == "continuous" and info.cond_shape else 0
        if c.noise_cond and not self.cond_dim:
            raise ModelError("mdn: noise_cond needs conditional data (this mdn is unconditional)")
        self.net, self.head = self._member()
        # members 2..M (member 1 keeps the names net/head, so M = 1 is the plain MDN)
        self.ensemble = nn.ModuleList(nn.ModuleDict(dict(zip(("net", "head"), self._member())))
                                      for _ in range(c.members - 1))
        self.act = activation(c.act)
        self.drop = nn.Dropout(c.dropout) if c.dropout else nn.Identity()
        self.register_load_state_dict_pre_hook(_rename_old_features)

    def _member(self) -> tuple[nn.Module, MixtureDensityHead]:
        """One MDN's network (condition → features, or learned features if unconditional) and head."""
        c = self.config
        feat = c.hidden[-1] if c.hidden else max(self.cond_dim, 1)
        if self.cond_dim:
            net = MLP(self.cond_dim, feat, c.hidden[:-1], act=c.act, dropout=c.dropout) if c.hidden else nn.Identity()
        else:  # unconditional: a plain (learned) Gaussian mixture
            net = _Features(feat)
        return net, MixtureDensityHead(feat, self.dim, c.components, c.min_std)

    def _members(self):
        yield self.net, self.head
        for m in self.ensemble:
            yield m["net"], m["head"]

    def member_mixtures(self, cond: torch.Tensor | None, n: int | None = None) -> list[dict[str, torch.Tensor]]:
        """The mixture parameters of each ensemble member (one list entry per member; M = 1: one)."""
        if self.cond_dim:
            if cond is None:
                raise ModelError("mdn was trained on conditional data: pass cond= (one row per example)")
            inp = torch.as_tensor(cond, dtype=torch.float32, device=self.device).reshape(-1, self.cond_dim)
        else:
            if cond is not None:
                raise ModelError("this mdn is unconditional; do not pass cond=")
            inp = torch.zeros(n or 1, 0, device=self.device)
        out = []
        for net, head in self._members():
            h = net(inp)
            out.append(head(self.drop(self.act(h)) if self.cond_dim else h))
        return out

    def mixture(self, cond: torch.Tensor | None, n: int | None = None) -> dict[str, torch.Tensor]:
        """The mixture parameters for each row of ``cond`` (N, *cond_shape). With M members: one
        mixture of M·K components, log π_mk = log_softmax(a_m)_k − log M."""
        ps = self.member_mixtures(cond, n)
        if len(ps) == 1:
            return ps[0]
        logits = torch.cat([F.log_softmax(p["logits"], -1) for p in ps], -1) - math.log(len(ps))
        return {"logits": logits, "mean": torch.cat([p["mean"] for p in ps], -2),
                "std": torch.cat([p["std"] for p in ps], -2)}

    def loss(self, batch, phase="main"):
        """−(1/N) Σ_i (1/M) Σ_m log p_m(x_i + ξ_i | t_i + η_i): exact NLL when noise is 0 and M = 1 (and
        always in eval mode, so validation losses are exact); see the module docstring."""
        x, cond = batch["x"], batch.get("y")
        self.check_input(x, cond)
        x = x.reshape(len(x), -1)
        if self.training and self.config.noise_x:
            x = x + self.config.noise_x * torch.randn_like(x)                        # x + ξ, ξ ~ N(0, σ_x²)
        if self.training and self.config.noise_cond and cond is not None:
            cond = torch.as_tensor(cond, dtype=torch.float32, device=x.device)
            cond = cond + self.config.noise_cond * torch.randn_like(cond)            # t + η, η ~ N(0, σ_t²)
        if self.training:      # each member on its own likelihood (an ensemble, not one big mixture)
            lps = [self.head.log_prob(p, x) for p in self.member_mixtures(cond, n=len(x))]
            return -torch.stack(lps).mean()
        return -self.head.log_prob(self.mixture(cond, n=len(x)), x).mean()

    def log_prob(self, x, cond=None, **options):
        """log p(x | cond) in nats per row (exact)."""
        self.check_input(x, cond)
        if self.cond_dim and cond is not None and len(cond) != len(x):
            raise ModelError(f"mdn.log_prob: x has {len(x)} rows but cond has {len(cond)}")
        p = self.mixture(cond, n=len(x))
        return MixtureDensityHead.log_prob(p, x.reshape(len(x), -1))

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
        return MixtureDensityHead.sample(p, generator, temperature).reshape(n, *self.info.shape)

    @torch.no_grad()
    def predict_mean(self, cond) -> torch.Tensor:
        """E[x | cond] under the mixture (a regression prediction)."""
        return MixtureDensityHead.mean(self.mixture(cond)).reshape(-1, *self.info.shape)


def _rename_old_features(module, state_dict, prefix, *args):
    """Weights saved before the ensemble option kept an unconditional MDN's learned features under
    ``features``; they now live in ``net.features``. Renaming on load keeps those files loadable."""
    old, new = prefix + "features", prefix + "net.features"
    if old in state_dict and new not in state_dict:
        state_dict[new] = state_dict.pop(old)


class _Features(nn.Module):
    """Learned features h of an unconditional MDN: maps an empty (N, 0) input to h repeated N times."""

    def __init__(self, feat: int):
        super().__init__()
        self.features = nn.Parameter(torch.zeros(feat))

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        return self.features.expand(len(inp), -1)
