"""Dataset registry: ``load_dataset(name, split=...)`` and ``list_datasets()``."""
from __future__ import annotations

import difflib
from typing import Any, Callable

from .base import SPLITS, DataError, Dataset

_DATASETS: dict[str, dict[str, Any]] = {}


def register_dataset(name: str, description: str):
    """Decorator: ``fn(split, **kwargs) -> Dataset`` becomes ``load_dataset(name, split, **kwargs)``."""
    def deco(fn: Callable[..., Dataset]):
        if name in _DATASETS:
            raise RuntimeError(f"dataset {name!r} registered twice")
        _DATASETS[name] = {"fn": fn, "description": description}
        return fn
    return deco


def list_datasets() -> dict[str, str]:
    """Registered dataset names with a one-line description each."""
    return {k: v["description"] for k, v in sorted(_DATASETS.items())}


def load_dataset(name, split: str = "train", **kwargs) -> Dataset:
    """Load a dataset by registry name, or wrap user data.

    ``name`` may be a registered name (``gl.list_datasets()``), a numpy array or tensor
    (continuous unless ``num_levels=K`` says it is discrete), or a path to a ``.npy``, ``.npz``,
    ``.csv`` or text file, an image folder, or an MNIST/Fashion-MNIST/CIFAR-10 directory.
    """
    if split not in SPLITS:
        raise DataError(f"split must be one of {SPLITS}, got {split!r}")
    if not isinstance(name, str):
        from .user import from_array
        return from_array(name, split=split, **kwargs)
    if name in _DATASETS:
        ds = _DATASETS[name]["fn"](split=split, **kwargs)
        ds.source = {"name": name, "split": split, **{k: v for k, v in kwargs.items() if _jsonable(v)}}
        return ds
    import os
    if os.path.exists(name):
        from .user import from_path
        return from_path(name, split=split, **kwargs)
    close = difflib.get_close_matches(name, list(_DATASETS), n=3)
    hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
    raise DataError(f"unknown dataset {name!r} (and no such file or folder).{hint} "
                    f"Known: {', '.join(sorted(_DATASETS))}")


def _jsonable(v) -> bool:
    return isinstance(v, (str, int, float, bool, type(None)))
