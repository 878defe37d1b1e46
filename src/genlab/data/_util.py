"""Small helpers shared by the dataset modules."""
from __future__ import annotations

import difflib

from .base import DataError


def reject_options(kw: dict, dataset: str, known: tuple[str, ...]) -> None:
    """Raise :class:`DataError` naming unknown keyword options of ``load_dataset(dataset, ...)``."""
    if kw:
        bad = sorted(kw)
        hints = [m for b in bad for m in difflib.get_close_matches(b, known, n=1)]
        hint = f" Did you mean {', '.join(map(repr, hints))}?" if hints else ""
        raise DataError(f"load_dataset({dataset!r}) got unknown option(s) {', '.join(map(repr, bad))}.{hint} "
                        f"Known options: {', '.join(known) if known else 'none besides split'}")
