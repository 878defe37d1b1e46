"""Pictures of data and samples: scatter (2-D), image grid, decoded text, line plots, conditional scatter.

``save_samples(x, info, path)`` writes a PNG with matplotlib's Agg canvas (no display, no pyplot
global state); the engine and the CLI call it. ``image_grid(x, info)`` returns the grid as a
numpy array (H, W, 3) of floats in [0, 1] for reuse (reports, TensorBoard).
"""
from __future__ import annotations

from pathlib import Path

import math

import numpy as np
import torch

from .base import DataError, DataInfo


def _np(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().float().numpy() if x.dtype.is_floating_point else x.detach().cpu().numpy()
    return np.asarray(x)


def image_grid(x, info: DataInfo, nrow: int | None = None, pad: int = 1, value_range=None) -> np.ndarray:
    """Tile images (N, C, H, W) into one (H', W', 3) float array in [0, 1].

    Discrete images are scaled by 1/(num_levels − 1). Continuous images are shown on
    ``value_range`` (default: [0, 1] if the values lie there, else their min..max).
    ``nrow`` images per row (default ⌈√N⌉); ``pad`` pixels of white between tiles.
    """
    a = _np(x).astype(np.float64)
    if a.ndim == 3:
        a = a[:, None]
    if a.ndim != 4:
        raise DataError(f"image_grid needs images (N, C, H, W), got shape {a.shape}")
    n, c, h, w = a.shape
    if c not in (1, 3):
        raise DataError(f"image_grid shows 1 (grey) or 3 (RGB) channels, got {c}")
    if n == 0:
        raise DataError("image_grid got no images")
    if info.discrete:
        a = a / (info.num_levels - 1)
    else:
        lo, hi = value_range if value_range is not None else (
            (0.0, 1.0) if a.min() >= 0 and a.max() <= 1 else (float(a.min()), float(a.max())))
        a = (a - lo) / max(hi - lo, 1e-12)
    a = np.clip(a, 0, 1)
    if c == 1:
        a = np.repeat(a, 3, axis=1)
    nrow = nrow or math.ceil(math.sqrt(n))
    ncol_rows = math.ceil(n / nrow)
    grid = np.ones((ncol_rows * (h + pad) + pad, nrow * (w + pad) + pad, 3))
    for i in range(n):
        r, q = divmod(i, nrow)
        grid[pad + r * (h + pad): pad + r * (h + pad) + h, pad + q * (w + pad): pad + q * (w + pad) + w] = \
            a[i].transpose(1, 2, 0)
    return grid


def decode_text(x, info: DataInfo, n: int = 8, stop: str | None = None) -> list[str]:
    """Decode the first ``n`` token sequences with ``info.vocab`` (``stop``: cut at that token)."""
    if info.vocab is None:
        raise DataError("text data need info.vocab to be decoded")
    from .text import Vocab
    v = Vocab(info.vocab)
    a = _np(x)
    if a.ndim == 1:
        a = a[None]
    return [v.decode(row, stop=stop) for row in a[:n]]


def plot_samples(x, info: DataInfo, ax=None, cond=None, n: int | None = None, **kw):
    """Draw data or samples ``x`` described by ``info`` on ``ax`` (a new figure if None); returns ``ax``.

    - vectors of dimension 2: scatter (``s``, ``alpha``, ``color`` …);
    - continuous conditions (``info.cond == "continuous"``, e.g. ``bishop``): scatter of the
      target against ``cond`` (pass ``cond=`` the conditions) — the MDN picture; labelled
      vectors with ``cond=`` labels: scatter coloured by class (images ignore labels);
    - other vectors: scatter of the first two dimensions (dimension 1: a histogram);
    - images: a grid (``nrow``, ``pad``, ``value_range``), at most 64 images;
    - text: decoded sequences in a monospace box (``stop=`` cuts each at that token; ``names``
      stops at its end token ``"."`` by default);
    - sequences: line plots of up to 8 sequences.
    """
    if ax is None:
        from matplotlib.figure import Figure
        ax = Figure(figsize=kw.pop("figsize", (4, 4))).add_subplot()
    if info.modality == "image":
        m = 64 if n is None else n
        grid = image_grid(x[:m], info, **{k: kw.pop(k) for k in ("nrow", "pad", "value_range") if k in kw})
        ax.imshow(grid, interpolation="nearest")
        ax.set_axis_off()
        return ax
    if info.modality == "text":
        names = info.name == "names"                     # one name per sequence, "." ends it
        lines = decode_text(x, info, n=(24 if names else 8) if n is None else n,
                            stop=kw.pop("stop", "." if names else None))
        body = ("\n" if names else "\n" + "-" * 40 + "\n").join(lines)
        ax.text(0.01, 0.99, body, family="monospace", fontsize=kw.pop("fontsize", 7), va="top", ha="left",
                transform=ax.transAxes)
        ax.set_axis_off()
        return ax
    a = _np(x)
    a = a[:n] if n is not None else a
    if info.modality == "sequence":
        for row in a[:8]:
            ax.plot(row.reshape(len(row), -1), lw=kw.get("lw", 1))
        ax.set_xlabel("t")
        return ax
    a = a.reshape(len(a), -1)
    style = {"s": 3, "alpha": 0.5, "linewidths": 0}
    style.update(kw)
    if cond is not None and info.cond == "continuous":
        c = _np(cond).reshape(len(_np(cond)), -1)[: len(a)]
        ax.scatter(c[:, 0], a[:, 0], **style)
        ax.set_xlabel("condition")
        ax.set_ylabel("x")
        return ax
    if cond is not None and info.cond == "label" and a.shape[1] >= 2:
        style.setdefault("cmap", "tab10")
        style.pop("color", None)
        ax.scatter(a[:, 0], a[:, 1], c=_np(cond).reshape(-1)[: len(a)], **style)
        ax.set_aspect("equal", adjustable="datalim")
        return ax
    if a.shape[1] == 1:
        ax.hist(a[:, 0], bins=kw.get("bins", 50), density=True, color=kw.get("color"))
        return ax
    ax.scatter(a[:, 0], a[:, 1], **style)
    ax.set_aspect("equal", adjustable="datalim")
    return ax


def save_samples(x, info: DataInfo, path, cond=None, title: str | None = None, dpi: int = 100, **kw) -> str:
    """Write ``plot_samples(x, info)`` to a PNG at ``path`` (Agg canvas); returns the path."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    size = kw.pop("figsize", (8, 4) if info.modality == "text" else (4, 4))
    fig = Figure(figsize=size)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    plot_samples(x, info, ax=ax, cond=cond, **kw)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(str(path), dpi=dpi, format="png")
    return str(path)
