"""User data: arrays, files and folders → :class:`Dataset`.

``gl.load_dataset(obj, split=...)`` calls :func:`from_array` for a numpy array or tensor and
:func:`from_path` for a path. Supported:

- numpy array / torch tensor: continuous (float32) unless ``num_levels=K`` says the values are
  integer levels 0…K−1. (N,) becomes (N, 1); (N, D) is a vector; (N, H, W) is a one-channel image;
  (N, C, H, W) an image (channels-last (N, H, W, C) with C in 1, 3, 4 is transposed).
  ``modality="sequence"`` keeps (N, T) or (N, T, C) as sequences. ``labels=`` adds integer class
  labels (``cond="label"``) or real conditions (``cond="continuous"``).
- ``.npy`` (one array), ``.npz`` (keys ``x`` and optional ``y``), ``.csv`` (numeric, optional
  header; ``label_column=`` name or index makes that column the labels).
- a folder of images (PNG/JPG/BMP/GIF via pillow): subfolder names are the classes (sorted); or
  a flat folder without labels. ``mode="L"|"RGB"`` (default: RGB if any image is in colour),
  ``size=(H, W)`` or ``size=S`` resizes; without ``size`` all images must have one size.
  Pixels are int64 levels 0…255.
- a text file (``.txt``, ``.md`` or any other extension not listed here): character level like
  ``shakespeare`` (90/10 split by position, test = val; ``block_size=``).
- a folder with MNIST / Fashion-MNIST IDX files (``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
  ``t10k-…``; raw or ``.gz``): (1, 28, 28), 256 levels (``binarize=True`` thresholds at 128 → 2 levels).
- a folder with CIFAR-10 python batches (``data_batch_1``…``5``, ``test_batch``, or the
  ``cifar-10-batches-py`` folder inside it): (3, 32, 32), 256 levels, 10 classes. These files
  are pickles; they are read ONLY by :class:`RestrictedUnpickler`, which builds nothing but
  dicts, lists, bytes, strings, numbers and numpy arrays and refuses every other global
  (so a crafted file cannot run code).

Splits. Data without a split get a seeded permutation (``seed=0``) cut 80/10/10 into
train/val/test (``split_fractions=`` overrides). Data with an official train/test split (IDX,
CIFAR) keep their test set as ``test``, and a seeded 10 % of the official training set becomes
``val`` (``val_fraction=``).

Downloads (:func:`download`): off by default (``download=True`` on an MNIST-like/CIFAR folder
path), never called by the tests. A file is accepted only if its checksum matches
(:func:`verify_checksum`, SHA-256 or the MD5 published by the dataset's maintainers).
"""
from __future__ import annotations

import csv
import gzip
import hashlib
import os
import pickle
import struct
from typing import Any, Sequence

import numpy as np
import torch

from .base import MODALITIES, DataError, DataInfo, Dataset

SPLIT_FRACTIONS = (0.8, 0.1, 0.1)
IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
TEXT_EXTS_REFUSED = (".npy", ".npz", ".csv", ".pkl", ".pickle", ".pt", ".pth", ".safetensors", ".gz", ".zip",
                     ".tar") + IMAGE_EXTS


# ---------------------------------------------------------------------------------------------
# Splits

def split_indices(n: int, split: str, fractions: Sequence[float] = SPLIT_FRACTIONS, seed: int = 0) -> np.ndarray:
    """Indices of ``split`` in a seeded permutation of ``range(n)`` cut by ``fractions`` (train, val, test).

    Sizes: train = floor(f_train · n), val = floor(f_val · n), test = the rest, so the three are
    disjoint and cover every row. Each split's indices are returned sorted.
    """
    if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-6:
        raise DataError(f"split_fractions must be three non-negative numbers summing to 1, got {tuple(fractions)}")
    perm = np.random.default_rng(seed).permutation(n)
    n_tr, n_va = int(fractions[0] * n), int(fractions[1] * n)
    idx = {"train": perm[:n_tr], "val": perm[n_tr:n_tr + n_va], "test": perm[n_tr + n_va:]}[split]
    if len(idx) == 0:
        raise DataError(f"the {split} split of {n} examples is empty with split_fractions={tuple(fractions)}; "
                        "use more data or other fractions")
    return np.sort(idx)


# ---------------------------------------------------------------------------------------------
# Arrays

def _to_numpy(a, what: str) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        return a.detach().cpu().numpy()
    if isinstance(a, np.ndarray):
        return a
    if isinstance(a, (list, tuple)):
        try:
            return np.asarray(a)
        except ValueError as e:
            raise DataError(f"{what} is a ragged list and cannot become an array: {e}") from e
    raise DataError(f"{what} must be a numpy array or torch tensor, got {type(a).__name__}")


def _arrange(a: np.ndarray, modality: str | None, source: str) -> tuple[np.ndarray, str]:
    """Reshape to (N, *shape) and pick the modality (see the module docstring)."""
    if a.ndim == 0:
        raise DataError(f"{source}: expected an array of examples (N, ...), got a scalar")
    if modality is not None and modality not in MODALITIES:
        raise DataError(f"modality must be one of {MODALITIES}, got {modality!r}")
    if modality in ("sequence", "text"):
        return (a[:, None] if a.ndim == 1 else a), modality
    if a.ndim == 1:
        return a[:, None], modality or "vector"
    if a.ndim == 2:
        return a, modality or "vector"
    if a.ndim == 3:
        return a[:, None], modality or "image"
    if a.ndim == 4:
        if a.shape[-1] in (1, 3, 4) and a.shape[1] not in (1, 3, 4):
            a = a.transpose(0, 3, 1, 2)                   # channels-last → (N, C, H, W)
        return a, modality or "image"
    if modality is None:
        raise DataError(f"{source}: cannot tell what an array of shape {a.shape} is; pass modality=")
    return a, modality


def _levels(a: np.ndarray, num_levels: int, source: str) -> torch.Tensor:
    num_levels = int(num_levels)
    if num_levels < 2:
        raise DataError(f"wrong num_levels={num_levels}: discrete data need at least 2 levels")
    if a.dtype == bool:
        a = a.astype(np.int64)
    if a.dtype.kind == "f":
        if not np.isfinite(a).all():
            raise DataError(f"{source}: data contain NaN or infinite values")
        if (a != np.round(a)).any():
            raise DataError(f"{source}: num_levels={num_levels} needs integer values 0..{num_levels - 1}, but the "
                            "data have fractional values; leave num_levels out for continuous data")
    elif a.dtype.kind not in "iu":
        raise DataError(f"{source}: num_levels={num_levels} needs integer data, got dtype {a.dtype}")
    if a.size and (a.min() < 0 or a.max() >= num_levels):
        raise DataError(f"{source}: wrong num_levels={num_levels}: values range {a.min():g}..{a.max():g}, "
                        f"but must lie in 0..{num_levels - 1} (pass num_levels={int(a.max()) + 1} or rescale)")
    return torch.from_numpy(np.ascontiguousarray(a).astype(np.int64))


def _continuous(a: np.ndarray, source: str) -> torch.Tensor:
    if a.dtype.kind not in "biuf":
        raise DataError(f"{source}: expected numeric data, got dtype {a.dtype}")
    a = np.ascontiguousarray(a, dtype=np.float32)
    if not np.isfinite(a).all():
        bad = np.flatnonzero(~np.isfinite(a.reshape(len(a), -1)).all(1))[:5].tolist()
        raise DataError(f"{source}: data contain NaN or infinite values (first bad rows: {bad}); "
                        "drop or impute them first")
    return torch.from_numpy(a)


def _labels(labels, n: int, num_classes: int | None, source: str):
    """(tensor, cond, num_classes, cond_shape) for integer labels or real conditions."""
    lab = _to_numpy(labels, "labels")
    if lab.shape[:1] != (n,):
        raise DataError(f"{source}: labels have shape {lab.shape}, expected {n} rows like the data")
    if lab.dtype.kind in "iub" and lab.ndim == 1:
        if lab.size and lab.min() < 0:
            raise DataError(f"{source}: labels must be integers >= 0, got minimum {lab.min()}")
        k = int(lab.max()) + 1 if num_classes is None else int(num_classes)
        if lab.size and lab.max() >= k:
            raise DataError(f"{source}: label {lab.max()} is out of range for num_classes={k}")
        return torch.from_numpy(lab.astype(np.int64)), "label", max(k, 1), None
    if lab.dtype.kind == "f":
        if not np.isfinite(lab).all():
            raise DataError(f"{source}: conditions (labels) contain NaN or infinite values")
        lab = lab[:, None] if lab.ndim == 1 else lab
        return torch.from_numpy(np.ascontiguousarray(lab, dtype=np.float32)), "continuous", None, lab.shape[1:]
    raise DataError(f"{source}: labels must be integers (classes) or floats (conditions), got dtype {lab.dtype}")


def from_array(arr, split: str = "train", num_levels: int | None = None, labels=None, *,
               num_classes: int | None = None, modality: str | None = None, seed: int = 0,
               split_fractions: Sequence[float] = SPLIT_FRACTIONS, presplit: bool = False, name: str = "array",
               vocab: Sequence[str] | None = None, source: str = "array") -> Dataset:
    """Wrap an array (all examples; a seeded 80/10/10 split is taken) as a :class:`Dataset`.

    ``num_levels=K``: discrete data, values must be integers in 0..K−1. ``labels``: integer
    classes (``cond="label"``) or float conditions (``cond="continuous"``). ``presplit=True``
    means ``arr`` already is the requested split (no further cutting).
    """
    a = _to_numpy(arr, "data")
    if a.ndim == 0 or len(a) == 0:
        raise DataError(f"{source}: no examples (shape {a.shape})")
    a, mod = _arrange(a, modality, source)
    n = len(a)
    x = _continuous(a, source) if num_levels is None else _levels(a, num_levels, source)
    y, cond, k, cond_shape = (None, None, None, None)
    if labels is not None:
        y, cond, k, cond_shape = _labels(labels, n, num_classes, source)
    if not presplit:
        idx = torch.from_numpy(split_indices(n, split, split_fractions, seed))
        x = x[idx]
        y = None if y is None else y[idx]
    info = DataInfo(shape=tuple(x.shape[1:]), kind="continuous" if num_levels is None else "discrete",
                    num_levels=None if num_levels is None else int(num_levels), modality=mod, cond=cond,
                    num_classes=k, cond_shape=cond_shape, vocab=vocab, name=name)
    ds = Dataset(x=x, y=y, info=info, split=split)
    ds.source = {"name": source, "split": split}
    return ds


# ---------------------------------------------------------------------------------------------
# Paths

def from_path(path, split: str = "train", **kw) -> Dataset:
    """Load a file or folder (see the module docstring for the formats).

    ``ds.source`` records the absolute path and the JSON-able options, so the same data can be
    loaded again (``gl.load_dataset(**ds.source)`` style).
    """
    path = os.fspath(path)
    opts = {k: (list(v) if isinstance(v, tuple) else v) for k, v in kw.items()
            if k != "download" and isinstance(v, (str, int, float, bool, type(None), tuple))}
    ds = _from_path(path, split, **kw)
    ds.source = {"name": os.path.abspath(path), "split": split, **opts}
    return ds


def _from_path(path: str, split: str, **kw) -> Dataset:
    if not os.path.exists(path):
        raise DataError(f"no such file or folder: {path}")
    if os.path.isdir(path):
        dl = kw.pop("download", False)
        if dl:
            name = dl if isinstance(dl, str) else _DOWNLOAD_ALIASES.get(os.path.basename(os.path.normpath(path)).lower())
            if name is None:
                raise DataError(f"download=True cannot tell which dataset {path!r} is; pass download='mnist', "
                                "'fashion-mnist' or 'cifar10'")
            download(name, path)
        if _find_idx(path) is not None:
            return load_idx_dir(path, split=split, **kw)
        if _find_cifar(path) is not None:
            return load_cifar_dir(path, split=split, **kw)
        return load_image_folder(path, split=split, **kw)
    ext = os.path.splitext(path)[1].lower()
    if ext == ".npy":
        return load_npy(path, split=split, **kw)
    if ext == ".npz":
        return load_npz(path, split=split, **kw)
    if ext == ".csv":
        return load_csv(path, split=split, **kw)
    if ext in TEXT_EXTS_REFUSED:
        raise DataError(f"{path}: files with extension {ext!r} are not loadable alone; pass their folder "
                        "(images, IDX, CIFAR) or convert to .npy/.npz/.csv")
    return load_text_file(path, split=split, **kw)


def load_npy(path: str, split: str = "train", **kw) -> Dataset:
    try:
        a = np.load(path, allow_pickle=False)
    except ValueError as e:
        raise DataError(f"{path}: cannot read (object arrays are refused, they need pickle): {e}") from e
    except (OSError, EOFError) as e:
        raise DataError(f"corrupt or unreadable .npy file {path}: {e}") from e
    kw.setdefault("name", os.path.basename(path))
    return from_array(a, split=split, source=path, **kw)


def load_npz(path: str, split: str = "train", **kw) -> Dataset:
    try:
        with np.load(path, allow_pickle=False) as z:
            files = dict(z)
    except ValueError as e:
        raise DataError(f"{path}: cannot read (object arrays are refused, they need pickle): {e}") from e
    except (OSError, EOFError, Exception) as e:  # zipfile.BadZipFile and friends
        raise DataError(f"corrupt or unreadable .npz file {path}: {e}") from e
    if "x" not in files:
        if len(files) == 1:
            files = {"x": next(iter(files.values()))}
        else:
            raise DataError(f"{path}: an .npz needs a key 'x' (and optionally 'y'); it has {sorted(files)}")
    kw.setdefault("name", os.path.basename(path))
    if "y" in files and kw.get("labels") is None:
        kw["labels"] = files["y"]
    return from_array(files["x"], split=split, source=path, **kw)


def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def load_csv(path: str, split: str = "train", label_column: int | str | None = None, **kw) -> Dataset:
    """Numeric CSV; a first row that is not numeric is a header. ``label_column``: name or index."""
    try:
        with open(path, newline="") as fh:
            rows = [r for r in csv.reader(fh) if r and any(c.strip() for c in r)]
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"cannot read CSV file {path}: {e}") from e
    if not rows:
        raise DataError(f"{path}: the CSV file is empty")
    header = None
    if not all(_is_number(c) for c in rows[0]):
        header, rows = [c.strip() for c in rows[0]], rows[1:]
    if not rows:
        raise DataError(f"{path}: the CSV file has a header but no rows")
    width = len(rows[0])
    for i, r in enumerate(rows):
        if len(r) != width:
            raise DataError(f"{path}: row {i + 1 + (header is not None)} has {len(r)} columns, expected {width}")
    try:
        a = np.array([[float(c) for c in r] for r in rows], dtype=np.float64)
    except ValueError:
        for i, r in enumerate(rows):
            for j, c in enumerate(r):
                if not _is_number(c):
                    raise DataError(f"{path}: non-numeric value {c!r} in row {i + 1 + (header is not None)}, "
                                    f"column {j + 1}; CSV data must be numbers") from None
        raise
    labels = None
    if label_column is not None:
        if isinstance(label_column, str):
            if header is None or label_column not in header:
                raise DataError(f"{path}: no column named {label_column!r} (header: {header})")
            col = header.index(label_column)
        else:
            col = int(label_column) % width
        labels = a[:, col]
        a = np.delete(a, col, axis=1)
        if (labels == np.round(labels)).all():
            labels = labels.astype(np.int64)
    if kw.get("num_levels") is None:
        a = a.astype(np.float32)
    kw.setdefault("name", os.path.basename(path))
    return from_array(a, split=split, labels=labels, source=path, **kw)


def load_text_file(path: str, split: str = "train", block_size: int = 64, encoding: str = "utf-8",
                   **kw) -> Dataset:
    """A text file at character level, split 90/10 by position like ``shakespeare`` (test = val)."""
    from .text import text_dataset
    try:
        with open(path, encoding=encoding) as fh:
            text = fh.read()
    except UnicodeDecodeError as e:
        raise DataError(f"{path} is not a {encoding} text file ({e}); pass encoding= or convert it") from e
    except OSError as e:
        raise DataError(f"cannot read {path}: {e}") from e
    if kw:
        raise DataError(f"unexpected options for a text file: {sorted(kw)} (known: block_size, encoding)")
    if "\x00" in text:
        raise DataError(f"{path} contains NUL bytes; it does not look like a text file")
    return text_dataset(text, split, block_size=block_size, name=os.path.basename(path))


# ---------------------------------------------------------------------------------------------
# Image folders

def load_image_folder(path: str, split: str = "train", mode: str | None = None, size=None, seed: int = 0,
                      split_fractions: Sequence[float] = SPLIT_FRACTIONS, **kw) -> Dataset:
    """Images below ``path``: one subfolder per class (sorted names), or a flat folder (no labels)."""
    from PIL import Image, UnidentifiedImageError
    if kw:
        raise DataError(f"unexpected options for an image folder: {sorted(kw)} (known: mode, size, seed, "
                        "split_fractions)")
    if mode not in (None, "L", "RGB"):
        raise DataError(f"mode must be 'L' (grey) or 'RGB', got {mode!r}")
    subdirs = sorted(d for d in os.listdir(path) if os.path.isdir(os.path.join(path, d)) and not d.startswith("."))
    files: list[tuple[str, int]] = []
    if subdirs:
        for k, d in enumerate(subdirs):
            for f in sorted(os.listdir(os.path.join(path, d))):
                if f.lower().endswith(IMAGE_EXTS):
                    files.append((os.path.join(path, d, f), k))
    else:
        files = [(os.path.join(path, f), -1) for f in sorted(os.listdir(path)) if f.lower().endswith(IMAGE_EXTS)]
    if not files:
        raise DataError(f"no images ({', '.join(IMAGE_EXTS)}) found in {path} or its subfolders")
    if isinstance(size, int):
        size = (size, size)
    imgs = []
    for f, _ in files:
        try:
            with Image.open(f) as im:
                im.load()
                imgs.append(im.copy())
        except (UnidentifiedImageError, OSError) as e:
            raise DataError(f"corrupt or unreadable image {f}: {e}") from e
    if mode is None:
        mode = "RGB" if any(_is_colour(im) for im in imgs) else "L"
    arrs = []
    for (f, _), im in zip(files, imgs):
        im = im.convert(mode)
        if size is not None:
            im = im.resize((int(size[1]), int(size[0])), Image.BILINEAR)
        a = np.asarray(im, dtype=np.uint8)
        if arrs and a.shape != arrs[0].shape:
            raise DataError(f"image {f} has size {a.shape[:2]} but {files[0][0]} has {arrs[0].shape[:2]}; "
                            "pass size=(H, W) to resize them all")
        arrs.append(a)
    x = np.stack(arrs)
    x = x[:, None] if x.ndim == 3 else x.transpose(0, 3, 1, 2)
    labels = np.array([k for _, k in files], dtype=np.int64) if subdirs else None
    ds = from_array(x, split=split, num_levels=256, labels=labels, num_classes=len(subdirs) or None, modality="image",
                    seed=seed, split_fractions=split_fractions, name=os.path.basename(os.path.normpath(path)),
                    source=path)
    if subdirs:
        ds.extras["classes"] = subdirs
    return ds


def _is_colour(im) -> bool:
    if im.mode in ("1", "L", "LA", "I", "I;16", "F"):
        return False
    if im.mode == "P":
        im = im.convert("RGB")
    a = np.asarray(im.convert("RGB"), dtype=np.int16)
    return bool((a[..., 0] != a[..., 1]).any() or (a[..., 1] != a[..., 2]).any())


# ---------------------------------------------------------------------------------------------
# MNIST / Fashion-MNIST IDX files

IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
IDX_NAMES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
             "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def read_idx(path: str) -> np.ndarray:
    """Read one IDX file (raw or gzip): magic 0x0000 + dtype byte + ndim byte, big-endian dims, data."""
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as fh:
            data = fh.read()
    except (OSError, EOFError) as e:
        raise DataError(f"corrupt or unreadable IDX file {path}: {e}") from e
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in IDX_DTYPES:
        raise DataError(f"corrupt IDX file {path}: bad magic number {data[:4].hex()}")
    ndim = data[3]
    if len(data) < 4 + 4 * ndim:
        raise DataError(f"corrupt IDX file {path}: truncated header")
    dims = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
    dt = np.dtype(IDX_DTYPES[data[2]])
    expected = int(np.prod(dims)) * dt.itemsize
    body = data[4 + 4 * ndim:]
    if len(body) != expected:
        raise DataError(f"corrupt IDX file {path}: header says {dims} ({expected} bytes) but the file has "
                        f"{len(body)} bytes of data")
    return np.frombuffer(body, dtype=dt).reshape(dims)


def _find_idx(path: str) -> dict[str, tuple[str, str]] | None:
    names = os.listdir(path)

    def find(stem):
        for cand in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
            if cand in names:
                return os.path.join(path, cand)
        return None

    found = {s: (find(i), find(l)) for s, (i, l) in IDX_NAMES.items()}
    if not any(a or b for a, b in found.values()):
        return None
    return found


def load_idx_dir(path: str, split: str = "train", binarize: bool = False, threshold: int = 128, seed: int = 0,
                 val_fraction: float = 0.1) -> Dataset:
    """MNIST / Fashion-MNIST from a folder of IDX files. test = official test (t10k); val = a seeded
    ``val_fraction`` of the official training set; train = the rest of it."""
    found = _find_idx(path)
    part = "test" if split == "test" else "train"
    img_path, lab_path = found[part]
    stem_i, stem_l = IDX_NAMES[part]
    if img_path is None or lab_path is None:
        missing = stem_i if img_path is None else stem_l
        raise DataError(f"missing file {os.path.join(path, missing)} (or .gz) for the {split} split")
    x, y = read_idx(img_path), read_idx(lab_path)
    if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
        raise DataError(f"corrupt IDX pair {img_path} / {lab_path}: images {x.shape}, labels {y.shape}")
    if split != "test":
        idx = _val_cut(len(x), split, val_fraction, seed)
        x, y = x[idx], y[idx]
    x = x[:, None].astype(np.int64)
    levels = 256
    if binarize:
        x, levels = (x >= int(threshold)).astype(np.int64), 2
    ds = from_array(x, split=split, num_levels=levels, labels=y.astype(np.int64), num_classes=10, modality="image",
                    presplit=True, name=os.path.basename(os.path.normpath(path)), source=path)
    return ds


def _val_cut(n: int, split: str, val_fraction: float, seed: int) -> np.ndarray:
    if not 0 < val_fraction < 1:
        raise DataError(f"val_fraction must lie in (0, 1), got {val_fraction}")
    perm = np.random.default_rng(seed).permutation(n)
    n_val = max(1, int(round(val_fraction * n)))
    return np.sort(perm[:n_val] if split == "val" else perm[n_val:])


# ---------------------------------------------------------------------------------------------
# CIFAR-10 python batches (pickles; restricted unpickler)

class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that reconstructs only plain containers and numpy arrays.

    Pickle opcodes build dicts, lists, tuples, bytes, str and numbers without any global; the
    only globals allowed are numpy's array reconstruction functions, ``numpy.ndarray``,
    ``numpy.dtype`` and ``_codecs.encode`` (Python 2 pickles encode bytes with it). Anything
    else (``os.system``, ``builtins.eval``, ``subprocess.Popen`` …) raises :class:`DataError`.
    """

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
        ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
    }

    def __init__(self, file, source: str = "pickle"):
        super().__init__(file, encoding="bytes")
        self.source = source

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise DataError(f"refusing to load {self.source}: it asks to call {module}.{name}, which is not a plain "
                        "array or container — the file is not a CIFAR batch or it was crafted to run code")

    def persistent_load(self, pid):
        raise DataError(f"refusing to load {self.source}: persistent ids are not allowed")


def restricted_load(path: str) -> Any:
    """Unpickle ``path`` with :class:`RestrictedUnpickler` (never plain ``pickle.load``)."""
    try:
        with open(path, "rb") as fh:
            return RestrictedUnpickler(fh, source=path).load()
    except DataError:
        raise
    except Exception as e:  # truncated/corrupt pickles raise many types
        raise DataError(f"corrupt or unreadable pickle {path}: {type(e).__name__}: {e}") from e


def read_cifar_batch(path: str) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 python batch → (uint8 (N, 3, 32, 32), int64 (N,))."""
    d = restricted_load(path)
    if not isinstance(d, dict):
        raise DataError(f"corrupt CIFAR batch {path}: expected a dict, got {type(d).__name__}")
    d = {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in d.items()}
    if "data" not in d or "labels" not in d:
        raise DataError(f"corrupt CIFAR batch {path}: keys {sorted(map(str, d))} lack 'data' and 'labels'")
    data, labels = d["data"], np.asarray(d["labels"])
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise DataError(f"corrupt CIFAR batch {path}: 'data' must be a uint8 array (N, 3072)")
    if labels.shape != (len(data),) or labels.dtype.kind not in "iu" or (labels.size and labels.max() > 9):
        raise DataError(f"corrupt CIFAR batch {path}: 'labels' must be {len(data)} integers 0..9")
    return data.reshape(-1, 3, 32, 32), labels.astype(np.int64)


def _find_cifar(path: str) -> str | None:
    for p in (path, os.path.join(path, "cifar-10-batches-py")):
        if os.path.isdir(p) and any(f.startswith("data_batch_") or f == "test_batch" for f in os.listdir(p)):
            return p
    return None


def load_cifar_dir(path: str, split: str = "train", seed: int = 0, val_fraction: float = 0.1) -> Dataset:
    """CIFAR-10 from its python batches: train/val from ``data_batch_*``, test from ``test_batch``."""
    root = _find_cifar(path)
    if split == "test":
        files = [os.path.join(root, "test_batch")]
        if not os.path.exists(files[0]):
            raise DataError(f"missing file {files[0]} for the test split")
    else:
        files = sorted(os.path.join(root, f) for f in os.listdir(root) if f.startswith("data_batch_"))
        if not files:
            raise DataError(f"missing files {os.path.join(root, 'data_batch_1')}… for the {split} split")
    parts = [read_cifar_batch(f) for f in files]
    x = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    if split != "test":
        idx = _val_cut(len(x), split, val_fraction, seed)
        x, y = x[idx], y[idx]
    ds = from_array(x.astype(np.int64), split=split, num_levels=256, labels=y, num_classes=10, modality="image",
                    presplit=True, name="cifar10", source=path)
    ds.extras["classes"] = list(CIFAR10_CLASSES)
    return ds


CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


# ---------------------------------------------------------------------------------------------
# Downloads (optional, never automatic)

#: URLs with the MD5 checksums their maintainers publish (torchvision uses the same pairs).
#: ``None`` = checksum not known to us for sure: :func:`download` then requires ``sha256=``.
RESOURCES: dict[str, list[tuple[str, dict[str, str] | None]]] = {
    "mnist": [
        ("https://ossci-datasets.s3.amazonaws.com/mnist/train-images-idx3-ubyte.gz",
         {"md5": "f68b3c2dcbeaaa9fbdd348bbdeb94873"}),
        ("https://ossci-datasets.s3.amazonaws.com/mnist/train-labels-idx1-ubyte.gz",
         {"md5": "d53e105ee54ea40749a09fcbcd1e9432"}),
        ("https://ossci-datasets.s3.amazonaws.com/mnist/t10k-images-idx3-ubyte.gz",
         {"md5": "9fb629c4189551a2d022fa330f9573f3"}),
        ("https://ossci-datasets.s3.amazonaws.com/mnist/t10k-labels-idx1-ubyte.gz",
         {"md5": "ec29112dd5afa0611ce80d1b7f02629c"}),
    ],
    "fashion-mnist": [
        ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/train-images-idx3-ubyte.gz", None),
        ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/train-labels-idx1-ubyte.gz", None),
        ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/t10k-images-idx3-ubyte.gz", None),
        ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/t10k-labels-idx1-ubyte.gz", None),
    ],
    "cifar10": [("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", None)],
}


_DOWNLOAD_ALIASES = {"mnist": "mnist", "fashion-mnist": "fashion-mnist", "fashion_mnist": "fashion-mnist",
                     "fashionmnist": "fashion-mnist", "cifar10": "cifar10", "cifar-10": "cifar10"}


def file_digest(path: str, algorithm: str = "sha256", chunk: int = 1 << 20) -> str:
    """Hex digest of a file, read in chunks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def verify_checksum(path: str, sha256: str | None = None, md5: str | None = None) -> None:
    """Raise :class:`DataError` unless ``path`` has the given SHA-256 (preferred) or MD5 digest."""
    if not os.path.exists(path):
        raise DataError(f"missing file {path}")
    if sha256 is None and md5 is None:
        raise DataError(f"no checksum given for {path}; refusing to trust it")
    for algo, want in (("sha256", sha256), ("md5", md5)):
        if want is not None:
            got = file_digest(path, algo)
            if got.lower() != want.lower():
                raise DataError(f"checksum mismatch for {path}: {algo} {got}, expected {want}; the file is corrupt "
                                "or not the expected one — delete it and download again")


def download(name: str, root: str, sha256: dict[str, str] | None = None) -> str:
    """Download MNIST, Fashion-MNIST or CIFAR-10 into ``root`` and verify each file; returns the folder
    to pass to ``load_dataset``. ``sha256`` maps file names to SHA-256 digests you trust (needed for
    files whose checksum genlab does not ship). Never called automatically."""
    import tarfile
    import urllib.request
    if name not in RESOURCES:
        raise DataError(f"unknown download {name!r}; choose from {sorted(RESOURCES)}")
    os.makedirs(root, exist_ok=True)
    sha256 = sha256 or {}
    for url, sums in RESOURCES[name]:
        fname = url.rsplit("/", 1)[-1]
        dest = os.path.join(root, fname)
        sums = dict(sums or {})
        if fname in sha256:
            sums["sha256"] = sha256[fname]
        if not sums:
            raise DataError(f"genlab ships no checksum for {fname}; pass sha256={{{fname!r}: '<digest>'}} from a "
                            "source you trust, or download it yourself and load the folder")
        if not os.path.exists(dest):
            tmp = dest + ".part"
            urllib.request.urlretrieve(url, tmp)
            os.replace(tmp, dest)
        verify_checksum(dest, sha256=sums.get("sha256"), md5=sums.get("md5"))
        if fname.endswith(".tar.gz"):
            with tarfile.open(dest) as tf:
                tf.extractall(root, filter="data")
    return root


__all__ = ["from_array", "from_path", "split_indices", "read_idx", "read_cifar_batch", "restricted_load",
           "RestrictedUnpickler", "verify_checksum", "file_digest", "download", "load_npy", "load_npz", "load_csv",
           "load_image_folder", "load_text_file", "load_idx_dir", "load_cifar_dir"]
