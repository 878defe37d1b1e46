"""The dataset object every genlab layer above `data/` sees.

A :class:`Dataset` is a set of tensors with metadata (:class:`DataInfo`): what one example
looks like (``shape``), whether values are continuous or discrete with ``num_levels`` levels,
and what conditions (labels, or the input of a conditional model) come with it. There is no
training code here: the engine draws batches from ``ds.x`` / ``ds.y`` itself.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

SPLITS = ("train", "val", "test")
MODALITIES = ("vector", "image", "sequence", "text")


class DataError(ValueError):
    """Bad data or a bad dataset request; the message says what and how to fix it."""


@dataclass(frozen=True)
class DataInfo:
    """What a model needs to know about the data to build itself (``gl.create`` reads it).

    shape:       shape of one example, e.g. ``(2,)``, ``(1, 8, 8)``, ``(64,)`` for text windows.
    kind:        ``"continuous"`` (float values) or ``"discrete"`` (integers ``0 .. num_levels-1``).
    num_levels:  number of levels for discrete data (17 for digits, 2 for binarised images,
                 the vocabulary size for text); ``None`` for continuous data.
    modality:    ``"vector"``, ``"image"`` (C, H, W), ``"sequence"`` (T,) or (T, C), or ``"text"``.
    cond:        ``None``; ``"label"`` (integer class in ``0 .. num_classes-1``); or
                 ``"continuous"`` (a real vector of shape ``cond_shape``, e.g. an MDN's input).
    vocab:       for text: the characters, index ``i`` is token ``i``.
    name:        the dataset's registry name (or ``"array"`` for user data).
    """

    shape: tuple[int, ...]
    kind: str = "continuous"
    num_levels: int | None = None
    modality: str = "vector"
    cond: str | None = None
    num_classes: int | None = None
    cond_shape: tuple[int, ...] | None = None
    vocab: tuple[str, ...] | None = None
    name: str = "array"

    def __post_init__(self):
        object.__setattr__(self, "shape", tuple(int(s) for s in self.shape))
        if self.cond_shape is not None:
            object.__setattr__(self, "cond_shape", tuple(int(s) for s in self.cond_shape))
        if self.vocab is not None:
            object.__setattr__(self, "vocab", tuple(self.vocab))
        if self.kind not in ("continuous", "discrete"):
            raise DataError(f"kind must be 'continuous' or 'discrete', got {self.kind!r}")
        if self.kind == "discrete" and (self.num_levels is None or self.num_levels < 2):
            raise DataError(f"discrete data needs num_levels >= 2, got {self.num_levels!r}")
        if self.kind == "continuous" and self.num_levels is not None:
            raise DataError("continuous data must not set num_levels")
        if self.modality not in MODALITIES:
            raise DataError(f"modality must be one of {MODALITIES}, got {self.modality!r}")
        if self.cond not in (None, "label", "continuous"):
            raise DataError(f"cond must be None, 'label' or 'continuous', got {self.cond!r}")
        if self.cond == "label" and not self.num_classes:
            raise DataError("labelled data needs num_classes")

    @property
    def dim(self) -> int:
        """Number of scalar values in one example (D in bits/dim)."""
        return math.prod(self.shape)

    @property
    def discrete(self) -> bool:
        return self.kind == "discrete"

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        for k in ("shape", "cond_shape", "vocab"):
            if d[k] is not None:
                d[k] = list(d[k])
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "DataInfo":
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items() if k in known})


@dataclass
class Dataset:
    """Tensors plus metadata. ``x``: (N, *info.shape); ``y``: (N,) labels or (N, *cond_shape).

    Continuous data is float32; discrete data is int64 in ``0 .. num_levels-1``.
    ``log_prob_fn`` / ``entropy`` are set where the true density is known (toys), so metrics can
    report the exact KL gap. ``source`` records how to load the same data again (name + kwargs).
    """

    x: torch.Tensor
    info: DataInfo
    y: torch.Tensor | None = None
    split: str = "train"
    entropy: float | None = None
    log_prob_fn: Callable[[torch.Tensor], torch.Tensor] | None = field(default=None, repr=False)
    source: dict[str, Any] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self):
        stream = self.extras.get("stream")
        if isinstance(stream, torch.Tensor) and self.x.ndim == 2 and self.x.untyped_storage().data_ptr() == \
                stream.untyped_storage().data_ptr():
            # text windows are an unfold view of one token stream: check the stream once, not every window
            validate(stream[:, None].expand(-1, 1), dataclasses.replace(self.info, shape=(1,)), None)
            if tuple(self.x.shape[1:]) != self.info.shape:
                raise DataError(f"x has shape {tuple(self.x.shape)}, expected (N, {self.info.shape[0]})")
        else:
            validate(self.x, self.info, self.y)

    def __len__(self) -> int:
        return self.x.shape[0]

    def __repr__(self) -> str:
        return (f"Dataset({self.info.name!r}, split={self.split!r}, n={len(self)}, shape={self.info.shape}, "
                f"kind={self.info.kind}" + (f", num_levels={self.info.num_levels}" if self.info.discrete else "")
                + (f", cond={self.info.cond}" if self.info.cond else "") + ")")

    @property
    def has_log_prob(self) -> bool:
        return self.log_prob_fn is not None or "cond_log_prob" in self.extras

    def log_prob(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """The true log-density (nats) per example, where known: log p(x), or log p(x | cond) for
        conditional data such as ``bishop`` (whose oracle is ``extras["cond_log_prob"]``)."""
        if cond is not None or self.info.cond == "continuous":
            fn = self.extras.get("cond_log_prob")
            if fn is None or cond is None:
                raise DataError(f"dataset {self.info.name!r}: pass cond= to log_prob for conditional data"
                                if fn is not None else f"dataset {self.info.name!r} has no known conditional density")
            return fn(x, cond)
        if self.log_prob_fn is None:
            raise DataError(f"dataset {self.info.name!r} has no known density")
        return self.log_prob_fn(x)

    def subset(self, n: int) -> "Dataset":
        """The first ``n`` examples (a view, same metadata)."""
        return dataclasses.replace(self, x=self.x[:n], y=None if self.y is None else self.y[:n])

    def plot(self, ax=None, n: int = 2000, **kw):
        """Scatter (2-D), image grid or text excerpt of the data; returns the matplotlib axes."""
        from .plot import plot_samples
        if self.y is not None and "cond" not in kw:
            kw["cond"] = self.y[:n]
        return plot_samples(self.x[:n], self.info, ax=ax, **kw)


def validate(x: torch.Tensor, info: DataInfo, y: torch.Tensor | None = None) -> None:
    """Check that tensors agree with their metadata; raise DataError naming what is wrong."""
    if not isinstance(x, torch.Tensor):
        raise DataError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim < 1 or tuple(x.shape[1:]) != info.shape:
        raise DataError(f"x has shape {tuple(x.shape)}, expected (N, {', '.join(map(str, info.shape))})")
    if info.discrete:
        if x.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8, torch.int8):
            raise DataError(f"discrete data must be an integer tensor, got {x.dtype}")
        if x.numel() and (int(x.min()) < 0 or int(x.max()) >= info.num_levels):
            raise DataError(f"discrete values must lie in 0..{info.num_levels - 1} (num_levels={info.num_levels}), "
                            f"got range {int(x.min())}..{int(x.max())}")
    else:
        if not x.dtype.is_floating_point:
            raise DataError(f"continuous data must be a float tensor, got {x.dtype} "
                            "(pass num_levels=K if the data are integer levels)")
        if x.numel() and not torch.isfinite(x).all():
            bad = (~torch.isfinite(x)).reshape(x.shape[0], -1).any(1).nonzero()[:5, 0].tolist()
            raise DataError(f"data contain NaN or infinite values (first bad rows: {bad})")
    if y is not None:
        if y.shape[0] != x.shape[0]:
            raise DataError(f"y has {y.shape[0]} rows but x has {x.shape[0]}")
        if info.cond == "label":
            if y.dtype.is_floating_point or y.ndim != 1:
                raise DataError("labels must be a 1-D integer tensor")
            if y.numel() and (int(y.min()) < 0 or int(y.max()) >= info.num_classes):
                raise DataError(f"labels must lie in 0..{info.num_classes - 1}")
        elif info.cond == "continuous":
            if not y.dtype.is_floating_point or not torch.isfinite(y).all():
                raise DataError("continuous conditions must be finite floats")
