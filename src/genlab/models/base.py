"""The model protocol every genlab family implements.

A family = network(s) + objective + sampler. The engine (``gl.train``) only ever calls:

- ``model.phases()``: the optimisation phases. Most families have one phase over all parameters;
  adversarial families declare several (e.g. ``critic`` ×5 then ``generator`` ×1), each with its
  own parameters and optimiser settings. This is how GANs use the one engine.
- ``model(batch, phase=...)`` (= ``model.loss``): a scalar loss to minimise, or a dict with a
  ``"loss"`` entry plus extra scalars to log. ``batch`` is a dict with ``"x"`` and, for
  conditional data, ``"y"``.
- ``model.sample(n, cond=None, generator=None, **sampler_options)``: a tensor shaped like the data.

and users (and the metrics) call ``model.log_prob(x, cond=None)``: log-likelihood per example in
nats, whose meaning is declared by the class attribute ``likelihood``:
``"exact"``, ``"bound"`` (a lower bound such as the ELBO), ``"estimate"`` (importance-weighted,
ODE with a trace estimator) or ``"none"`` (then ``log_prob`` raises :class:`NoLikelihoodError`).

Hyper-parameters live in a dataclass ``Config`` nested in each family; ``gl.create`` fills it
with defaults fitted to the data (``default_config``) and user overrides.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Iterable

import torch
from torch import nn

from ..data.base import DataInfo

LIKELIHOOD_KINDS = ("exact", "bound", "estimate", "none")


class NoLikelihoodError(RuntimeError):
    """Raised by ``log_prob`` on a model that has no likelihood (e.g. a GAN)."""


class ModelError(ValueError):
    """Bad model request or bad input to a model; the message says what is wrong."""


@dataclass
class Phase:
    """One optimisation phase of a training step.

    name:    passed to ``model.loss(batch, phase=name)``.
    params:  the parameters this phase's optimiser updates.
    repeats: how many times the phase runs per training step (e.g. 5 critic updates for WGAN).
    lr, betas, weight_decay: optimiser settings for this phase; ``None`` = the trainer's setting.
    """

    name: str
    params: list = field(default_factory=list)
    repeats: int = 1
    lr: float | None = None
    betas: tuple[float, float] | None = None
    weight_decay: float | None = None


class GenerativeModel(nn.Module):
    """Base class of every genlab model. Subclasses set ``name`` (via ``@register``),
    ``likelihood``, a nested ``Config`` dataclass, and implement ``loss`` and ``sample``
    (and ``log_prob`` unless ``likelihood == "none"``)."""

    name: str = "?"
    likelihood: str = "none"
    conditional_ok: bool = False   # accepts cond= (labels or continuous conditions)
    # Training options this family needs by default (TrainConfig fields, e.g. {"grad_clip": None} for
    # GAN critics); gl.train applies them unless the caller passes the option explicitly.
    train_defaults: dict = {}

    @dataclass
    class Config:
        pass

    def __init__(self, info: DataInfo, config: "GenerativeModel.Config | None" = None):
        super().__init__()
        if self.likelihood not in LIKELIHOOD_KINDS:
            raise TypeError(f"{type(self).__name__}.likelihood must be one of {LIKELIHOOD_KINDS}")
        self.info = info
        self.config = config if config is not None else self.default_config(info)

    # ---- construction -------------------------------------------------------------------
    @classmethod
    def default_config(cls, info: DataInfo) -> Any:
        """Defaults fitted to the data. Override to adapt sizes to ``info``."""
        return cls.Config()

    @classmethod
    def check_data(cls, info: DataInfo) -> None:
        """Raise ModelError if this family cannot model data described by ``info``."""

    # ---- the protocol ---------------------------------------------------------------------
    def phases(self) -> list[Phase]:
        return [Phase("main", [p for p in self.parameters() if p.requires_grad])]

    def forward(self, batch: dict[str, torch.Tensor], phase: str = "main"):
        return self.loss(batch, phase=phase)

    def loss(self, batch: dict[str, torch.Tensor], phase: str = "main"):
        raise NotImplementedError

    @torch.no_grad()
    def sample(self, n: int, cond=None, generator: torch.Generator | None = None, **options) -> torch.Tensor:
        raise NotImplementedError

    def log_prob(self, x: torch.Tensor, cond=None, **options) -> torch.Tensor:
        if self.likelihood == "none":
            raise NoLikelihoodError(f"model {self.name!r} has no likelihood (likelihood='none'); "
                                    "evaluate it with sample-based metrics such as mmd, energy or fd")
        raise NotImplementedError

    def likelihood_info(self, **options) -> dict[str, Any]:
        """What ``log_prob`` returns, for evaluation records (kind, units, extra protocol)."""
        return {"kind": self.likelihood, "units": "nats/example"}

    # ---- helpers for subclasses --------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        for p in self.parameters():
            return p.device
        for b in self.buffers():
            return b.device
        return torch.device("cpu")

    def check_input(self, x: torch.Tensor, cond=None) -> None:
        """Clear errors for wrong shape, dtype or levels (call at the top of log_prob)."""
        info = self.info
        if not isinstance(x, torch.Tensor):
            raise ModelError(f"x must be a torch.Tensor, got {type(x).__name__}")
        if tuple(x.shape[1:]) != info.shape:
            raise ModelError(f"{self.name}: x has shape {tuple(x.shape)}, expected (N, {', '.join(map(str, info.shape))})")
        if info.discrete:
            if x.dtype.is_floating_point:
                raise ModelError(f"{self.name}: expected integer levels 0..{info.num_levels - 1}, got {x.dtype}")
            if x.numel() and (int(x.min()) < 0 or int(x.max()) >= info.num_levels):
                raise ModelError(f"{self.name}: values must lie in 0..{info.num_levels - 1}")
        elif not x.dtype.is_floating_point:
            raise ModelError(f"{self.name}: expected float data, got {x.dtype}")
        if cond is not None and not self.conditional_ok:
            raise ModelError(f"{self.name} is not conditional; do not pass cond=")

    # ---- saving and loading (safetensors + JSON, no pickles) --------------------------------
    def config_dict(self) -> dict[str, Any]:
        return {"genlab_model": self.name, "info": self.info.to_dict(), "config": dataclasses.asdict(self.config)}

    def save_pretrained(self, path) -> None:
        from .io import save_model
        save_model(self, path)

    @classmethod
    def from_pretrained(cls, path, map_location="cpu") -> "GenerativeModel":
        from .io import load_model
        model = load_model(path, map_location=map_location)
        if not isinstance(model, cls):
            raise ModelError(f"{path} holds a {type(model).__name__}, not a {cls.__name__}")
        return model

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def parameters_of(*modules: nn.Module) -> list:
    return [p for m in modules for p in m.parameters() if p.requires_grad]


def as_list(x: Iterable) -> list:
    return list(x)
