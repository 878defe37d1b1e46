"""Metrics logging of a run: ``metrics.jsonl`` and ``metrics.csv`` always, TensorBoard optionally."""
from __future__ import annotations

import csv
import io
import json
import math
import warnings
from pathlib import Path
from typing import Any

from ..models.io import atomic_write_bytes


def read_history(out: Path, upto_step: int | None = None) -> list[dict[str, Any]]:
    """Records of ``out/metrics.jsonl`` (those with ``step <= upto_step``); a torn last line is dropped."""
    path = Path(out) / "metrics.jsonl"
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue                 # a line cut short by a kill
        if isinstance(row, dict) and (upto_step is None or row.get("step", 0) <= upto_step):
            rows.append(row)
    return rows


def _clean(v):
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)               # JSON has no nan/inf; keep them readable
    return v


class MetricsLogger:
    """Appends records to ``metrics.jsonl`` and rewrites ``metrics.csv`` (columns = union of keys)."""

    def __init__(self, out: Path | None, history: list[dict[str, Any]], tensorboard: bool = False):
        self.out = Path(out) if out is not None else None
        self.history = history
        self.tb = None
        if self.out is not None:
            # rewrite both files from the (possibly truncated, on resume) history
            atomic_write_bytes(self.out / "metrics.jsonl",
                               "".join(json.dumps({k: _clean(v) for k, v in r.items()}) + "\n"
                                       for r in history).encode())
            self._write_csv()
            if tensorboard:
                try:
                    from torch.utils.tensorboard import SummaryWriter
                    self.tb = SummaryWriter(str(self.out / "tensorboard"))
                except ImportError:
                    warnings.warn("tensorboard=True but the tensorboard package is not installed "
                                  "(pip install tensorboard); logging to metrics.jsonl/csv only", stacklevel=3)

    def log(self, record: dict[str, Any]) -> None:
        self.history.append(record)
        if self.out is None:
            return
        with open(self.out / "metrics.jsonl", "a") as f:
            f.write(json.dumps({k: _clean(v) for k, v in record.items()}) + "\n")
        self._write_csv()
        if self.tb is not None:
            for k, v in record.items():
                if k != "step" and isinstance(v, (int, float)):
                    self.tb.add_scalar(k, v, record["step"])
            self.tb.flush()

    def _write_csv(self) -> None:
        keys: list[str] = []
        for r in self.history:
            keys += [k for k in r if k not in keys]
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=keys, restval="")
        w.writeheader()
        w.writerows(self.history)
        atomic_write_bytes(self.out / "metrics.csv", buf.getvalue().encode())

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
